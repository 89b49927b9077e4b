"""`turnstream keys ...`: the API keys the server accepts.

With no keys the server is open, and only on a loopback address; once one exists,
every `/v1` request needs `Authorization: Bearer KEY`. A key belongs to a project:
what is created with it is visible only to keys of the same project.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from sqlalchemy.exc import SQLAlchemyError

from .db import database_option, display_database, open_database

__all__ = ["is_loopback", "keys_app", "require_keys_beyond_loopback"]

T = TypeVar("T")

keys_app = typer.Typer(
    help="API keys: create (the secret is shown once), list, revoke.", no_args_is_help=True
)


def _run(db: str | None, work: Callable[..., Awaitable[T]]) -> T:
    from turnstream.storage import SchemaTooNewError

    async def main() -> T:
        store = open_database(db)
        await store.open()
        try:
            return await work(store)
        finally:
            await store.close()

    try:
        return asyncio.run(main())
    except (SchemaTooNewError, SQLAlchemyError, OSError) as exc:
        typer.echo(f"turnstream: {display_database(db or '')}: {exc}", err=True)
        raise typer.Exit(1) from None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name other than localhost may resolve anywhere


def require_keys_beyond_loopback(host: str, db: str | None, *, insecure_no_auth: bool) -> bool:
    """Whether the server must demand keys; exits when it would be open to a network.

    On loopback with no keys the server is open (one person's machine). Anywhere
    else it needs a key to exist, and keeps demanding one even if every key is
    revoked later, unless `--insecure-no-auth`.
    """
    if is_loopback(host) or insecure_no_auth:
        return False
    if not _run(db, lambda store: store.has_keys()):
        typer.echo(
            f"turnstream: refusing to listen on {host} with no API keys: anyone who can "
            "reach it could read and delete every conversation.\n"
            "  Create a key first:  turnstream keys create --name NAME\n"
            "  (or pass --insecure-no-auth to serve without keys anyway)",
            err=True,
        )
        raise typer.Exit(2)
    return True


def _when(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%d %H:%M")


@keys_app.command()
def create(
    name: Annotated[str, typer.Option(help="A unique name for the key (who or what uses it).")],
    project: Annotated[
        str, typer.Option(help="The project whose responses and conversations it reaches.")
    ] = "default",
    db: database_option = None,
) -> None:
    """Create a key and print its secret: it is shown only this once."""
    try:
        _, secret = _run(db, lambda store: store.create_key(name, project=project))
    except ValueError as exc:
        typer.echo(f"turnstream: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(secret)
    typer.echo(
        f"turnstream: key {name!r} (project {project!r}) created; store the secret now, "
        "it cannot be shown again.",
        err=True,
    )


@keys_app.command("list")
def list_keys(db: database_option = None) -> None:
    """Name, project, prefix, created, last used, and whether revoked (never the secret)."""
    keys = _run(db, lambda store: store.list_keys())
    if not keys:
        typer.echo("no keys: the server accepts requests without one (on loopback only)")
        return
    typer.echo(f"{'NAME':20} {'PROJECT':12} {'PREFIX':14} {'CREATED':17} {'LAST USED':17} STATE")
    for key in keys:
        state = "revoked" if key.revoked_at is not None else "active"
        typer.echo(
            f"{key.name:20} {key.project:12} {key.prefix + '…':14} {_when(key.created_at):17} "
            f"{_when(key.last_used_at):17} {state}"
        )


@keys_app.command()
def revoke(
    name_or_prefix: Annotated[str, typer.Argument(help="The key's name, or its secret's prefix.")],
    db: database_option = None,
) -> None:
    """Revoke a key; servers stop accepting it within a few seconds."""
    revoked = _run(db, lambda store: store.revoke_key(name_or_prefix))
    if not revoked:
        typer.echo(f"turnstream: no active key named or starting with {name_or_prefix!r}", err=True)
        raise typer.Exit(1)
    for key in revoked:
        typer.echo(f"revoked {key.name} ({key.prefix}…)")
