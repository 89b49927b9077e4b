from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.storage.conftest import FakeClock, OpenStore
from turnstream.storage import ResponseRecord
from turnstream.storage.sql import STALE_RESPONSE_ERROR, SQLStore


def response(response_id: str, status: str = "in_progress", **extra: Any) -> dict[str, Any]:
    return {"id": response_id, "object": "response", "status": status, "output": [], **extra}


def record(response_id: str, **fields: Any) -> ResponseRecord:
    return ResponseRecord(id=response_id, response=response(response_id), **fields)


async def test_inserted_response_reads_back_with_every_field(store: SQLStore) -> None:
    await store.insert_response(
        ResponseRecord(
            id="resp_1",
            response=response("resp_1", "queued", model="m"),
            input_items=[{"type": "message", "role": "user", "content": "hi"}],
            conversation_id="conv_1",
            status="queued",
            background=True,
            created_at=123,
        )
    )

    got = await store.get_response("resp_1")

    assert got is not None
    assert got.response == response("resp_1", "queued", model="m")
    assert got.status == "queued"
    assert got.background is True
    assert got.created_at == 123
    assert got.conversation_id == "conv_1"
    assert got.previous_response_id is None
    assert got.owner == store.owner
    [item] = got.input_items
    assert item["id"].startswith("msg_")
    assert item["status"] == "completed"


async def test_insert_response_writes_assigned_input_item_ids_back_to_the_record(
    store: SQLStore,
) -> None:
    rec = record(
        "resp_1",
        input_items=[
            {"role": "user", "content": "a"},
            {"id": "msg_x", "role": "user", "content": "b"},
        ],
    )

    await store.insert_response(rec)

    assert rec.input_items[0]["id"].startswith("msg_")
    assert rec.input_items[1]["id"] == "msg_x"
    got = await store.get_response("resp_1")
    assert got is not None
    assert got.input_items == rec.input_items


async def test_inserting_a_response_id_twice_is_refused(store: SQLStore) -> None:
    await store.insert_response(record("resp_1"))
    with pytest.raises(ValueError, match="already exists"):
        await store.insert_response(record("resp_1"))


async def test_update_response_replaces_the_object_and_takes_status_from_it(
    store: SQLStore,
) -> None:
    await store.insert_response(record("resp_1"))

    await store.update_response("resp_1", response("resp_1", "completed", output=[{"id": "msg_1"}]))

    got = await store.get_response("resp_1")
    assert got is not None
    assert got.status == "completed"
    assert got.response["output"] == [{"id": "msg_1"}]


async def test_update_of_a_missing_response_is_a_no_op(store: SQLStore) -> None:
    await store.update_response("resp_missing", response("resp_missing", "completed"))
    assert await store.get_response("resp_missing") is None


async def test_unknown_response_reads_as_none(store: SQLStore) -> None:
    assert await store.get_response("resp_nope") is None


async def test_deleted_response_is_gone_and_a_second_delete_reports_false(
    store: SQLStore,
) -> None:
    await store.insert_response(record("resp_1", input_items=[{"role": "user", "content": "x"}]))

    assert await store.delete_response("resp_1") is True
    assert await store.get_response("resp_1") is None
    assert await store.delete_response("resp_1") is False
    page = await store.list_input_items("resp_1", after=None, limit=10, order="asc")
    assert page.data == []


async def test_response_chain_is_oldest_first_with_input_items(store: SQLStore) -> None:
    await store.insert_response(
        record("resp_1", input_items=[{"id": "msg_a", "role": "user", "content": "a"}])
    )
    await store.insert_response(record("resp_2", previous_response_id="resp_1"))
    await store.insert_response(
        record(
            "resp_3",
            previous_response_id="resp_2",
            input_items=[
                {"id": "fco_c", "type": "function_call_output", "call_id": "call_1", "output": "x"}
            ],
        )
    )

    chain = await store.response_chain("resp_3")

    assert chain is not None
    assert [r.id for r in chain] == ["resp_1", "resp_2", "resp_3"]
    assert [i["id"] for i in chain[0].input_items] == ["msg_a"]
    assert chain[1].input_items == []
    assert [i["id"] for i in chain[2].input_items] == ["fco_c"]


async def test_chain_of_a_single_response_is_that_response(store: SQLStore) -> None:
    await store.insert_response(record("resp_1"))
    chain = await store.response_chain("resp_1")
    assert chain is not None
    assert [r.id for r in chain] == ["resp_1"]


async def test_deleting_a_response_breaks_every_chain_through_it(store: SQLStore) -> None:
    await store.insert_response(record("resp_1"))
    await store.insert_response(record("resp_2", previous_response_id="resp_1"))
    await store.insert_response(record("resp_3", previous_response_id="resp_2"))

    await store.delete_response("resp_2")

    assert await store.response_chain("resp_3") is None
    assert await store.response_chain("resp_2") is None
    assert await store.get_response("resp_3") is not None
    assert await store.response_chain("resp_1") is not None


async def test_chain_to_an_unknown_response_is_none(store: SQLStore) -> None:
    assert await store.response_chain("resp_nope") is None
    await store.insert_response(record("resp_2", previous_response_id="resp_never_stored"))
    assert await store.response_chain("resp_2") is None


async def test_stale_responses_of_a_gone_owner_fail_with_server_error(
    store: SQLStore, open_store: OpenStore, clock: FakeClock
) -> None:
    dead = await open_store(clock=clock, owner="dead-process")
    await dead.insert_response(record("resp_running"))
    await dead.insert_response(record("resp_queued", status="queued"))
    await dead.insert_response(record("resp_done"))
    await dead.update_response("resp_done", response("resp_done", "completed"))
    await dead.close()  # its owner row goes; its unfinished responses are orphans

    failed = await store.fail_stale_responses()

    assert sorted(failed) == ["resp_queued", "resp_running"]
    got = await store.get_response("resp_running")
    assert got is not None
    assert got.status == "failed"
    assert got.response["status"] == "failed"
    assert got.response["error"] == STALE_RESPONSE_ERROR
    done = await store.get_response("resp_done")
    assert done is not None
    assert done.status == "completed"


async def test_stale_sweep_never_fails_responses_of_a_live_owner(
    store: SQLStore, open_store: OpenStore, clock: FakeClock
) -> None:
    other = await open_store(clock=clock, owner="other-live-process")
    try:
        await other.insert_response(record("resp_other"))
        await store.insert_response(record("resp_mine"))

        assert await store.fail_stale_responses() == []

        got = await store.get_response("resp_other")
        assert got is not None
        assert got.status == "in_progress"
    finally:
        await other.close()


async def test_stale_sweep_fails_responses_whose_owner_stopped_heartbeating(
    store: SQLStore, open_store: OpenStore, clock: FakeClock
) -> None:
    crashed = await open_store(clock=clock, owner="crashed", owner_ttl=30)
    await crashed.insert_response(record("resp_orphan"))
    clock.advance(31)  # no heartbeat since: the owner row has expired
    await store.open()  # (already open: a no-op) the sweeping store is alive

    try:
        assert await store.fail_stale_responses() == ["resp_orphan"]
    finally:
        await crashed.close()


async def test_stale_sweep_spares_a_response_whose_conversation_lease_is_live(
    store: SQLStore, open_store: OpenStore, clock: FakeClock
) -> None:
    gone = await open_store(clock=clock, owner="gone")
    await gone.create_conversation("conv_1", metadata={}, items=[], created_at=0)
    await gone.acquire_lock("conv_1", "turn-1", ttl=60)
    await gone.insert_response(record("resp_1", conversation_id="conv_1"))
    await gone.close()  # the owner is gone; only the live lease still protects resp_1

    assert await store.fail_stale_responses() == []
    clock.advance(61)
    assert await store.fail_stale_responses() == ["resp_1"]


async def test_stale_sweep_for_a_named_owner_fails_only_that_owners_responses(
    store: SQLStore, open_store: OpenStore, clock: FakeClock
) -> None:
    other = await open_store(clock=clock, owner="previous-run")
    await other.insert_response(record("resp_old"))
    await other.close()
    await store.insert_response(record("resp_mine"))

    assert await store.fail_stale_responses(owner="previous-run") == ["resp_old"]
    mine = await store.get_response("resp_mine")
    assert mine is not None
    assert mine.status == "in_progress"


async def test_the_heartbeat_keeps_an_open_stores_responses_alive_past_owner_ttl(
    open_store: OpenStore, clock: FakeClock
) -> None:
    runner = await open_store(owner="runner", owner_ttl=3)  # beats every 1 s (real time)
    sweeper = await open_store(owner="sweeper")
    await runner.insert_response(record("resp_long"))
    beaten = asyncio.Event()
    beat = runner._beat

    async def observed_beat() -> None:
        await beat()
        beaten.set()

    runner._beat = observed_beat  # type: ignore[method-assign]  # observe the heartbeat task
    clock.advance(10)  # far past the owner ttl: only a new heartbeat keeps runner alive
    await asyncio.wait_for(beaten.wait(), timeout=30)

    assert await sweeper.fail_stale_responses() == []
    await runner.close()
    assert await sweeper.fail_stale_responses() == ["resp_long"]


async def test_events_append_in_batches_and_list_after_a_cursor(store: SQLStore) -> None:
    await store.insert_response(
        ResponseRecord(id="resp_e", response={"id": "resp_e"}, status="queued", background=True)
    )
    await store.append_events("resp_e", [(0, '{"a":0}'), (1, '{"a":1}')])
    await store.append_events("resp_e", [(2, '{"a":2}'), (1, '{"dup":1}')])
    await store.append_events("resp_e", [])
    assert await store.list_events("resp_e", after=None) == [
        (0, '{"a":0}'),
        (1, '{"a":1}'),
        (2, '{"a":2}'),
    ]
    assert await store.list_events("resp_e", after=1) == [(2, '{"a":2}')]
    assert await store.list_events("resp_e", after=2) == []
    assert await store.list_events("resp_nope", after=None) == []
    assert await store.delete_response("resp_e")
    assert await store.list_events("resp_e", after=None) == []
