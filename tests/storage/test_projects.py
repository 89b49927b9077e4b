"""Tenant isolation in the store: a scoped view never reaches another project's rows,
and another project's id answers exactly like a missing one."""

from __future__ import annotations

import pytest

from turnstream.storage import ConversationNotFoundError, ResponseRecord
from turnstream.storage.sql import SQLStore


def _record(response_id: str, previous: str | None = None) -> ResponseRecord:
    return ResponseRecord(
        id=response_id,
        response={"id": response_id, "object": "response", "status": "in_progress", "output": []},
        input_items=[{"type": "message", "role": "user", "content": "secret"}],
        previous_response_id=previous,
        background=True,
    )


async def test_responses_of_another_project_look_missing(store: SQLStore) -> None:
    alpha, beta = store.scoped("alpha"), store.scoped("beta")
    await alpha.insert_response(_record("resp_a"))
    await alpha.append_events("resp_a", [(0, "{}")])
    assert await beta.get_response("resp_a") is None
    assert await beta.response_chain("resp_a") is None
    page = await beta.list_input_items("resp_a", after=None, limit=10, order="asc")
    assert page.data == []
    assert not page.has_more
    assert await beta.list_events("resp_a", after=None) == []
    assert not await beta.request_cancel("resp_a")
    assert not await beta.wait_for_cancel("resp_a", within=0)
    await beta.update_response("resp_a", {"id": "resp_a", "status": "completed"})
    assert not await beta.delete_response("resp_a")
    # untouched for its own project
    record = await alpha.get_response("resp_a")
    assert record is not None
    assert record.status == "in_progress"
    assert await alpha.list_events("resp_a", after=None) == [(0, "{}")]
    assert await alpha.response_chain("resp_a") is not None


async def test_a_chain_never_crosses_projects(store: SQLStore) -> None:
    alpha, beta = store.scoped("alpha"), store.scoped("beta")
    await alpha.insert_response(_record("resp_a"))
    await beta.insert_response(_record("resp_b", previous="resp_a"))
    assert await beta.response_chain("resp_b") is None


async def test_conversations_of_another_project_look_missing(store: SQLStore) -> None:
    alpha, beta = store.scoped("alpha"), store.scoped("beta")
    await alpha.create_conversation(
        "conv_a",
        metadata={"k": "v"},
        items=[{"id": "msg_1", "type": "message", "role": "user", "content": "secret"}],
        created_at=1,
    )
    assert await beta.get_conversation("conv_a") is None
    assert await beta.update_conversation("conv_a", metadata={}) is None
    assert await beta.get_item("conv_a", "msg_1") is None
    for call in (
        beta.all_items("conv_a"),
        beta.list_items("conv_a", after=None, limit=10, order="asc"),
        beta.add_items("conv_a", [{"type": "message", "role": "user", "content": "x"}]),
        beta.delete_item("conv_a", "msg_1"),
        beta.acquire_lock("conv_a", "resp_x", ttl=10),
    ):
        with pytest.raises(ConversationNotFoundError):
            await call
    assert not await beta.delete_conversation("conv_a")
    assert await alpha.get_conversation("conv_a") == {
        "id": "conv_a",
        "object": "conversation",
        "created_at": 1,
        "metadata": {"k": "v"},
    }
    assert len(await alpha.all_items("conv_a")) == 1
    assert await alpha.lock_expires_in("conv_a") is None


async def test_the_unscoped_store_is_the_default_project(store: SQLStore) -> None:
    await store.insert_response(_record("resp_d"))
    assert await store.scoped("default").get_response("resp_d") is not None
    assert await store.scoped("alpha").get_response("resp_d") is None


async def test_the_stale_sweep_covers_every_project(store: SQLStore) -> None:
    alpha = store.scoped("alpha")
    await alpha.insert_response(_record("resp_a"))
    assert await store.fail_stale_responses(owner=store.owner) == ["resp_a"]
    record = await alpha.get_response("resp_a")
    assert record is not None
    assert record.status == "failed"
