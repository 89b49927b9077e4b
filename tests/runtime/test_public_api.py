"""The runtime's public surface and layering."""

from __future__ import annotations

import ast
from pathlib import Path

import turnstream.runtime as runtime

RUNTIME = Path(runtime.__file__).parent


def test_all_lists_exactly_the_public_names() -> None:
    public = {name for name in vars(runtime) if not name.startswith("_")}
    modules = {name for name in public if getattr(runtime, name).__class__.__name__ == "module"}
    assert sorted(runtime.__all__) == sorted(public - modules - {"annotations"})
    assert runtime.__all__ == sorted(runtime.__all__)


def test_the_runtime_never_imports_server_side_layers() -> None:
    forbidden = {"server", "storage", "engine", "providers"}
    for path in RUNTIME.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                parts = node.module.split(".")
                assert not (parts[0] == "turnstream" and parts[1:2] and parts[1] in forbidden), path
