"""The SQLite engine: pragmas, explicit BEGIN, and write transactions.

The sqlite3 driver (and aiosqlite on top of it) by default starts transactions
lazily and only before DML, which makes SELECTs unrepeatable and lets two processes
both read "unlocked" before either writes. Following SQLAlchemy's documented recipe
("Enabling Non-Legacy SQLite Transactional Modes"), the driver's own transaction
handling is switched off (`isolation_level = None`) and SQLAlchemy's `begin` event
emits BEGIN itself: `BEGIN IMMEDIATE` for writes, so a write transaction takes the
database's write lock up front and every check-then-write inside it is atomic across
processes; plain (deferred) `BEGIN` for reads, which in WAL mode never wait.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

__all__ = ["BUSY_TIMEOUT_SECONDS", "create_sqlite_engines"]

BUSY_TIMEOUT_SECONDS = 5.0
_BEGIN_OPTION = "turnstream_sqlite_begin"


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
