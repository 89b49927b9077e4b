"""SQLite's direct writes (`insert_response`, `update_response` in one hand-off to a
thread of their own, `storage/sqlite.py`): what the rest of the store and the
server rely on still holds. The protocol's own tests (`test_responses.py` and the
rest) run on them too."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from turnstream.storage import ResponseRecord, is_unavailable
from turnstream.storage.sqlite import SQLiteStore


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "direct.db")
    await store.open()
    yield store
    await store.close()


def record(response_id: str) -> ResponseRecord:
    body = {"id": response_id, "object": "response", "status": "in_progress", "output": []}
    return ResponseRecord(
        id=response_id,
        response=body,
        input_items=[{"type": "message", "role": "user", "content": "é ü"}],
        status="in_progress",
        created_at=7,
    )


async def test_a_direct_write_reads_back_through_sqlalchemy_as_written(
    sqlite_store: SQLiteStore,
) -> None:
    await sqlite_store.insert_response(record("resp_1"))
    final = {"id": "resp_1", "object": "response", "status": "completed", "output": [1.5, None]}
    await sqlite_store.update_response("resp_1", final)
    stored = await sqlite_store.get_response("resp_1")
    assert stored is not None
    assert (stored.status, stored.response, stored.created_at) == ("completed", final, 7)
    assert stored.background is False
    assert stored.input_items[0]["content"] == "é ü"
    assert stored.owner == sqlite_store.owner


async def test_another_projects_response_is_not_updated(sqlite_store: SQLiteStore) -> None:
    await sqlite_store.insert_response(record("resp_1"))
    other = sqlite_store.scoped("other")
    await other.update_response("resp_1", {"status": "failed"})
    stored = await sqlite_store.get_response("resp_1")
    assert stored is not None
    assert stored.status == "in_progress"


async def test_a_failed_direct_write_rolls_back_and_reads_as_the_database_being_away(
    sqlite_store: SQLiteStore, tmp_path: Path
) -> None:
    # another process holds the write lock past the busy timeout
    holder = sqlite3.connect(tmp_path / "direct.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    # (the direct writer's own connection, made now with a short busy timeout)
    sqlite_store._direct._connect().execute("PRAGMA busy_timeout = 50")
    try:
        with pytest.raises(OperationalError, match="locked") as caught:
            await sqlite_store.insert_response(record("resp_locked"))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert is_unavailable(caught.value), "a locked database is a retryable 503, as before"
    assert await sqlite_store.get_response("resp_locked") is None
    await sqlite_store.insert_response(record("resp_locked"))
    assert await sqlite_store.get_response("resp_locked") is not None
