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

The two writes every stored response makes, its insert at admission and its update
at the end, skip SQLAlchemy: `_DirectWriter` runs each as one transaction in one
hand-off to a thread of its own, on a connection of its own. Through SQLAlchemy's
async path each statement (and BEGIN, and COMMIT) was a hand-off to aiosqlite's
thread, ~0.8 ms of the event loop's CPU per write, and the insert is on the way to
every stream's first event.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from turnstream.protocol.ids import stored_items
from turnstream.storage.base import JSON, ResponseRecord
from turnstream.storage.dialect import T, Work
from turnstream.storage.migrations import upgrade_to_head
from turnstream.storage.sql import SQLStore

__all__ = ["BUSY_TIMEOUT_SECONDS", "SQLiteStore", "create_sqlite_engines"]

BUSY_TIMEOUT_SECONDS = 5.0
_BEGIN_OPTION = "turnstream_sqlite_begin"
_OPEN_ATTEMPTS = 5


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


_PRAGMAS = (
    f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}",
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA foreign_keys = ON",
)
"""What every connection to the file is set to (`create_sqlite_engines` explains each)."""

_INSERT_RESPONSE = (
    "INSERT INTO responses (id, created_at, status, background, previous_response_id,"
    " conversation_id, response, owner, updated_at, project)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_INPUT_ITEM = (
    "INSERT INTO response_input_items (response_id, position, item_id, item) VALUES (?, ?, ?, ?)"
)
_UPDATE_RESPONSE = "UPDATE responses SET response = ?, updated_at = ? WHERE id = ? AND project = ?"
_UPDATE_RESPONSE_STATUS = (
    "UPDATE responses SET response = ?, updated_at = ?, status = ? WHERE id = ? AND project = ?"
)


class _DirectWriter:
    """One sqlite3 connection, used from one thread of its own: `run(work)` is a
    `BEGIN IMMEDIATE` transaction in a single hand-off to that thread.

    The store's write lock still orders it with the SQLAlchemy writes of this
    process; SQLite's busy timeout, as for any connection, with other processes.
    sqlite3's errors come out as SQLAlchemy's (`DBAPIError.instance`), the same ones
    the SQLAlchemy path raises.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="turnstream-sqlite-writer")
        self._db: sqlite3.Connection | None = None
        self._closed = False

    async def run(self, statement: str, work: Callable[[sqlite3.Connection], None]) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._transaction, work)
        except sqlite3.Error as exc:
            raise DBAPIError.instance(statement, None, exc, sqlite3.Error) from exc

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._close)
        self._executor.shutdown(wait=False)

    def _transaction(self, work: Callable[[sqlite3.Connection], None]) -> None:
        db = self._db if self._db is not None else self._connect()
        db.execute("BEGIN IMMEDIATE")
        try:
            work(db)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _connect(self) -> sqlite3.Connection:
        # autocommit mode: the transaction is the one `_transaction` begins
        db = sqlite3.connect(
            self._path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
        )
        for pragma in _PRAGMAS:
            db.execute(pragma)
        self._db = db
        return db

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


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
            # synchronous NORMAL is the documented pairing with WAL: no corruption
            # on a crash, but a power cut may drop the last commits. Turns are not
            # worth an fsync per commit on every request.
            for pragma in _PRAGMAS:
                cursor.execute(pragma)
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
        self._direct = _DirectWriter(self.path)

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
        await self._direct.close()
        await self._engine.dispose()

    # the two writes of every stored response, in one hand-off each (module docstring)

    async def insert_response(self, record: ResponseRecord) -> None:
        record.input_items = stored_items(record.input_items)
        record.owner = self.owner
        row = (
            record.id,
            record.created_at,
            record.status,
            record.background,
            record.previous_response_id,
            record.conversation_id,
            _dumps(record.response),
            record.owner,
            self._clock(),
            self.project,
        )
        items: Sequence[tuple[Any, ...]] = [
            (record.id, i, item["id"], _dumps(item)) for i, item in enumerate(record.input_items)
        ]

        def work(db: sqlite3.Connection) -> None:
            db.execute(_INSERT_RESPONSE, row)
            if items:
                db.executemany(_INSERT_INPUT_ITEM, items)

        try:
            async with self._write_lock:
                await self._direct.run(_INSERT_RESPONSE, work)
        except IntegrityError:
            raise ValueError(f"response {record.id!r} already exists") from None

    async def update_response(self, response_id: str, response: JSON) -> None:
        status = response.get("status")
        body, now = _dumps(response), self._clock()
        statement = _UPDATE_RESPONSE_STATUS if isinstance(status, str) else _UPDATE_RESPONSE
        values = (
            (body, now, status, response_id, self.project)
            if isinstance(status, str)
            else (body, now, response_id, self.project)
        )

        def work(db: sqlite3.Connection) -> None:
            db.execute(statement, values)

        async with self._write_lock:
            await self._direct.run(statement, work)
