"""`SQLiteStore`: the SQL store on one SQLite file (aiosqlite), the embedded default.

Several processes may share the file. SQLite has no row locks, so every write runs
in a `BEGIN IMMEDIATE` transaction, which takes the database's write lock up front:
a check and the write that depends on it are one atomic step for every process.

The sqlite3 driver (and aiosqlite on top of it) by default starts transactions
lazily and only before DML, which makes SELECTs unrepeatable and lets two processes
both read "unlocked" before either writes. Following SQLAlchemy's documented recipe
("Enabling Non-Legacy SQLite Transactional Modes"), the driver's own transaction
handling is switched off (`isolation_level = None`) and SQLAlchemy's `begin` event
emits BEGIN itself: `BEGIN IMMEDIATE` for writes; plain (deferred) `BEGIN` for
reads, which in WAL mode never wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from turnstream.storage.dialect import T, Work
from turnstream.storage.migrations import upgrade_to_head
from turnstream.storage.sql import SQLStore

__all__ = ["BUSY_TIMEOUT_SECONDS", "SQLiteStore", "create_sqlite_engines"]

BUSY_TIMEOUT_SECONDS = 5.0
_BEGIN_OPTION = "turnstream_sqlite_begin"
_OPEN_ATTEMPTS = 5


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def create_sqlite_engines(path: Path) -> tuple[AsyncEngine, AsyncEngine]:
    """Return `(reader, writer)`: one engine and pool, two BEGIN modes.

    Connections from `writer` start their transactions with `BEGIN IMMEDIATE`.
    """
    engine = create_async_engine(
        URL.create("sqlite+aiosqlite", database=str(path)),
        json_serializer=_dumps,
        connect_args={"timeout": BUSY_TIMEOUT_SECONDS},
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _configure(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            # busy_timeout first, so that switching a new file to WAL waits for a
            # concurrent opener instead of failing with "database is locked".
            cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
            cursor.execute("PRAGMA journal_mode = WAL")
            # NORMAL is the documented pairing with WAL: no corruption on a crash,
            # but a power cut may drop the last commits. Turns are not worth an
            # fsync per commit on every request.
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get(_BEGIN_OPTION, "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    writer = engine.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})
    return engine, writer


class SQLiteStore(SQLStore):
    """The Store protocol on a SQLite file; see the module docstring.

    Args:
        path: The database file; missing parent directories are created.
        clock, owner, owner_ttl: See `SQLStore`.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Callable[[], float] = time.time,
        owner: str | None = None,
        owner_ttl: float = 30.0,
    ) -> None:
        super().__init__(clock=clock, owner=owner, owner_ttl=owner_ttl)
        self.path = Path(path)
        self._engine, self._writer = create_sqlite_engines(self.path)
        # SQLite has one writer at a time anyway; queueing this process's writers
        # here (fairly, in order) instead of in SQLite's sleep-and-retry busy handler
        # keeps a burst of turns from starving one writer past the busy timeout.
        # The busy timeout still arbitrates between processes.
        self._write_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r}, owner={self.owner!r})"

    async def _write(self, work: Work[T]) -> T:
        """A `BEGIN IMMEDIATE` transaction, one at a time within this process."""
        async with self._write_lock, self._writer.begin() as conn:
            return await work(conn)

    def _read(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        return self._engine.connect()

    def _insert(self, table: sa.Table) -> Any:
        return sqlite_insert(table)

    async def _migrate(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(_OPEN_ATTEMPTS):
            try:
                # One BEGIN IMMEDIATE around the whole migration: a second process
                # opening the same new file waits, then finds the schema current.
                await self._write(lambda conn: conn.run_sync(upgrade_to_head))
                return
            except OperationalError as exc:
                # Switching a brand-new file to WAL can still race another opener.
                if "locked" not in str(exc) or attempt == _OPEN_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(0.05 * (attempt + 1))

    async def _dispose(self) -> None:
        await self._engine.dispose()
