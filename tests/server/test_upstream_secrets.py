"""An upstream's API key never leaves the server: not in error bodies, stored
responses, logs, the schema or /docs, even when the upstream's error quotes it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from turnstream.providers.openai_chat import OpenAIChatProvider
from turnstream.server.app import create_app
from turnstream.server.settings import Settings

SECRET = "sk-upstream-THISMUSTNOTLEAK0123456789"


def _upstream(request: httpx.Request) -> httpx.Response:
    assert request.headers["authorization"] == f"Bearer {SECRET}"
    status = 401 if b"fail-early" in request.content else 500
    return httpx.Response(
        status,
        json={"error": {"message": f"Incorrect API key provided: {SECRET}.", "code": "bad"}},
    )


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    provider = OpenAIChatProvider(
        "http://upstream.test/v1",
        api_key=SECRET,
        models={"up": "real-model"},
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(_upstream)),
    )
    app = create_app(
        Settings(db_path=tmp_path / "t.db", enable_local_model=False), providers=[provider]
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http


async def test_an_upstream_error_quoting_the_key_does_not_leak_it(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    for body in (
        {"model": "up", "input": "fail-early"},
        {"model": "up", "input": "fail-early", "stream": True},
        {"model": "up", "input": "x", "background": True},
    ):
        reply = await client.post("/v1/responses", json=body)
        seen.append(reply.text)
        if body.get("background"):
            response_id = reply.json()["id"]
            deadline = time.monotonic() + 30  # a ceiling for a hang on a loaded machine
            while (stored := await client.get(f"/v1/responses/{response_id}")).json()["status"] in (
                "queued",
                "in_progress",
            ):
                assert time.monotonic() < deadline, "the background response never ended"
                await asyncio.sleep(0.01)
            seen.append(stored.text)
            assert stored.json()["status"] == "failed"
            seen.append((await client.get(f"/v1/responses/{response_id}?stream=true")).text)
    assert any("Incorrect API key provided" in text for text in seen)  # the error did arrive
    seen.append((await client.get("/openapi.json")).text)
    seen.append((await client.get("/docs")).text)
    seen.append(caplog.text)
    for text in seen:
        assert SECRET not in text
