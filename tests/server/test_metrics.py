"""`GET /metrics`: the counters and histograms move as requests run.

The scripted model holds a stream open on an `asyncio.Event`, and the gauge is read
once the first body bytes have been written, so the stream is certainly open; every
wait is for an event the code under test sets (the bound only turns a hang into a
failure).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from turnstream.engine.deltas import OutputTextDelta, UsageDelta
from turnstream.providers.base import GenerationRequest, ProviderError
from turnstream.providers.scripted import Raise

from .inprocess import InProcess, asgi_request, serving

WAIT = 30.0


def held_open(
    hold: asyncio.Event, reached: asyncio.Event | None = None
) -> Callable[[GenerationRequest], Awaitable[None]]:
    """A script step that keeps the stream open until `hold` is set."""

    async def step(request: GenerationRequest) -> None:
        if reached is not None:
            reached.set()
        await hold.wait()

    return step


async def new_conversation(served: InProcess) -> str:
    reply = await served.client.post("/v1/conversations", json={})
    assert reply.status_code == 200
    conversation_id: str = reply.json()["id"]
    return conversation_id


async def test_metrics_are_prometheus_text_with_the_documented_families(tmp_path: Path) -> None:
    async with serving(tmp_path) as served:
        reply = await served.client.get("/metrics")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    families = {f.name for f in text_string_to_metric_families(reply.text)}
    assert {
        "turnstream_http_requests",
        "turnstream_open_streams",
        "turnstream_response_first_event_seconds",
        "turnstream_response_duration_seconds",
        "turnstream_input_tokens",
        "turnstream_output_tokens",
        "turnstream_conversation_locked",
        "turnstream_lease_takeovers",
        "turnstream_store_seconds",
        "turnstream_upstream_errors",
    } <= families


async def test_the_metrics_move_as_a_streamed_request_runs(tmp_path: Path) -> None:
    async with serving(tmp_path) as served:
        conv = await new_conversation(served)
        hold = asyncio.Event()
        served.scripted.push(
            [
                OutputTextDelta(text="hello "),
                held_open(hold),
                OutputTextDelta(text="world"),
                UsageDelta(input_tokens=7, output_tokens=3),
            ]
        )
        body = {"model": "scripted", "input": "hi", "conversation": conv, "stream": True}
        first_chunk = asyncio.Event()

        async def on_message(message: dict[str, Any]) -> None:
            if message.get("body"):
                first_chunk.set()

        streaming = asyncio.create_task(
            asgi_request(served.app, "POST", "/v1/responses", body, on_message=on_message)
        )
        await asyncio.wait_for(first_chunk.wait(), WAIT)
        assert await served.metric("turnstream_open_streams") == 1
        # a second turn on the held conversation is refused and counted
        locked = await served.client.post(
            "/v1/responses", json={"model": "scripted", "input": "too", "conversation": conv}
        )
        assert locked.status_code == 400
        assert await served.metric("turnstream_conversation_locked_total") == 1
        assert await served.metric("turnstream_input_tokens_total", model="scripted") == 0

        hold.set()
        reply = await asyncio.wait_for(streaming, WAIT)
        assert reply.status == 200
        assert b"response.completed" in reply.body

        m = served.metric
        assert await m("turnstream_open_streams") == 0
        assert (
            await m(
                "turnstream_http_requests_total",
                route="/v1/responses",
                method="POST",
                status="200",
            )
            == 1
        )
        assert await m("turnstream_http_requests_total", route="/v1/responses", status="400") == 1
        assert await m("turnstream_response_first_event_seconds_count", model="scripted") == 1
        assert await m("turnstream_response_duration_seconds_count", model="scripted") == 1
        assert await m("turnstream_input_tokens_total", model="scripted") == 7
        assert await m("turnstream_output_tokens_total", model="scripted") == 3
        assert await m("turnstream_store_seconds_count", operation="finish_turn") == 1
        assert await m("turnstream_store_seconds_count", operation="acquire_lock") == 2


async def test_routes_are_counted_by_template_not_by_path(tmp_path: Path) -> None:
    async with serving(tmp_path) as served:
        for missing in ("resp_a", "resp_b"):
            assert (await served.client.get(f"/v1/responses/{missing}")).status_code == 404
        assert (await served.client.get("/nowhere")).status_code == 404
        m = served.metric
        assert (
            await m(
                "turnstream_http_requests_total", route="/v1/responses/{response_id}", status="404"
            )
            == 2
        )
        assert await m("turnstream_http_requests_total", route="unmatched", status="404") == 1


async def test_upstream_errors_are_counted_by_kind(tmp_path: Path) -> None:
    async with serving(tmp_path) as served:
        served.scripted.push(ProviderError("slow down", code="rate_limit_exceeded", status=429))
        served.scripted.push(
            [OutputTextDelta(text="part"), Raise(ProviderError("gone", code="upstream_gone"))]
        )
        first = await served.client.post("/v1/responses", json={"model": "scripted", "input": "a"})
        second = await served.client.post("/v1/responses", json={"model": "scripted", "input": "b"})
        assert first.status_code == 429
        assert second.json()["status"] == "failed"
        m = served.metric
        assert (
            await m(
                "turnstream_upstream_errors_total", model="scripted", kind="rate_limit_exceeded"
            )
            == 1
        )
        assert (
            await m("turnstream_upstream_errors_total", model="scripted", kind="upstream_gone") == 1
        )


async def test_a_lease_taken_over_mid_turn_is_counted(tmp_path: Path) -> None:
    async with serving(tmp_path) as served:
        conv = await new_conversation(served)
        hold = asyncio.Event()
        reached = asyncio.Event()
        served.scripted.push([OutputTextDelta(text="slow "), held_open(hold, reached)])
        body = {"model": "scripted", "input": "hi", "conversation": conv}
        running = asyncio.create_task(served.client.post("/v1/responses", json=body))
        await asyncio.wait_for(reached.wait(), WAIT)
        (response_id,) = served.state.runs
        store = served.state.store
        # what an expired lease looks like to its holder: someone else has the row
        await store.release_lock(conv, response_id)
        assert await store.acquire_lock(conv, "resp_intruder", ttl=30)
        hold.set()
        await asyncio.wait_for(running, WAIT)
        assert await served.metric("turnstream_lease_takeovers_total", stage="commit") == 1


async def test_two_apps_in_one_process_keep_their_own_counts(tmp_path: Path) -> None:
    async with serving(tmp_path / "a") as first, serving(tmp_path / "b") as second:
        await first.client.post("/v1/responses", json={"model": "scripted", "input": "x"})
        assert await first.metric("turnstream_response_duration_seconds_count") == 1
        assert await second.metric("turnstream_response_duration_seconds_count") == 0
