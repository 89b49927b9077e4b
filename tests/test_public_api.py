"""The package root's public surface stays explicit and light."""

from __future__ import annotations

import subprocess
import sys

import pytest

import turnstream


def test_all_names_exactly_the_public_names_of_the_root() -> None:
    # the root resolves its names lazily: what dir() lists must be __all__ plus the
    # module's own machinery, and every name in __all__ must resolve
    public = {name for name in dir(turnstream) if not name.startswith("_")} | {"__version__"}
    modules = {name for name in public if type(getattr(turnstream, name)).__name__ == "module"}
    machinery = {"annotations", "version", "PackageNotFoundError", "TYPE_CHECKING", "Any"}
    assert sorted(turnstream.__all__) == sorted(public - modules - machinery)
    for name in turnstream.__all__:
        assert getattr(turnstream, name) is not None


def test_an_unknown_root_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = turnstream.no_such_name  # type: ignore[attr-defined]  # the point of the test


def test_importing_the_client_loads_no_server_framework_or_database() -> None:
    code = "import sys, turnstream; print(sorted(m for m in ('fastapi', 'sqlalchemy', 'uvicorn', 'turnstream.server') if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
