"""What only the PostgreSQL store does: retries, and replicas with pools of their own."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.databases import fresh_postgres_url
from tests.storage.conftest import FakeClock
from turnstream.storage import create_store
from turnstream.storage.notifications import PAYLOAD_SQL, addressed_key
from turnstream.storage.postgres import PostgresStore


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_postgres_url() as url:
        yield url


def raising(sqlstate: str) -> sa.TextClause:
    return sa.text(f"DO $$ BEGIN RAISE EXCEPTION 'injected' USING ERRCODE = '{sqlstate}'; END $$")


@pytest.mark.parametrize("sqlstate", ["40001", "40P01"])  # serialization failure, deadlock
async def test_a_write_meeting_a_serialization_failure_or_deadlock_is_retried(
    pg_url: str, sqlstate: str
) -> None:
    store = PostgresStore(pg_url)
    calls = 0

    async def work(conn: AsyncConnection) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            await conn.execute(raising(sqlstate))
        return int(await conn.scalar(sa.text("SELECT 42")) or 0)

    try:
        assert await store._write(work) == 42
    finally:
        await store.close()
    assert calls == 2


async def test_other_database_errors_are_not_retried(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    calls = 0

    async def work(conn: AsyncConnection) -> None:
        nonlocal calls
        calls += 1
        await conn.execute(raising("22012"))  # division_by_zero

    try:
        with pytest.raises(DBAPIError, match="injected"):
            await store._write(work)
    finally:
        await store.close()
    assert calls == 1


async def test_replicas_racing_for_one_conversation_have_one_winner_per_round(
    pg_url: str,
) -> None:
    clock = FakeClock()
    replicas = [create_store(pg_url, clock=clock, pool_size=4) for _ in range(3)]
    await asyncio.gather(*(replica.open() for replica in replicas))
    try:
        await replicas[0].create_conversation("conv_1", metadata={}, items=[], created_at=0)
        for round_ in range(20):
            holders = [f"r{i}-{round_}-{n}" for i in range(3) for n in range(4)]
            won = await asyncio.gather(
                *(
                    replicas[i % 3].acquire_lock("conv_1", holder, ttl=10)
                    for i, holder in enumerate(holders)
                )
            )
            assert sum(won) == 1
            winner = holders[won.index(True)]
            await replicas[round_ % 3].release_lock("conv_1", winner)
    finally:
        for replica in replicas:
            await replica.close()


async def test_notifications_name_the_writers_schema_and_wake_only_that_schemas_watchers(
    pg_url: str,
) -> None:
    """Stores on two schemas of one database share its channels, and their ids may
    match: a follower must not be woken by the other schema's events."""
    store = PostgresStore(pg_url)
    try:
        async with store._engine.begin() as conn:
            schema = (await conn.execute(sa.text("SELECT current_schema()"))).scalar_one()
            payload = (
                await conn.execute(sa.text(f"SELECT {PAYLOAD_SQL}"), {"key": "resp_1"})
            ).scalar_one()
    finally:
        await store.close()
    assert schema.startswith("ts_")  # the test's own schema, from the URL's search_path
    assert payload == f"resp_1/{schema}"
    assert addressed_key(payload, schema) == "resp_1"
    assert addressed_key(payload, "ts_other") is None
    assert addressed_key("resp_1", schema) == "resp_1"  # a writer from before the rule


class _HeldConnection:
    """An asyncpg connection stand-in whose first query waits for the test."""

    def __init__(self, answer: asyncio.Event) -> None:
        self.answer = answer
        self.asked = asyncio.Event()
        self.terminated = False

    async def fetchval(self, query: str) -> str:
        self.asked.set()
        await self.answer.wait()
        return "public"

    def terminate(self) -> None:
        self.terminated = True

    def add_termination_listener(self, callback: object) -> None:
        raise AssertionError("a connection that is not kept gets no listener")


async def test_a_listen_connection_is_closed_if_its_waiter_goes_away_while_it_opens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from turnstream.storage import notifications

    connections = [_HeldConnection(asyncio.Event()), _HeldConnection(asyncio.Event())]
    unused = iter(connections)

    async def connect(dsn: str) -> _HeldConnection:
        return next(unused)

    monkeypatch.setattr(notifications.asyncpg, "connect", connect)
    listener = notifications.Listener("postgresql://x/y")
    # the waiter is cancelled while the new connection answers its first query
    waiter = asyncio.create_task(listener._listen("c"))
    await connections[0].asked.wait()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    # the listener is closed while a second connection opens
    opening = asyncio.create_task(listener._listen("c"))
    await connections[1].asked.wait()
    await listener.close()
    connections[1].answer.set()
    with pytest.raises(RuntimeError, match="closed while it connected"):
        await opening
    assert [c.terminated for c in connections] == [True, True]
