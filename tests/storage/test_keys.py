"""API keys and stream slots in the store, on every backend."""

from __future__ import annotations

import pytest

from tests.storage.conftest import FakeClock, OpenStore
from turnstream.storage.keys import KEY_PREFIX
from turnstream.storage.schema import api_keys
from turnstream.storage.sql import SQLStore


async def test_a_created_key_authenticates_and_only_its_hash_is_stored(store: SQLStore) -> None:
    key, secret = await store.create_key("ci", project="alpha")
    assert secret.startswith(KEY_PREFIX)
    assert len(secret) - len(KEY_PREFIX) >= 32  # 32 urlsafe chars: >= 192 bits
    found = await store.authenticate_key(secret)
    assert found is not None
    assert (found.id, found.project) == (key.id, "alpha")
    async with store._read() as conn:
        rows = (await conn.execute(api_keys.select())).all()
    assert all(secret not in repr(tuple(row)) for row in rows)


async def test_a_wrong_or_foreign_secret_does_not_authenticate(store: SQLStore) -> None:
    _, secret = await store.create_key("ci")
    assert await store.authenticate_key(secret[:-1] + ("A" if secret[-1] != "A" else "B")) is None
    assert await store.authenticate_key("sk-proj-something") is None
    assert await store.authenticate_key("") is None


async def test_names_are_unique(store: SQLStore) -> None:
    await store.create_key("ci")
    with pytest.raises(ValueError, match="already exists"):
        await store.create_key("ci")


async def test_listing_shows_the_prefix_and_never_the_secret(store: SQLStore) -> None:
    key, secret = await store.create_key("ci", project="alpha")
    [listed] = await store.list_keys()
    assert listed == key
    assert secret.startswith(listed.prefix)
    assert listed.prefix != secret


@pytest.mark.parametrize("by", ["name", "prefix"])
async def test_a_revoked_key_stops_authenticating(store: SQLStore, by: str) -> None:
    key, secret = await store.create_key("ci")
    _, other = await store.create_key("other")
    revoked = await store.revoke_key(key.name if by == "name" else key.prefix)
    assert [k.id for k in revoked] == [key.id]
    assert await store.authenticate_key(secret) is None
    assert await store.authenticate_key(other) is not None
    assert await store.has_keys()
    await store.revoke_key("other")
    assert not await store.has_keys()


async def test_a_revocation_reaches_another_process_at_once(open_store: OpenStore) -> None:
    first, second = await open_store(), await open_store()
    _, secret = await first.create_key("ci")
    assert await second.authenticate_key(secret) is not None
    await first.revoke_key("ci")
    assert await second.authenticate_key(secret) is None


async def test_stream_slots_are_counted_across_processes(
    open_store: OpenStore, clock: FakeClock
) -> None:
    first, second = await open_store(), await open_store()
    key, _ = await first.create_key("ci")
    assert await first.acquire_stream_slot(key.id, "s1", limit=2, ttl=10)
    assert await second.acquire_stream_slot(key.id, "s2", limit=2, ttl=10)
    assert not await second.acquire_stream_slot(key.id, "s3", limit=2, ttl=10)
    await first.release_stream_slot("s1")
    assert await second.acquire_stream_slot(key.id, "s3", limit=2, ttl=10)
    # a slot whose replica died lapses on its own
    clock.advance(11)
    await second.renew_stream_slot("s3", ttl=10)
    assert await first.acquire_stream_slot(key.id, "s4", limit=2, ttl=10)
    assert not await first.acquire_stream_slot(key.id, "s5", limit=2, ttl=10)
