"""Following a background response's event log: wait for events appended anywhere."""

from __future__ import annotations

import asyncio

import pytest

from tests.storage.conftest import FakeClock, OpenStore
from turnstream.storage import ResponseRecord
from turnstream.storage.sql import SQLStore

# An upper bound for waits that end as soon as the events are there.
PATIENCE = 30.0
# A wait longer than any test: a follower returns within PATIENCE only if woken.
FOREVER = 3600.0


async def background_response(store: SQLStore, response_id: str = "resp_bg") -> str:
    await store.insert_response(
        ResponseRecord(
            id=response_id, response={"id": response_id}, status="queued", background=True
        )
    )
    return response_id


async def test_waiting_returns_the_stored_events_after_the_cursor_at_once(store: SQLStore) -> None:
    rid = await background_response(store)
    await store.append_events(rid, [(0, "a"), (1, "b"), (2, "c")])

    assert await store.wait_for_events(rid, after=0, within=PATIENCE) == [(1, "b"), (2, "c")]
    assert await store.wait_for_events(rid, after=None, within=PATIENCE) == [
        (0, "a"),
        (1, "b"),
        (2, "c"),
    ]


async def test_waiting_with_nothing_appended_ends_empty_after_the_wait(store: SQLStore) -> None:
    rid = await background_response(store)
    await store.append_events(rid, [(0, "a")])

    assert await store.wait_for_events(rid, after=0, within=0.1) == []


async def test_a_follower_is_woken_by_events_another_replica_appends(
    open_store: OpenStore,
) -> None:
    runner, follower = await open_store(), await open_store()
    rid = await background_response(runner)
    await runner.append_events(rid, [(0, "a")])
    looked = asyncio.Event()
    list_events = follower.list_events

    async def observed_list_events(response_id: str, *, after: int | None) -> list[tuple[int, str]]:
        events = await list_events(response_id, after=after)
        looked.set()
        return events

    follower.list_events = observed_list_events  # type: ignore[method-assign]  # see when it looked
    waiting = asyncio.create_task(follower.wait_for_events(rid, after=0, within=FOREVER))
    await looked.wait()  # it found nothing new and is waiting now
    await runner.append_events(rid, [(1, "b"), (2, "c")])

    assert await asyncio.wait_for(waiting, PATIENCE) == [(1, "b"), (2, "c")]


@pytest.mark.parametrize("backend", ["postgresql"])  # SQLite cannot notify: it polls
async def test_on_postgresql_a_follower_waits_for_the_notification_instead_of_polling(
    open_store: OpenStore,
) -> None:
    runner, follower = await open_store(), await open_store()
    rid = await background_response(runner)
    looks = 0
    first_look = asyncio.Event()
    list_events = follower.list_events

    async def counted_list_events(response_id: str, *, after: int | None) -> list[tuple[int, str]]:
        nonlocal looks
        looks += 1
        events = await list_events(response_id, after=after)
        first_look.set()
        return events

    follower.list_events = counted_list_events  # type: ignore[method-assign]  # count the looks
    waiting = asyncio.create_task(follower.wait_for_events(rid, after=None, within=FOREVER))
    await first_look.wait()
    await runner.append_events(rid, [(0, "a")])

    assert await asyncio.wait_for(waiting, PATIENCE) == [(0, "a")]
    assert looks == 2  # once before waiting, once when notified: no poll in between


async def test_expiry_drops_the_events_of_responses_that_ended_before_the_cutoff_only(
    store: SQLStore, clock: FakeClock
) -> None:
    ended = await background_response(store, "resp_ended")
    later = await background_response(store, "resp_later")
    running = await background_response(store, "resp_running")
    for rid in (ended, later, running):
        await store.append_events(rid, [(0, "a"), (1, "b")])
    await store.update_response(ended, {"id": ended, "status": "completed"})
    clock.advance(100)
    await store.update_response(later, {"id": later, "status": "cancelled"})
    clock.advance(100)

    # the cutoff lies between the two ends; the running response never expires
    assert await store.expire_events(ended_before=clock.now - 150) == 1
    assert await store.list_events(ended, after=None) == []
    assert await store.list_events(later, after=None) == [(0, "a"), (1, "b")]
    assert await store.list_events(running, after=None) == [(0, "a"), (1, "b")]
    record = await store.get_response(later)
    assert record is not None
    assert record.updated_at == clock.now - 100  # when it ended, for the resume check

    assert await store.expire_events(ended_before=clock.now + 1) == 1
    assert await store.list_events(later, after=None) == []
    assert await store.list_events(running, after=None) == [(0, "a"), (1, "b")]
