"""Alembic migrations for the storage schema, run by the stores' `open()`.

No alembic.ini: the configuration is built here, pointing at this directory, so the
migrations ship inside the package and run wherever it is installed.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

__all__ = ["MIGRATIONS_DIR", "upgrade_to_head"]

MIGRATIONS_DIR = Path(__file__).resolve().parent


def upgrade_to_head(connection: Connection) -> None:
    """Bring the schema on `connection` to the newest revision (a no-op when current).

    Runs inside the caller's transaction (env.py sees it as external and leaves
    commit and rollback to the caller); use it via `AsyncConnection.run_sync`.
    """
    config = Config()
    # ConfigParser interpolates `%`; a path may contain one.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
