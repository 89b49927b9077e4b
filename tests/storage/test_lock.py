"""The conversation lock: a lease row per conversation (DESIGN invariant 3)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.storage.conftest import FakeClock
from turnstream.storage import (
    ConversationLockedError,
    ConversationNotFoundError,
    DuplicateItemError,
    ResponseRecord,
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


@pytest.fixture
async def conv(store: SQLStore) -> str:
    await store.create_conversation("conv_1", metadata={}, items=[msg("first")], created_at=0)
    await store.insert_response(
        ResponseRecord(id="resp_1", response={"id": "resp_1", "status": "in_progress"})
    )
    return "conv_1"


async def finish(
    store: SQLStore, conv: str, holder: str, *texts_: str, release: bool = True
) -> list[dict[str, Any]]:
    return await store.finish_turn(
        conv,
        holder,
        response_id="resp_1",
        response={"id": "resp_1", "status": "completed"},
        items=[msg(t) for t in texts_],
        store_response=True,
        release=release,
    )


async def test_a_free_conversation_is_acquired_and_then_refused_to_others(
    store: SQLStore, conv: str
) -> None:
    assert await store.acquire_lock(conv, "a", ttl=10) is True
    assert await store.acquire_lock(conv, "b", ttl=10) is False


async def test_the_holder_may_reacquire_which_extends_the_lease(
    store: SQLStore, conv: str, clock: FakeClock
) -> None:
    await store.acquire_lock(conv, "a", ttl=10)
    clock.advance(5)
    assert await store.acquire_lock(conv, "a", ttl=10) is True
    assert await store.lock_expires_in(conv) == pytest.approx(10)


async def test_acquiring_on_an_unknown_conversation_raises_not_found(store: SQLStore) -> None:
    with pytest.raises(ConversationNotFoundError):
        await store.acquire_lock("conv_nope", "a", ttl=10)


async def test_a_lease_expires_on_its_own_after_ttl(
    store: SQLStore, conv: str, clock: FakeClock
) -> None:
    await store.acquire_lock(conv, "a", ttl=10)
    clock.advance(9.9)
    assert await store.acquire_lock(conv, "b", ttl=10) is False
    clock.advance(0.1)
    assert await store.lock_expires_in(conv) is None
    assert await store.acquire_lock(conv, "b", ttl=10) is True


async def test_lock_expires_in_counts_down_and_is_none_when_unlocked(
    store: SQLStore, conv: str, clock: FakeClock
) -> None:
    assert await store.lock_expires_in(conv) is None
    await store.acquire_lock(conv, "a", ttl=30)
    clock.advance(12)
    assert await store.lock_expires_in(conv) == pytest.approx(18)
    await store.release_lock(conv, "a")
    assert await store.lock_expires_in(conv) is None


async def test_renew_extends_only_the_holders_live_lease(
    store: SQLStore, conv: str, clock: FakeClock
) -> None:
    await store.acquire_lock(conv, "a", ttl=10)
    clock.advance(8)

    assert await store.renew_lock(conv, "b", ttl=10) is False
    assert await store.renew_lock(conv, "a", ttl=10) is True

    clock.advance(8)  # 16 s after acquire, 8 s after renew: still ours
    assert await store.acquire_lock(conv, "b", ttl=10) is False


async def test_an_expired_lease_cannot_be_renewed(
    store: SQLStore, conv: str, clock: FakeClock
) -> None:
    await store.acquire_lock(conv, "a", ttl=10)
    clock.advance(11)
    assert await store.renew_lock(conv, "a", ttl=10) is False


async def test_a_taken_over_lease_cannot_be_renewed_by_the_old_holder(
    store: SQLStore, conv: str, clock: FakeClock
) -> None:
    await store.acquire_lock(conv, "a", ttl=10)
    clock.advance(11)
    await store.acquire_lock(conv, "b", ttl=10)
    assert await store.renew_lock(conv, "a", ttl=10) is False


async def test_release_by_the_holder_frees_the_conversation(store: SQLStore, conv: str) -> None:
    await store.acquire_lock(conv, "a", ttl=10)
    await store.release_lock(conv, "a")
    assert await store.acquire_lock(conv, "b", ttl=10) is True


async def test_release_by_anyone_else_is_a_no_op(store: SQLStore, conv: str) -> None:
    await store.acquire_lock(conv, "a", ttl=10)
    await store.release_lock(conv, "b")
    assert await store.acquire_lock(conv, "b", ttl=10) is False
    await store.release_lock("conv_nope", "a")  # no conversation: still a no-op


@pytest.mark.parametrize("ttl", [0, -1])
async def test_non_positive_ttls_are_rejected(store: SQLStore, conv: str, ttl: float) -> None:
    with pytest.raises(ValueError, match="ttl"):
        await store.acquire_lock(conv, "a", ttl=ttl)


async def test_add_items_is_refused_while_a_live_lease_exists(
    store: SQLStore, conv: str, clock: FakeClock
) -> None:
    await store.acquire_lock(conv, "a", ttl=10)

    with pytest.raises(ConversationLockedError):
        await store.add_items(conv, [msg("x")])

    clock.advance(10)
    await store.add_items(conv, [msg("after expiry")])
    assert texts(await store.all_items(conv)) == ["first", "after expiry"]


async def test_delete_item_is_refused_while_a_live_lease_exists(store: SQLStore, conv: str) -> None:
    [first] = await store.all_items(conv)
    await store.acquire_lock(conv, "a", ttl=10)

    with pytest.raises(ConversationLockedError):
        await store.delete_item(conv, first["id"])

    await store.release_lock(conv, "a")
    assert await store.delete_item(conv, first["id"]) is True


async def test_finish_turn_appends_updates_the_response_and_releases_at_once(
    store: SQLStore, conv: str
) -> None:
    await store.acquire_lock(conv, "a", ttl=10)

    appended = await finish(store, conv, "a", "input", "output")

    assert texts(appended) == ["input", "output"]
    assert all(item["id"].startswith("msg_") and item["status"] == "completed" for item in appended)
    assert texts(await store.all_items(conv)) == ["first", "input", "output"]
    got = await store.get_response("resp_1")
    assert got is not None
    assert got.status == "completed"
    assert await store.lock_expires_in(conv) is None
    assert await store.acquire_lock(conv, "b", ttl=10) is True


async def test_finish_turn_without_release_keeps_the_lease(store: SQLStore, conv: str) -> None:
    await store.acquire_lock(conv, "a", ttl=10)
    await finish(store, conv, "a", "part one", release=False)
    assert await store.acquire_lock(conv, "b", ttl=10) is False
    await finish(store, conv, "a", "part two")
    assert texts(await store.all_items(conv)) == ["first", "part one", "part two"]


async def test_finish_turn_can_skip_items_and_the_response(store: SQLStore, conv: str) -> None:
    await store.acquire_lock(conv, "a", ttl=10)

    appended = await store.finish_turn(
        conv,
        "a",
        response_id="resp_1",
        response={"status": "failed"},
        items=None,
        store_response=False,
        release=True,
    )

    assert appended == []
    assert texts(await store.all_items(conv)) == ["first"]
    got = await store.get_response("resp_1")
    assert got is not None
    assert got.status == "in_progress"
    assert await store.lock_expires_in(conv) is None


async def test_finish_turn_after_the_lease_was_taken_over_changes_nothing(
    store: SQLStore, conv: str, clock: FakeClock
) -> None:
    await store.acquire_lock(conv, "a", ttl=10)
    clock.advance(11)
    await store.acquire_lock(conv, "b", ttl=10)

    with pytest.raises(ConversationLockedError):
        await finish(store, conv, "a", "late")

    assert texts(await store.all_items(conv)) == ["first"]
    got = await store.get_response("resp_1")
    assert got is not None
    assert got.status == "in_progress"
    assert await store.acquire_lock(conv, "c", ttl=10) is False  # b still holds it


async def test_finish_turn_after_the_lease_expired_is_refused(
    store: SQLStore, conv: str, clock: FakeClock
) -> None:
    await store.acquire_lock(conv, "a", ttl=10)
    clock.advance(10)
    with pytest.raises(ConversationLockedError):
        await finish(store, conv, "a", "late")
    assert texts(await store.all_items(conv)) == ["first"]


async def test_finish_turn_without_ever_holding_the_lease_is_refused(
    store: SQLStore, conv: str
) -> None:
    with pytest.raises(ConversationLockedError):
        await finish(store, conv, "a", "x")
    assert texts(await store.all_items(conv)) == ["first"]


async def test_finish_turn_with_a_duplicate_item_changes_nothing_and_keeps_the_lease(
    store: SQLStore, conv: str
) -> None:
    [first] = await store.all_items(conv)
    await store.acquire_lock(conv, "a", ttl=10)

    with pytest.raises(DuplicateItemError):
        await store.finish_turn(
            conv,
            "a",
            response_id="resp_1",
            response={"status": "completed"},
            items=[msg("new"), first],
            store_response=True,
            release=True,
        )

    assert texts(await store.all_items(conv)) == ["first"]
    got = await store.get_response("resp_1")
    assert got is not None
    assert got.status == "in_progress"
    assert await store.acquire_lock(conv, "b", ttl=10) is False


async def test_finish_turn_on_a_deleted_conversation_raises_not_found(
    store: SQLStore, conv: str
) -> None:
    await store.acquire_lock(conv, "a", ttl=10)
    await store.delete_conversation(conv)
    with pytest.raises(ConversationNotFoundError):
        await finish(store, conv, "a", "x")


async def test_deleting_a_conversation_drops_its_lease(store: SQLStore, conv: str) -> None:
    await store.acquire_lock(conv, "a", ttl=10)
    await store.delete_conversation(conv)
    await store.create_conversation(conv, metadata={}, items=[], created_at=0)
    assert await store.acquire_lock(conv, "b", ttl=10) is True


async def test_concurrent_acquires_in_one_process_have_exactly_one_winner(
    store: SQLStore, conv: str
) -> None:
    for round_ in range(5):
        results = await asyncio.gather(
            *(store.acquire_lock(conv, f"h{round_}-{i}", ttl=10) for i in range(12))
        )
        assert results.count(True) == 1
        winner = f"h{round_}-{results.index(True)}"
        await store.release_lock(conv, winner)
