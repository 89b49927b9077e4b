"""`turnstream db ...`: the server's database, ahead of a deploy or a move.

`upgrade` migrates a database to this version's schema (every server start does
too, under a lock, so this is for doing it before replicas roll out); `copy` moves
a SQLite file's contents to another database, typically PostgreSQL.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

if TYPE_CHECKING:
    from turnstream.storage.sql import SQLStore

__all__ = ["database_option", "db_app", "display_database", "open_database"]

db_app = typer.Typer(
    help="The server's database: migrate it, or copy a SQLite file to PostgreSQL.",
    no_args_is_help=True,
)


def display_database(database: str | Path) -> str:
    """A database for a log line: a URL without its password."""
    if isinstance(database, str) and "://" in database:
        return make_url(database).render_as_string(hide_password=True)
    return str(database)


def _database(db: str | None) -> str | Path:
    from turnstream.server.settings import default_db_path, default_db_url

    if db:
        return db if "://" in db else Path(db)
    return default_db_url() or default_db_path()


database_option = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="SQLite file or postgresql://USER@HOST:PORT/DB (default: $TURNSTREAM_DB or a file in the user data dir).",
    ),
]
"""The `--db` every command that opens the server's database takes, like `serve`."""


def open_database(db: str | None) -> SQLStore:
    """The store `--db` (or its default) names; not opened yet."""
    from turnstream.storage import create_store

    return create_store(_database(db))


def _fail(message: str) -> typer.Exit:
    typer.echo(f"turnstream: {message}", err=True)
    return typer.Exit(1)


@db_app.command()
def upgrade(
    db: Annotated[
        str | None,
        typer.Option(
            help="SQLite file or postgresql://USER@HOST:PORT/DB (default: $TURNSTREAM_DB or a file in the user data dir)."
        ),
    ] = None,
) -> None:
    """Migrate the database to this version's schema (a no-op when it is current)."""
    from turnstream.storage import SchemaTooNewError, create_store
    from turnstream.storage.migrations import head_revision

    database = _database(db)
    try:
        asyncio.run(create_store(database).upgrade())
    except (SchemaTooNewError, SQLAlchemyError, OSError, ValueError) as exc:
        raise _fail(f"{display_database(database)}: {exc}") from None
    typer.echo(f"turnstream: {display_database(database)} is at revision {head_revision()}")


@db_app.command()
def copy(
    from_: Annotated[
        Path, typer.Option("--from", help="The SQLite file to copy (it is migrated first).")
    ],
    to: Annotated[str, typer.Option("--to", help="The target: postgresql://USER@HOST:PORT/DB.")],
    into_non_empty: Annotated[
        bool,
        typer.Option(
            "--into-non-empty",
            help="Add to a target that already holds data (an id in both aborts the copy).",
        ),
    ] = False,
) -> None:
    """Copy every response, item, conversation, stored event, API key and server
    secret (the compaction key), ids unchanged.

    The target must be empty unless --into-non-empty is given. One transaction:
    a failed copy leaves the target as it was.
    """
    from turnstream.storage.copy import (
        SecretConflictError,
        TargetNotEmptyError,
        copy_database,
        describe,
    )

    try:
        counts = asyncio.run(copy_database(from_, to, into_non_empty=into_non_empty))
    except (TargetNotEmptyError, SecretConflictError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from None
    except (SQLAlchemyError, OSError, ValueError) as exc:
        raise _fail(f"copy failed, the target is unchanged: {exc}") from None
    typer.echo(f"turnstream: copied {describe(counts)} to {display_database(to)}")
