"""Alembic migrations for the storage schema: one history for SQLite and PostgreSQL.

The stores' `open()` runs them (and `turnstream db upgrade` ahead of a deploy). No
alembic.ini: the configuration is built here, pointing at this directory, so the
migrations ship inside the package and run wherever it is installed.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

__all__ = ["MIGRATIONS_DIR", "SchemaTooNewError", "head_revision", "upgrade_to_head"]

MIGRATIONS_DIR = Path(__file__).resolve().parent


class SchemaTooNewError(RuntimeError):
    """The database was migrated by a newer turnstream than this one.

    Running on it could corrupt what the newer code stored, so the store refuses.
    """


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    # ConfigParser interpolates `%`; a path may contain one.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision this code knows."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None, "the migrations directory has no revisions"
    return head


def upgrade_to_head(connection: Connection) -> None:
    """Bring the schema on `connection` to the newest revision (a no-op when current).

    Runs inside the caller's transaction (env.py sees it as external and leaves
    commit and rollback to the caller); use it via `AsyncConnection.run_sync`.

    Raises:
        SchemaTooNewError: the database is at a revision this code does not know.
    """
    config = _config(connection)
    script = ScriptDirectory.from_config(config)
    known = {revision.revision for revision in script.walk_revisions()}
    current = MigrationContext.configure(connection).get_current_heads()
    unknown = sorted(set(current) - known)
    if unknown:
        raise SchemaTooNewError(
            f"the database schema is at revision {', '.join(unknown)}, newer than this "
            f"turnstream knows (its newest is {script.get_current_head()}): upgrade "
            "turnstream, or point it at another database"
        )
    command.upgrade(config, "head")
