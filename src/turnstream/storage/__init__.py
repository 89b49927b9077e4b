"""Durable state for the server: responses, conversations, items and the lock.

`create_store(url_or_path)` builds a Store from configuration; the Store protocol and
its records and errors live in `turnstream.storage.base`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from turnstream.storage.base import (
    ConversationLockedError,
    ConversationNotFoundError,
    DuplicateItemError,
    ItemPage,
    ResponseRecord,
    Store,
)
from turnstream.storage.sqlite import SQLiteStore

__all__ = [
    "ConversationLockedError",
    "ConversationNotFoundError",
    "DuplicateItemError",
    "ItemPage",
    "ResponseRecord",
    "SQLiteStore",
    "Store",
    "create_store",
]

_SQLITE_SCHEMES = ("sqlite:///", "sqlite+aiosqlite:///")
_POSTGRES_SCHEMES = ("postgresql://", "postgresql+asyncpg://", "postgres://")


def create_store(
    url_or_path: str | Path, *, clock: Callable[[], float] = time.time, owner_ttl: float = 30.0
) -> Store:
    """A Store for a SQLite file path or URL (the store is not opened yet).

    `owner_ttl` is how long this process's heartbeat vouches for its running
    responses; after a crash, others fail them once it has lapsed.

    Accepts a path (`state/turnstream.db`), `sqlite:///relative.db` or
    `sqlite:////absolute.db` (also with `+aiosqlite`). Await `open()` before use.

    Raises:
        NotImplementedError: for `postgresql://` URLs (not implemented yet).
        ValueError: for in-memory SQLite or an unknown URL scheme.
    """
    if isinstance(url_or_path, Path):
        return SQLiteStore(url_or_path, clock=clock, owner_ttl=owner_ttl)
    if url_or_path.startswith(_POSTGRES_SCHEMES):
        raise NotImplementedError(
            "PostgreSQL storage is not implemented yet; use a SQLite path or sqlite:/// URL"
        )
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
    return SQLiteStore(path, clock=clock, owner_ttl=owner_ttl)
