"""The package root's public surface stays explicit and light."""

from __future__ import annotations

import subprocess
import sys

import turnstream


def test_all_names_exactly_the_public_names_of_the_root() -> None:
    public = {name for name in vars(turnstream) if not name.startswith("_")} | {"__version__"}
    modules = {name for name in public if type(getattr(turnstream, name)).__name__ == "module"}
    assert sorted(turnstream.__all__) == sorted(
        public - modules - {"annotations", "version", "PackageNotFoundError"}
    )


def test_importing_the_client_loads_no_server_framework_or_database() -> None:
    code = "import sys, turnstream; print(sorted(m for m in ('fastapi', 'sqlalchemy', 'uvicorn', 'turnstream.server') if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
