"""Model-based property test: lock-holding turns interleaved with direct edits.

Hypothesis generates sequences of lease operations (acquire, renew, release,
finish_turn), direct item edits (add_items, delete_item) and clock jumps over a
few conversations. A plain-Python model predicts the outcome of every operation
(success, refusal) and each conversation's items; after every step the store must
agree exactly: its item list is the serial application of the operations that
succeeded, and it refused precisely the ones the lease forbids.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.storage.conftest import FakeClock
from turnstream.storage import ConversationLockedError, ResponseRecord, create_store
from turnstream.storage.sql import SQLStore

TTL = 10.0
CONVERSATIONS = 2
HOLDERS = ("h0", "h1", "h2")


@dataclass(frozen=True)
class Acquire:
    conv: int
    holder: str


@dataclass(frozen=True)
class Renew:
    conv: int
    holder: str


@dataclass(frozen=True)
class Release:
    conv: int
    holder: str


@dataclass(frozen=True)
class FinishTurn:
    conv: int
    holder: str
    items: int
    release: bool


@dataclass(frozen=True)
class AddItems:
    conv: int
    items: int


@dataclass(frozen=True)
class DeleteItem:
    conv: int
    pick: int  # index into the current items; past the end means an unknown id


@dataclass(frozen=True)
class Advance:
    seconds: float


convs = st.integers(0, CONVERSATIONS - 1)
holders = st.sampled_from(HOLDERS)
operations = st.one_of(
    st.builds(Acquire, convs, holders),
    st.builds(Renew, convs, holders),
    st.builds(Release, convs, holders),
    st.builds(FinishTurn, convs, holders, st.integers(0, 3), st.booleans()),
    st.builds(AddItems, convs, st.integers(1, 3)),
    st.builds(DeleteItem, convs, st.integers(0, 6)),
    st.builds(Advance, st.sampled_from([1.0, 4.0, 9.99, 10.0, 15.0])),
)


@dataclass
class ConversationModel:
    items: list[str] = field(default_factory=list)  # the items' texts, oldest first
    holder: str | None = None
    expires_at: float = 0.0

    def live(self, now: float) -> bool:
        return self.holder is not None and self.expires_at > now


def message(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


class Runner:
    def __init__(self, store: SQLStore, clock: FakeClock, prefix: str) -> None:
        self.store = store
        self.clock = clock
        self.ids = [f"{prefix}_c{i}" for i in range(CONVERSATIONS)]
        self.models = [ConversationModel() for _ in range(CONVERSATIONS)]
        self.texts = (f"{prefix}_t{n}" for n in itertools.count())

    async def setup(self) -> None:
        for conv_id in self.ids:
            await self.store.create_conversation(conv_id, metadata={}, items=[], created_at=0)
        await self.store.insert_response(
            ResponseRecord(id=f"{self.ids[0]}_resp", response={"status": "in_progress"})
        )

    def new_texts(self, n: int) -> list[str]:
        return [next(self.texts) for _ in range(n)]

    async def apply(self, op: object) -> None:  # noqa: C901  # one flat case per model operation
        now = self.clock()
        store = self.store
        match op:
            case Advance(seconds):
                self.clock.advance(seconds)
            case Acquire(conv, holder):
                model = self.models[conv]
                expected = not model.live(now) or model.holder == holder
                assert await store.acquire_lock(self.ids[conv], holder, ttl=TTL) is expected
                if expected:
                    model.holder, model.expires_at = holder, now + TTL
            case Renew(conv, holder):
                model = self.models[conv]
                expected = model.live(now) and model.holder == holder
                assert await store.renew_lock(self.ids[conv], holder, ttl=TTL) is expected
                if expected:
                    model.expires_at = now + TTL
            case Release(conv, holder):
                model = self.models[conv]
                await store.release_lock(self.ids[conv], holder)
                if model.holder == holder:
                    model.holder = None
            case FinishTurn(conv, holder, n, release):
                model = self.models[conv]
                texts = self.new_texts(n)
                expected = model.live(now) and model.holder == holder
                try:
                    await store.finish_turn(
                        self.ids[conv],
                        holder,
                        response_id=f"{self.ids[0]}_resp",
                        response={"status": "completed"},
                        items=[message(t) for t in texts],
                        store_response=True,
                        release=release,
                    )
                    succeeded = True
                except ConversationLockedError:
                    succeeded = False
                assert succeeded is expected
                if succeeded:
                    model.items.extend(texts)
                    if release:
                        model.holder = None
            case AddItems(conv, n):
                model = self.models[conv]
                texts = self.new_texts(n)
                try:
                    await store.add_items(self.ids[conv], [message(t) for t in texts])
                    succeeded = True
                except ConversationLockedError:
                    succeeded = False
                assert succeeded is not model.live(now)
                if succeeded:
                    model.items.extend(texts)
            case DeleteItem(conv, pick):
                model = self.models[conv]
                stored = await store.all_items(self.ids[conv])
                item_id = stored[pick]["id"] if pick < len(stored) else "msg_unknown"
                try:
                    deleted = await store.delete_item(self.ids[conv], item_id)
                except ConversationLockedError:
                    deleted = None
                if model.live(now):
                    assert deleted is None
                else:
                    assert deleted is (pick < len(model.items))
                    if deleted:
                        del model.items[pick]
            case _:
                raise AssertionError(op)

    async def check(self) -> None:
        for conv_id, model in zip(self.ids, self.models, strict=True):
            items = await self.store.all_items(conv_id)
            assert [item["content"][0]["text"] for item in items] == model.items
            assert all(item["id"].startswith("msg_") for item in items)


# every operation is a committed transaction: on a busy disk this takes minutes, and the
# default ceiling (120 s) is there to catch hangs, not slow machines
@pytest.mark.timeout(600)
def test_store_agrees_with_a_serial_model_of_turns_and_item_edits(db_url: str) -> None:
    clock = FakeClock()
    examples = itertools.count()
    with asyncio.Runner() as loop:
        store = create_store(db_url, clock=clock, owner_ttl=1e9)
        loop.run(store.open())

        @settings(
            max_examples=50,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        )
        @given(ops=st.lists(operations, min_size=8, max_size=30))
        def check_sequence(ops: list[object]) -> None:
            runner = Runner(store, clock, f"x{next(examples)}")

            async def run() -> None:
                await runner.setup()
                for op in ops:
                    await runner.apply(op)
                    await runner.check()

            loop.run(run())

        try:
            check_sequence()
        finally:
            loop.run(store.close())
