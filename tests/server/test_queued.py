"""A provider that must wait for capacity: the stream says `response.queued` at once,
between `created` and `in_progress` as the API documents, and the response reads
`queued` until the provider starts."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from tests.engine.checks import check_stream
from turnstream.engine.deltas import OutputTextDelta, QueuedDelta, StartedDelta
from turnstream.providers.base import ProviderError
from turnstream.providers.scripted import Raise, ScriptedProvider
from turnstream.server.app import create_app
from turnstream.server.settings import Settings

from .inprocess import asgi_request


class QueuingProvider(ScriptedProvider):
    """Scripted, but like the embedded model its requests may wait for a slot."""

    def may_queue(self, model: str) -> bool:
        return True


def app_with(provider: ScriptedProvider, tmp_path: Path) -> Any:
    return create_app(
        Settings(db_path=tmp_path / "q.db", enable_local_model=False), providers=[provider]
    )


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


async def test_a_queued_response_streams_queued_before_in_progress_while_it_waits(
    tmp_path: Path,
) -> None:
    slot_free = asyncio.Event()
    provider = QueuingProvider()

    async def wait_for_slot(request: Any) -> None:
        await slot_free.wait()

    provider.push([QueuedDelta(), wait_for_slot, StartedDelta(), OutputTextDelta("hi")])
    app = app_with(provider, tmp_path)
    seen: list[dict[str, Any]] = []
    status_while_queued: list[str] = []

    async def on_message(message: dict[str, Any]) -> None:
        for line in message.get("body", b"").splitlines():
            if line.startswith(b"data: "):
                seen.append(json.loads(line[6:]))
        if not slot_free.is_set() and "response.queued" in types(seen):
            # the client hears of the wait while it lasts, not afterwards
            response_id = seen[0]["response"]["id"]
            got = await asgi_request(app, "GET", f"/v1/responses/{response_id}")
            status_while_queued.append(got.json()["status"])
            slot_free.set()

    async with app.router.lifespan_context(app):
        reply = await asgi_request(
            app,
            "POST",
            "/v1/responses",
            {"model": "scripted", "input": "hello", "stream": True},
            on_message=on_message,
        )
    assert reply.status == 200
    events = reply.events()
    assert types(events)[:4] == [
        "response.created",
        "response.queued",
        "response.in_progress",
        "response.output_item.added",
    ]
    assert events[1]["response"]["status"] == "queued"
    assert status_while_queued == ["queued"]
    assert check_stream(events)["output"][0]["content"][0]["text"] == "hi"


async def test_a_failure_right_after_starting_is_still_a_plain_http_error(
    tmp_path: Path,
) -> None:
    provider = QueuingProvider()
    provider.push([StartedDelta(), Raise(ProviderError("slow down", code="busy", status=429))])
    app = app_with(provider, tmp_path)
    async with app.router.lifespan_context(app):
        reply = await asgi_request(
            app, "POST", "/v1/responses", {"model": "scripted", "input": "hi", "stream": True}
        )
    assert reply.status == 429
    assert reply.json()["error"]["code"] == "busy"
