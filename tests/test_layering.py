"""DESIGN.md's layering rules, enforced over the import graph of src/turnstream.

Every import (top-level, inside functions, and under `TYPE_CHECKING` alike) is an
edge; a rule holds for a module and for everything it reaches through any chain of
imports. Importing `turnstream.a.b` also runs the package `turnstream.a`'s
`__init__`, so that is an edge too. The root package `turnstream/__init__.py` is the
client's public facade and no layer imports it, so it is not walked into.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import deque
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

# layer -> turnstream subpackages it must never reach, directly or transitively
FORBIDDEN_INTERNAL = {
    "protocol": {"sse", "engine", "providers", "storage", "server", "runtime", "cli", "web"},
    "sse": {"engine", "providers", "storage", "server", "runtime", "cli", "web"},
    "engine": {"providers", "storage", "server", "runtime", "cli", "web"},
    "providers": {"storage", "server", "runtime", "cli", "web"},
    "storage": {"engine", "providers", "server", "runtime", "cli", "web"},
    "runtime": {"engine", "providers", "storage", "server", "cli", "web"},
    "server": {"runtime", "cli", "web"},
    "web": {"server", "cli", "storage", "engine", "providers"},
}
PURE_LAYERS = {"protocol", "sse", "engine"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["turnstream", *parts])


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports(path: Path) -> list[str]:
    """Every name `path` imports, relative imports resolved; for `from a import b`
    both `a` and `a.b` (b may be a submodule)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = _module_name(path).split(".")
                if not is_package:
                    package.pop()
                base = package[: len(package) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            names.append(module)
            names.extend(f"{module}.{alias.name}" for alias in node.names)
    return names


def _graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Module -> turnstream modules it imports; module -> third-party top names."""
    paths = {_module_name(p): p for p in SRC.rglob("*.py")}
    internal: dict[str, set[str]] = {}
    external: dict[str, set[str]] = {}
    for module, path in paths.items():
        edges: set[str] = set()
        outside: set[str] = set()
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] != "turnstream":
                outside.add(parts[0])
                continue
            # every package __init__ on the way, and the name itself (a module, or an
            # attribute of one: an extra node in the same layer is harmless)
            for end in range(2, len(parts) + 1):
                candidate = ".".join(parts[:end])
                if (candidate in paths or end == len(parts)) and candidate != module:
                    edges.add(candidate)
        internal[module] = edges
        external[module] = outside
    return internal, external


def _chain(start: str, graph: dict[str, set[str]], target: str) -> list[str] | None:
    """The shortest import chain from `start` to `target`, if any."""
    previous: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        module = queue.popleft()
        if module == target:
            chain = [module]
            while (before := previous[chain[-1]]) is not None:
                chain.append(before)
            return chain[::-1]
        for nxt in sorted(graph.get(module, ())):
            if nxt not in previous:
                previous[nxt] = module
                queue.append(nxt)
    return None


def _violations() -> list[str]:
    internal, external = _graph()
    found = []
    for module in sorted(internal):
        layer = _layer(module)
        forbidden = FORBIDDEN_INTERNAL.get(layer, set())
        reachable = _reachable(module, internal)
        reported: set[str] = set()
        # one line per forbidden layer reached, with the shortest chain into it
        for other in sorted(reachable, key=lambda m: (len(_chain(module, internal, m) or ()), m)):
            if _layer(other) in forbidden and _layer(other) not in reported:
                reported.add(_layer(other))
                chain = _chain(module, internal, other) or [module, other]
                found.append(f"{module} imports {other} (via {' -> '.join(chain)})")
        if layer in PURE_LAYERS:
            for other in sorted(reachable | {module}):
                for library in sorted(external.get(other, set()) & IO_LIBRARIES):
                    found.append(f"{module} (pure layer) imports {library} (in {other})")
    return found


def _reachable(start: str, graph: dict[str, set[str]]) -> set[str]:
    seen: set[str] = set()
    stack = [start]
    while stack:
        for nxt in graph.get(stack.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    seen.discard(start)
    return seen


def test_no_module_breaks_the_layering_rules() -> None:
    assert _violations() == []


def test_importing_the_server_app_loads_neither_the_runtime_nor_the_chat_page_nor_the_cli() -> None:
    # the package root re-exports the runtime lazily, so importing the server must
    # not load the client half at all, not even through the root package
    code = (
        "import sys, turnstream.server.app; "
        "print(sorted(m for m in sys.modules if m.startswith("
        "('turnstream.web', 'turnstream.cli', 'turnstream.runtime'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"engine/bad.py": "import httpx\n"}, "imports httpx"),
        ({"engine/bad.py": "from turnstream.server import app\n"}, "imports turnstream.server"),
        ({"engine/bad.py": "from ..storage import base\n"}, "imports turnstream.storage"),
        # transitive: engine -> protocol (allowed) -> a module that imports httpx
        (
            {
                "engine/bad.py": "from turnstream.protocol import wire\n",
                "protocol/wire.py": "import httpx\n",
            },
            "turnstream.engine.bad (pure layer) imports httpx (in turnstream.protocol.wire)",
        ),
        # transitive through a package __init__: server -> web (via its __init__)
        (
            {
                "server/app.py": "from turnstream.helpers import thing\n",
                "helpers.py": "from turnstream.web.page import x\n",
                "web/__init__.py": "from .router import r\n",
                "web/page.py": "",
                "web/router.py": "",
            },
            "turnstream.server.app imports turnstream.web",
        ),
    ],
)
def test_the_layering_check_catches_a_forbidden_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, str], expected: str
) -> None:
    # A fake tree with offending modules proves the walker can fail.
    fake = tmp_path / "turnstream"
    for name, source in files.items():
        path = fake / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
    monkeypatch.setitem(globals(), "SRC", fake)
    assert any(expected in v for v in _violations()), _violations()
