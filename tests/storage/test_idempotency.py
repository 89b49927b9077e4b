"""Idempotency keys and shared secrets, on both backends."""

from __future__ import annotations

import asyncio

from tests.storage.conftest import FakeClock, OpenStore
from turnstream.storage.sql import SQLStore

DAY = 24 * 3600.0


async def claim(store: SQLStore, key: str, response_id: str, digest: str = "h1") -> str:
    held = await store.claim_idempotency_key(
        "", key, body_hash=digest, response_id=response_id, retention=DAY
    )
    return held.response_id


async def test_the_first_claim_wins_and_a_repeat_sees_it(store: SQLStore) -> None:
    assert await claim(store, "k", "resp_1") == "resp_1"
    held = await store.claim_idempotency_key(
        "", "k", body_hash="h2", response_id="resp_2", retention=DAY
    )
    assert (held.response_id, held.body_hash) == ("resp_1", "h1")


async def test_of_concurrent_claims_on_two_stores_exactly_one_wins(
    open_store: OpenStore,
) -> None:
    one, two = await open_store(), await open_store()
    winners = await asyncio.gather(
        *(claim(s, "k", f"resp_{n}") for n, s in enumerate([one, two, one, two]))
    )
    assert len(set(winners)) == 1


async def test_a_key_is_free_again_after_its_retention(store: SQLStore, clock: FakeClock) -> None:
    await claim(store, "k", "resp_1")
    clock.advance(DAY + 1)
    assert await claim(store, "k", "resp_2") == "resp_2"


async def test_scopes_keep_keys_apart(store: SQLStore) -> None:
    await claim(store, "k", "resp_1")
    held = await store.claim_idempotency_key(
        "project_b", "k", body_hash="h1", response_id="resp_2", retention=DAY
    )
    assert held.response_id == "resp_2"


async def test_a_released_key_can_be_claimed_but_only_its_holder_releases_it(
    store: SQLStore,
) -> None:
    await claim(store, "k", "resp_1")
    await store.release_idempotency_key("", "k", "resp_other")
    assert await claim(store, "k", "resp_2") == "resp_1"
    await store.release_idempotency_key("", "k", "resp_1")
    assert await claim(store, "k", "resp_2") == "resp_2"


async def test_a_server_secret_is_made_once_and_shared(open_store: OpenStore) -> None:
    one, two = await open_store(), await open_store()
    first = await one.server_secret("compaction", lambda: "s1")
    assert first == "s1"
    assert await two.server_secret("compaction", lambda: "s2") == "s1"
