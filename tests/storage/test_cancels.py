"""Cancel requests: any process asks, the one running the response hears it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from tests.storage.conftest import OpenStore
from turnstream.storage import ResponseRecord
from turnstream.storage.dialect import Wakeup
from turnstream.storage.sql import SQLStore

PATIENCE = 30.0  # an upper bound for waits that end as soon as the request is there
FOREVER = 3600.0  # longer than any test: a watcher returns within PATIENCE only if woken


async def running(
    store: SQLStore, response_id: str = "resp_run", status: str = "in_progress"
) -> str:
    await store.insert_response(
        ResponseRecord(id=response_id, response={"id": response_id}, status=status, background=True)
    )
    return response_id


async def test_a_cancel_requested_on_another_replica_reaches_the_runner(
    open_store: OpenStore,
) -> None:
    runner, other = await open_store(), await open_store()
    rid = await running(runner)
    waiting = asyncio.Event()
    watch = runner._watch

    @contextlib.asynccontextmanager
    async def observed_watch(channel: str, key: str) -> AsyncIterator[Wakeup]:
        async with watch(channel, key) as wakeup:

            async def observed_wakeup(seconds: float) -> None:
                waiting.set()
                await wakeup(seconds)

            yield observed_wakeup

    runner._watch = observed_watch  # type: ignore[method-assign]  # see when it waits
    watching = asyncio.create_task(runner.wait_for_cancel(rid, within=FOREVER))
    await waiting.wait()  # it has looked, found no request, and waits to be woken

    assert await other.request_cancel(rid) is True
    assert await asyncio.wait_for(watching, PATIENCE) is True


async def test_a_cancel_requested_before_the_runner_watches_is_not_lost(
    open_store: OpenStore,
) -> None:
    runner, other = await open_store(), await open_store()
    rid = await running(runner, status="queued")

    assert await other.request_cancel(rid) is True
    assert await runner.wait_for_cancel(rid, within=0) is True


async def test_without_a_request_the_watch_ends_false(store: SQLStore) -> None:
    rid = await running(store)
    assert await store.wait_for_cancel(rid, within=0.1) is False


@pytest.mark.parametrize("status", ["completed", "failed", "cancelled"])
async def test_a_finished_response_cannot_be_asked_to_cancel(store: SQLStore, status: str) -> None:
    rid = await running(store, status=status)

    assert await store.request_cancel(rid) is False
    assert await store.wait_for_cancel(rid, within=0) is False


async def test_an_unknown_response_cannot_be_asked_to_cancel(store: SQLStore) -> None:
    assert await store.request_cancel("resp_nope") is False
