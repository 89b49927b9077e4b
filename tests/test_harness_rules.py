"""Issue 13's harness rules, kept by a check instead of by memory: one helper runs
uvicorn in a thread, and no test module imports another test module (shared helpers
live in conftest.py or a module whose name does not start with `test_`)."""

from __future__ import annotations

import ast
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVER_THREAD = ROOT / "src" / "turnstream" / "cli" / "_server_thread.py"


def _python_files(*tops: str) -> list[Path]:
    """The .py files under `tops`, without walking into node_modules (the JS clients')."""
    found = []
    for top in tops:
        for directory, subdirs, files in os.walk(ROOT / top):
            subdirs[:] = [d for d in subdirs if d not in ("node_modules", "__pycache__")]
            found += [Path(directory, name) for name in files if name.endswith(".py")]
    return found


def _imported_modules(tree: ast.AST, package: str) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the importing module's package
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            found.append(base)
            found += [f"{base}.{alias.name}" for alias in node.names]
    return found


def test_no_test_module_imports_another_test_module() -> None:
    offenders = []
    for path in _python_files("tests"):
        package = ".".join(path.relative_to(ROOT).parent.parts)
        for module in _imported_modules(ast.parse(path.read_text()), package):
            if module.rsplit(".", 1)[-1].startswith("test_"):
                offenders.append(f"{path.relative_to(ROOT)} imports {module}")
    assert offenders == []


def _constructs_uvicorn_server(tree: ast.AST) -> bool:
    return any(
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "Server"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "uvicorn"
        for node in ast.walk(tree)
    )


def test_only_the_server_thread_helper_builds_a_uvicorn_server() -> None:
    builders = [
        path.relative_to(ROOT)
        for path in _python_files("src", "tests")
        if _constructs_uvicorn_server(ast.parse(path.read_text()))
    ]
    assert builders == [SERVER_THREAD.relative_to(ROOT)]


def test_the_checks_see_what_they_look_for() -> None:
    sibling = ast.parse("from .test_other import helper\nimport tests.server.test_x")
    assert _imported_modules(sibling, "tests.server") == [
        "tests.server.test_other",
        "tests.server.test_other.helper",
        "tests.server.test_x",
    ]
    assert _constructs_uvicorn_server(ast.parse("uvicorn.Server(uvicorn.Config(app))"))
    assert not _constructs_uvicorn_server(ast.parse("ServerThread(app)"))
