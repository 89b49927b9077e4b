"""Limits: body size, item/tool/metadata counts, nesting, request rate, concurrent
streams and slow bodies, each refused in OpenAI's error shape before any work."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from turnstream.server.auth import ANONYMOUS
from turnstream.server.gate import RequestGate
from turnstream.server.limits import Limits, RateLimiter

from .gated import Gated, gated_app

MiB = 1024 * 1024


def _error(reply: httpx.Response) -> dict[str, Any]:
    body = reply.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    error: dict[str, Any] = body["error"]
    return error


@pytest.fixture
async def gated(tmp_path: Path) -> AsyncIterator[Gated]:
    async with gated_app("sqlite", tmp_path) as served:
        yield served


async def test_a_50_mib_body_is_refused_with_413(gated: Gated) -> None:
    body = json.dumps({"model": "echo", "input": "x" * (50 * MiB)}).encode()
    reply = await gated.client.post("/v1/responses", content=body)
    assert reply.status_code == 413
    assert _error(reply)["type"] == "invalid_request_error"


async def test_an_oversized_body_without_a_length_is_refused_as_it_arrives(gated: Gated) -> None:
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(40):
            sent += MiB
            yield b" " * MiB

    reply = await gated.client.post("/v1/responses", content=chunks())
    assert reply.status_code == 413
    assert _error(reply)["code"] == "request_too_large"


@pytest.mark.parametrize(
    ("field", "value", "param"),
    [
        ("input", [{"role": "user", "content": "x"}] * 20_000, "input"),
        (
            "tools",
            [
                {"type": "function", "name": f"t{i}", "parameters": {"type": "object"}}
                for i in range(2_000)
            ],
            "tools",
        ),
        ("metadata", {f"k{i}": "v" for i in range(17)}, "metadata"),
    ],
)
async def test_too_many_items_tools_or_metadata_are_refused_before_any_work(
    gated: Gated, field: str, value: Any, param: str
) -> None:
    reply = await gated.client.post("/v1/responses", json={"model": "echo", field: value})
    assert reply.status_code == 400
    assert _error(reply)["param"] == param
    assert await gated.store.list_keys() == []  # nothing else touched the store
    async with gated.store._read() as conn:
        from turnstream.storage.schema import responses

        assert (await conn.execute(responses.select())).first() is None


@pytest.mark.parametrize("path", ["/v1/responses", "/v1/conversations"])
async def test_5000_nested_arrays_are_a_400_not_a_500(gated: Gated, path: str) -> None:
    reply = await gated.client.post(path, content=b"[" * 5000 + b"]" * 5000)
    assert reply.status_code == 400
    assert _error(reply)["type"] == "invalid_request_error"
    nested = b'{"model": "echo", "input": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    reply = await gated.client.post(path, content=nested)
    assert reply.status_code == 400


def test_the_rate_limiter_refills_continuously() -> None:
    now = [0.0]
    limiter = RateLimiter(60, clock=lambda: now[0])
    decisions = [limiter.take("k") for _ in range(61)]
    assert all(d.allowed for d in decisions[:60])
    assert not decisions[60].allowed
    assert decisions[60].retry_after == pytest.approx(1.0)
    assert decisions[60].headers()["retry-after"] == "1"
    assert limiter.take("other").allowed  # per key
    now[0] += 1.0
    assert limiter.take("k").allowed
    assert not limiter.take("k").allowed


async def test_over_the_rate_is_429_with_openais_headers_and_the_sdk_backs_off(
    tmp_path: Path,
) -> None:
    async with gated_app("sqlite", tmp_path, limits=Limits(requests_per_minute=120)) as gated:
        # time stands still but for the SDK's back-off (see `count` below)
        now = [0.0]
        gated.state.rates = RateLimiter(120, clock=lambda: now[0])
        headers = await gated.key("ci")
        for _ in range(120):
            assert (await gated.client.get("/v1/models", headers=headers)).status_code == 200
        reply = await gated.client.get("/v1/models", headers=headers)
        assert reply.status_code == 429
        assert _error(reply)["code"] == "rate_limit_exceeded"
        assert reply.headers["x-ratelimit-limit-requests"] == "120"
        assert reply.headers["x-ratelimit-remaining-requests"] == "0"
        assert reply.headers["x-ratelimit-reset-requests"].endswith("s")
        assert int(reply.headers["retry-after"]) >= 1
        retries: list[int] = []

        async def count(response: httpx.Response) -> None:
            retries.append(response.status_code)
            if response.status_code == 429:
                # the SDK now sleeps `retry-after-ms`: let that much time pass
                now[0] += int(response.headers["retry-after-ms"]) / 1000

        sdk = openai.AsyncOpenAI(
            base_url="http://test/v1",
            api_key=headers["authorization"].removeprefix("Bearer "),
            max_retries=3,
            http_client=httpx.AsyncClient(
                transport=httpx.ASGITransport(app=gated.app),
                event_hooks={"response": [count]},
            ),
        )
        models = await sdk.models.list()
        assert models.data
        assert retries == [429, 200]


async def test_the_concurrent_stream_limit_counts_streams_of_every_replica(
    tmp_path: Path,
) -> None:
    async with gated_app("sqlite", tmp_path, limits=Limits(concurrent_streams=1)) as gated:
        headers = await gated.key("ci")
        [key] = await gated.store.list_keys()
        # another replica has this key's one stream open
        assert await gated.store.acquire_stream_slot(key.id, "elsewhere", limit=1, ttl=60)
        body = {"model": "echo", "input": "hi", "stream": True}
        reply = await gated.client.post("/v1/responses", json=body, headers=headers)
        assert reply.status_code == 429
        assert _error(reply)["code"] == "rate_limit_exceeded"
        assert "retry-after" in reply.headers
        await gated.store.release_stream_slot("elsewhere")
        reply = await gated.client.post("/v1/responses", json=body, headers=headers)
        assert reply.status_code == 200
        assert b"response.completed" in reply.content
        # a resumed stream counts too
        background = await gated.client.post(
            "/v1/responses",
            json={"model": "echo", "input": "hi", "background": True},
            headers=headers,
        )
        assert await gated.store.acquire_stream_slot(key.id, "elsewhere", limit=2, ttl=60)
        resumed = await gated.client.get(
            f"/v1/responses/{background.json()['id']}?stream=true", headers=headers
        )
        assert resumed.status_code == 429
        await gated.store.release_stream_slot("elsewhere")
        # the finished stream gave its slot back
        deadline = time.monotonic() + 30  # a ceiling for a hang on a loaded machine
        while not await gated.store.acquire_stream_slot(key.id, "probe", limit=1, ttl=60):
            assert time.monotonic() < deadline, "the stream's slot was not released"
            await asyncio.sleep(0.01)


async def test_a_body_sent_byte_by_byte_is_cut_off_at_the_deadline(tmp_path: Path) -> None:
    async with gated_app("sqlite", tmp_path, limits=Limits(body_timeout=0.2)) as gated:
        gate = RequestGate(gated.app, state=gated.state)
        messages = [{"type": "http.request", "body": b"{", "more_body": True}]
        never = asyncio.Event()

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop()
            await never.wait()  # the client sends nothing more
            raise AssertionError("unreachable")

        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "method": "POST",
            "path": "/v1/responses",
            "raw_path": b"/v1/responses",
            "query_string": b"",
            "headers": [],
            "state": {},
        }
        await asyncio.wait_for(gate(scope, receive, send), 5)
        assert sent[0]["status"] == 408
        assert (b"connection", b"close") in sent[0]["headers"]
        assert ANONYMOUS.project == "default"
