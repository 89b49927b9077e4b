"""DESIGN.md's layering rules, enforced by walking every import in src/turnstream."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "turnstream"

IO_LIBRARIES = {
    "fastapi",
    "starlette",
    "uvicorn",
    "httpx",
    "openai",
    "sqlalchemy",
    "aiosqlite",
    "asyncpg",
    "alembic",
    "requests",
    "aiohttp",
}

# layer -> turnstream subpackages it must never import
FORBIDDEN_INTERNAL = {
    "protocol": {"sse", "engine", "providers", "storage", "server", "runtime", "cli", "web"},
    "sse": {"engine", "providers", "storage", "server", "runtime", "cli", "web"},
    "engine": {"providers", "storage", "server", "runtime", "cli", "web"},
    "providers": {"storage", "server", "runtime", "cli", "web"},
    "storage": {"engine", "providers", "server", "runtime", "cli", "web"},
    "runtime": {"engine", "providers", "storage", "server", "cli", "web"},
    "server": {"runtime", "cli"},
    "web": {"server", "cli", "storage", "engine", "providers"},
}
PURE_LAYERS = {"protocol", "sse", "engine"}


def _layer(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py")


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                # resolve a relative import against the module's own package
                package = list(path.relative_to(SRC).parent.parts)
                base = package[: len(package) - (node.level - 1)]
                module = ".".join(["turnstream", *base, *([node.module] if node.module else [])])
                names.append(module)
            elif node.module:
                names.append(node.module)
    return names


def _violations() -> list[str]:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        layer = _layer(path)
        forbidden = FORBIDDEN_INTERNAL.get(layer, set())
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] == "turnstream" and len(parts) > 1 and parts[1] in forbidden:
                found.append(f"{path.relative_to(SRC)} imports {name}")
            if layer in PURE_LAYERS and parts[0] in IO_LIBRARIES:
                found.append(f"{path.relative_to(SRC)} (pure layer) imports {name}")
    return found


def test_no_module_breaks_the_layering_rules() -> None:
    assert _violations() == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import httpx\n", "imports httpx"),
        ("from turnstream.server import app\n", "imports turnstream.server"),
        ("from ..storage import base\n", "imports turnstream.storage"),
    ],
)
def test_the_layering_check_catches_a_forbidden_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, expected: str
) -> None:
    # A fake tree with one offending engine module proves the walker can fail.
    fake = tmp_path / "turnstream"
    (fake / "engine").mkdir(parents=True)
    (fake / "engine" / "bad.py").write_text(source, encoding="utf-8")
    monkeypatch.setattr(__import__(__name__), "SRC", fake, raising=False)
    monkeypatch.setitem(globals(), "SRC", fake)
    assert any(expected in v for v in _violations())
