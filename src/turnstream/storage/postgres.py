"""`PostgresStore`: the SQL store on PostgreSQL (asyncpg), for replicas sharing state.

Write transactions run at READ COMMITTED; what makes them atomic is the
conversation row lock every conversation-changing write takes first (see
`SQLStore._lock_conversation`) and the lease's single `INSERT ... ON CONFLICT DO
UPDATE ... WHERE expired RETURNING`. A write that still meets a serialization
failure or a deadlock is retried from the start, a few times, as PostgreSQL's
documentation advises. Reads run at REPEATABLE READ, so a read of several
statements sees one snapshot (read-only transactions there never fail).

Followers of a background response's events, and the replica running a response
that another one asked to cancel, are woken by LISTEN/NOTIFY (see `notifications`). Migrations run under a transaction-scoped advisory lock, so replicas starting
together migrate once: the others wait, then find the schema current.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from turnstream.storage import DEFAULT_POOL_SIZE, is_postgres_url
from turnstream.storage.dialect import T, Wakeup, Work
from turnstream.storage.migrations import upgrade_to_head
from turnstream.storage.notifications import PAYLOAD_SQL, Listener
from turnstream.storage.sql import SQLStore

__all__ = [
    "MIGRATION_LOCK_KEY",
    "PostgresStore",
    "create_postgres_engine",
]

logger = logging.getLogger(__name__)

# An arbitrary, fixed 64-bit key: every turnstream process agrees on it.
MIGRATION_LOCK_KEY = 0x7475726E73747265  # "turnstre"
_RETRY_SQLSTATES = frozenset({"40001", "40P01"})  # serialization failure, deadlock
_WRITE_ATTEMPTS = 5


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _dsn(url: str) -> str:
    """The libpq-style DSN asyncpg understands (it does not know `+asyncpg`)."""
    return "postgresql://" + url.split("://", 1)[1]


def create_postgres_engine(url: str, *, pool_size: int = DEFAULT_POOL_SIZE) -> AsyncEngine:
    """An engine whose pool holds up to `pool_size` asyncpg connections.

    The URL goes to asyncpg as it is, so its query parameters mean what they mean
    to asyncpg (`sslmode`, and any other name as a server setting, for example
    `?search_path=tenant1`).
    """
    if pool_size < 1:
        raise ValueError(f"pool_size must be at least 1, got {pool_size}")
    dsn = _dsn(url)
    return create_async_engine(
        "postgresql+asyncpg://",
        async_creator=lambda: asyncpg.connect(dsn),
        json_serializer=_dumps,
        pool_size=pool_size,
        max_overflow=0,
        # A replica outlives database restarts: check a pooled connection first.
        pool_pre_ping=True,
    )


def _retryable(exc: DBAPIError) -> bool:
    sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(
        getattr(exc.orig, "__cause__", None), "sqlstate", None
    )
    return sqlstate in _RETRY_SQLSTATES


class PostgresStore(SQLStore):
    """The Store protocol on a PostgreSQL database; see the module docstring.

    Args:
        url: `postgresql://USER@HOST:PORT/DB` (also `postgresql+asyncpg://`).
        pool_size: Connections this store keeps at most.
        clock, owner, owner_ttl: See `SQLStore`.
    """

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = DEFAULT_POOL_SIZE,
        clock: Callable[[], float] = time.time,
        owner: str | None = None,
        owner_ttl: float = 30.0,
    ) -> None:
        if not is_postgres_url(url):
            raise ValueError(f"not a PostgreSQL URL: {url!r}")
        super().__init__(clock=clock, owner=owner, owner_ttl=owner_ttl)
        self.url = url
        self._engine = create_postgres_engine(url, pool_size=pool_size)
        self._listener = Listener(_dsn(url))
        self._reader = self._engine.execution_options(isolation_level="REPEATABLE READ")

    def __repr__(self) -> str:
        return f"PostgresStore({self.url!r}, owner={self.owner!r})"

    async def _write(self, work: Work[T]) -> T:
        for attempt in range(_WRITE_ATTEMPTS):
            try:
                async with self._engine.begin() as conn:
                    return await work(conn)
            except DBAPIError as exc:
                if not _retryable(exc) or attempt == _WRITE_ATTEMPTS - 1:
                    raise
                logger.debug("retrying a write after %s", exc.orig)
                await asyncio.sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")  # the loop returns or raises

    def _read(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        return self._reader.connect()

    def _insert(self, table: sa.Table) -> Any:
        return postgresql_insert(table)

    async def _migrate(self) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
            )
            await conn.run_sync(upgrade_to_head)

    async def _notify(self, conn: AsyncConnection, channel: str, key: str) -> None:
        # Delivered at commit, so a woken watcher finds what was written.
        await conn.execute(
            sa.text(f"SELECT pg_notify(:channel, {PAYLOAD_SQL})"), {"channel": channel, "key": key}
        )

    def _watch(self, channel: str, key: str) -> contextlib.AbstractAsyncContextManager[Wakeup]:
        return self._listener.watch(channel, key)

    async def _dispose(self) -> None:
        await self._listener.close()
        await self._engine.dispose()
