"""Durable state for the server: responses, conversations, items and the lock.

`create_store(url_or_path)` builds a Store from configuration: a SQLite file (the
embedded default) or a PostgreSQL URL (replicas sharing state). The Store protocol
and its records and errors live in `turnstream.storage.base`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from turnstream.storage.availability import is_unavailable
from turnstream.storage.base import (
    ConversationLockedError,
    ConversationNotFoundError,
    DuplicateItemError,
    IdempotencyRecord,
    ItemPage,
    ResponseRecord,
    Store,
)
from turnstream.storage.migrations import SchemaTooNewError
from turnstream.storage.sql import SQLStore
from turnstream.storage.sqlite import SQLiteStore

__all__ = [
    "ConversationLockedError",
    "ConversationNotFoundError",
    "DuplicateItemError",
    "IdempotencyRecord",
    "ItemPage",
    "ResponseRecord",
    "SQLiteStore",
    "SchemaTooNewError",
    "Store",
    "create_store",
    "is_postgres_url",
    "is_unavailable",
    "sqlite_path",
]

DEFAULT_POOL_SIZE = 10
_SQLITE_SCHEMES = ("sqlite:///", "sqlite+aiosqlite:///")
_POSTGRES_SCHEMES = ("postgresql://", "postgresql+asyncpg://", "postgres://")


def is_postgres_url(url_or_path: str | Path) -> bool:
    return isinstance(url_or_path, str) and url_or_path.startswith(_POSTGRES_SCHEMES)


def sqlite_path(url_or_path: str | Path) -> Path:
    """The file a SQLite path or `sqlite:///` URL names.

    Raises:
        ValueError: for in-memory SQLite or a URL of another scheme.
    """
    if isinstance(url_or_path, Path):
        return url_or_path
    path = url_or_path
    for scheme in _SQLITE_SCHEMES:
        if url_or_path.startswith(scheme):
            path = url_or_path.removeprefix(scheme).split("?", 1)[0]
            break
    else:
        if "://" in url_or_path:
            raise ValueError(f"unsupported storage URL: {url_or_path!r}")
    if path in ("", ":memory:"):
        raise ValueError("in-memory SQLite is not supported: give the store a file path")
    return Path(path)


def create_store(
    url_or_path: str | Path,
    *,
    clock: Callable[[], float] = time.time,
    owner: str | None = None,
    owner_ttl: float = 30.0,
    pool_size: int = DEFAULT_POOL_SIZE,
) -> SQLStore:
    """A Store for a SQLite file or a PostgreSQL database (not opened yet).

    Accepts a path (`state/turnstream.db`), `sqlite:///relative.db` or
    `sqlite:////absolute.db` (also with `+aiosqlite`), and
    `postgresql://USER@HOST:PORT/DB` (also `postgresql+asyncpg://`, `postgres://`).
    Await `open()` before use.

    Args:
        owner: This store's owner id (default: unique per instance).
        owner_ttl: How long this process's heartbeat vouches for its running
            responses; after a crash, others fail them once it has lapsed.
        pool_size: PostgreSQL only: the most connections the store keeps open.

    Raises:
        ValueError: for in-memory SQLite or an unknown URL scheme.
    """
    if is_postgres_url(url_or_path):
        # Imported here so that SQLite users never need asyncpg installed.
        from turnstream.storage.postgres import PostgresStore

        return PostgresStore(
            str(url_or_path), pool_size=pool_size, clock=clock, owner=owner, owner_ttl=owner_ttl
        )
    return SQLiteStore(sqlite_path(url_or_path), clock=clock, owner=owner, owner_ttl=owner_ttl)
