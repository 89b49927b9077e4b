from __future__ import annotations

from typing import Any

import pytest

from turnstream.storage import (
    ConversationNotFoundError,
    DuplicateItemError,
)
from turnstream.storage.sql import SQLStore


def msg(text: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": text}],
        **extra,
    }


def texts(items: list[dict[str, Any]]) -> list[str]:
    return [item["content"][0]["text"] for item in items]


async def test_created_conversation_reads_back_as_the_wire_object(store: SQLStore) -> None:
    created = await store.create_conversation(
        "conv_1", metadata={"topic": "demo"}, items=[msg("a"), msg("b")], created_at=1700
    )

    expected = {
        "id": "conv_1",
        "object": "conversation",
        "created_at": 1700,
        "metadata": {"topic": "demo"},
    }
    assert created == expected
    assert await store.get_conversation("conv_1") == expected
    assert texts(await store.all_items("conv_1")) == ["a", "b"]


async def test_creating_a_conversation_id_twice_is_refused(store: SQLStore) -> None:
    await store.create_conversation("conv_1", metadata={}, items=[], created_at=0)
    with pytest.raises(ValueError, match="already exists"):
        await store.create_conversation("conv_1", metadata={}, items=[], created_at=0)


async def test_unknown_conversation_reads_as_none(store: SQLStore) -> None:
    assert await store.get_conversation("conv_nope") is None
    assert await store.update_conversation("conv_nope", metadata={}) is None
    assert await store.delete_conversation("conv_nope") is False
    assert await store.get_item("conv_nope", "msg_1") is None


async def test_update_conversation_replaces_metadata(store: SQLStore) -> None:
    await store.create_conversation("conv_1", metadata={"a": "1", "b": "2"}, items=[], created_at=5)

    updated = await store.update_conversation("conv_1", metadata={"c": "3"})

    assert updated == {
        "id": "conv_1",
        "object": "conversation",
        "created_at": 5,
        "metadata": {"c": "3"},
    }
    assert await store.get_conversation("conv_1") == updated


async def test_add_items_appends_after_existing_items_and_returns_them_with_ids(
    store: SQLStore,
) -> None:
    await store.create_conversation("conv_1", metadata={}, items=[msg("a")], created_at=0)

    added = await store.add_items("conv_1", [msg("b"), msg("c")])

    assert texts(added) == ["b", "c"]
    assert await store.all_items("conv_1") == [(await store.all_items("conv_1"))[0], *added]


async def test_deleted_item_is_gone_and_others_keep_their_order(store: SQLStore) -> None:
    await store.create_conversation(
        "conv_1", metadata={}, items=[msg("a"), msg("b"), msg("c")], created_at=0
    )
    a, b, c = await store.all_items("conv_1")

    assert await store.delete_item("conv_1", b["id"]) is True
    assert await store.delete_item("conv_1", b["id"]) is False

    assert await store.all_items("conv_1") == [a, c]
    assert await store.get_item("conv_1", b["id"]) is None


async def test_item_ids_are_scoped_to_their_conversation(store: SQLStore) -> None:
    await store.create_conversation(
        "conv_1", metadata={}, items=[msg("a", id="msg_same")], created_at=0
    )
    await store.create_conversation(
        "conv_2", metadata={}, items=[msg("b", id="msg_same")], created_at=0
    )

    assert texts(await store.all_items("conv_1")) == ["a"]
    assert await store.get_item("conv_2", "msg_same") == msg("b", id="msg_same", status="completed")
    await store.delete_item("conv_1", "msg_same")
    assert await store.get_item("conv_2", "msg_same") is not None


async def test_an_item_id_already_in_the_conversation_is_refused_and_nothing_is_added(
    store: SQLStore,
) -> None:
    await store.create_conversation(
        "conv_1", metadata={}, items=[msg("a", id="msg_a")], created_at=0
    )

    with pytest.raises(DuplicateItemError, match="msg_a"):
        await store.add_items("conv_1", [msg("new"), msg("again", id="msg_a")])
    with pytest.raises(DuplicateItemError, match="msg_b"):
        await store.add_items("conv_1", [msg("b1", id="msg_b"), msg("b2", id="msg_b")])

    assert texts(await store.all_items("conv_1")) == ["a"]


async def test_duplicate_ids_in_initial_items_refuse_the_whole_conversation(
    store: SQLStore,
) -> None:
    with pytest.raises(DuplicateItemError):
        await store.create_conversation(
            "conv_1", metadata={}, items=[msg("a", id="msg_a"), msg("b", id="msg_a")], created_at=0
        )
    assert await store.get_conversation("conv_1") is None


async def test_deleted_conversation_is_gone_and_refuses_new_items(store: SQLStore) -> None:
    await store.create_conversation("conv_1", metadata={}, items=[msg("a")], created_at=0)
    [a] = await store.all_items("conv_1")

    assert await store.delete_conversation("conv_1") is True

    assert await store.get_conversation("conv_1") is None
    assert await store.get_item("conv_1", a["id"]) is None
    with pytest.raises(ConversationNotFoundError):
        await store.add_items("conv_1", [msg("b")])
    with pytest.raises(ConversationNotFoundError):
        await store.list_items("conv_1", after=None, limit=20, order="desc")
    with pytest.raises(ConversationNotFoundError):
        await store.all_items("conv_1")
    with pytest.raises(ConversationNotFoundError):
        await store.delete_item("conv_1", a["id"])
    with pytest.raises(ConversationNotFoundError):
        await store.acquire_lock("conv_1", "h", ttl=10)


async def test_a_new_conversation_may_reuse_a_deleted_conversations_id_without_its_items(
    store: SQLStore,
) -> None:
    await store.create_conversation("conv_1", metadata={}, items=[msg("old")], created_at=0)
    await store.delete_conversation("conv_1")

    await store.create_conversation("conv_1", metadata={}, items=[msg("new")], created_at=1)

    assert texts(await store.all_items("conv_1")) == ["new"]
