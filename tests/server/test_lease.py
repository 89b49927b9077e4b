"""`ConversationLease`: acquire, renew, release once, and the after-body release.

A fake store records the lease calls; the after-body delay goes through an injected
sleep that the test opens by hand, so no test waits on the clock.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from turnstream.server.lease import ConversationLease
from turnstream.server.settings import Settings
from turnstream.storage.base import ConversationLockedError


class LeaseStore:
    """The lease half of a Store, recording every call."""

    def __init__(self, *, free: bool = True, lost: bool = False) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.free = free
        self.lost = lost
        self.renewed = asyncio.Event()

    async def acquire_lock(self, conversation_id: str, holder: str, *, ttl: float) -> bool:
        self.calls.append(("acquire_lock", holder))
        return self.free

    async def renew_lock(self, conversation_id: str, holder: str, *, ttl: float) -> bool:
        self.calls.append(("renew_lock", holder))
        self.renewed.set()
        return True

    async def release_lock(self, conversation_id: str, holder: str) -> None:
        self.calls.append(("release_lock", holder))

    async def finish_turn(self, conversation_id: str, holder: str, **kwargs: Any) -> None:
        self.calls.append(("finish_turn", kwargs["release"]))
        if self.lost:
            raise ConversationLockedError(conversation_id)

    def named(self, name: str) -> list[Any]:
        return [arg for call, arg in self.calls if call == name]


class Gate:
    """An injected `sleep`: records the delay asked for and returns when opened."""

    def __init__(self) -> None:
        self.asked: list[float] = []
        self.opened = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)
        await self.opened.wait()


def after_body_settings(delay: float = 2.5) -> Settings:
    return Settings(lock_release="after_body", lock_release_delay=delay, lease_ttl=30.0)


async def acquire(
    store: LeaseStore, settings: Settings, gate: Gate | None = None
) -> ConversationLease:
    lease = await ConversationLease.acquire(
        store,  # type: ignore[arg-type]  # the lease half of a Store is all it uses
        "conv_1",
        "resp_1",
        settings,
        sleep=gate or Gate(),
    )
    assert lease is not None
    return lease


async def test_acquire_answers_none_when_another_response_holds_the_conversation() -> None:
    store = LeaseStore(free=False)
    lease = await ConversationLease.acquire(store, "conv_1", "resp_1", Settings())  # type: ignore[arg-type]  # fake store
    assert lease is None
    assert store.named("acquire_lock") == ["resp_1"]


async def test_release_lets_go_once_however_often_it_is_called() -> None:
    store = LeaseStore()
    lease = await acquire(store, Settings())
    await lease.release()
    await lease.release()
    lease.settled()
    lease.body_closed()
    assert store.named("release_lock") == ["resp_1"]
    assert not lease.held


async def test_the_heartbeat_renews_the_lease_while_it_is_held() -> None:
    store = LeaseStore()
    lease = await acquire(store, Settings(lease_ttl=0.15))
    await asyncio.wait_for(store.renewed.wait(), 30)
    await lease.release()
    assert store.named("renew_lock")[0] == "resp_1"


async def test_before_terminal_releases_in_the_commit_and_never_again() -> None:
    store = LeaseStore()
    lease = await acquire(store, Settings(lock_release="before_terminal"))
    await lease.commit_turn(response={}, items=None, store_response=True)
    assert store.named("finish_turn") == [True]
    assert not lease.held
    lease.settled()
    lease.body_closed()
    await lease.wait_released()
    await lease.release()
    assert store.named("release_lock") == []


async def test_a_lost_lease_is_not_released_by_its_former_holder() -> None:
    store = LeaseStore(lost=True)
    lease = await acquire(store, Settings())
    with pytest.raises(ConversationLockedError):
        await lease.commit_turn(response={}, items=[], store_response=True)
    await lease.release()
    assert not lease.held
    assert store.named("release_lock") == []


@pytest.mark.parametrize("first", ["settled", "body_closed"])
async def test_after_body_waits_for_the_run_the_body_and_then_the_delay(first: str) -> None:
    store, gate = LeaseStore(), Gate()
    lease = await acquire(store, after_body_settings(delay=2.5), gate)
    await lease.commit_turn(response={}, items=[], store_response=True)
    assert store.named("finish_turn") == [False]
    assert lease.held, "after_body keeps the lease through the commit"

    getattr(lease, first)()
    await asyncio.sleep(0)  # let anything wrongly scheduled run
    assert gate.asked == [], "one of the two conditions is not enough"

    lease.body_closed() if first == "settled" else lease.settled()
    await asyncio.sleep(0)
    assert gate.asked == [2.5]
    assert store.named("release_lock") == [], "released before the delay passed"

    gate.opened.set()
    await lease.wait_released()
    assert store.named("release_lock") == ["resp_1"]


async def test_after_body_is_scheduled_once_when_the_body_closes_repeatedly() -> None:
    store, gate = LeaseStore(), Gate()
    gate.opened.set()
    lease = await acquire(store, after_body_settings(), gate)
    lease.settled()
    for _ in range(3):
        lease.body_closed()
    await lease.wait_released()
    assert gate.asked == [2.5]
    assert store.named("release_lock") == ["resp_1"]


async def test_an_early_release_makes_the_after_body_release_a_no_op() -> None:
    store, gate = LeaseStore(), Gate()
    gate.opened.set()
    lease = await acquire(store, after_body_settings(), gate)
    await lease.release()  # an unsaved turn lets go at once
    lease.settled()
    lease.body_closed()
    await lease.wait_released()
    assert gate.asked == []
    assert store.named("release_lock") == ["resp_1"]
