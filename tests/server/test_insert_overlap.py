"""The stored response's insert runs while the model is asked, and nothing is
announced before it commits: no headers, no `response.created`, no event.

The races are made deterministic: the insert waits on an `asyncio.Event` the test
sets, and the scripted model reports what it got to through events of its own.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.server.inprocess import InProcess, asgi_request, serving
from turnstream.engine.deltas import OutputTextDelta
from turnstream.providers.base import GenerationRequest
from turnstream.storage.base import ResponseRecord

Insert = Callable[[Any, ResponseRecord], Awaitable[None]]


class HeldInsert:
    """Replaces the store's `insert_response`: each insert waits for `release`, then
    commits (or raises `error`)."""

    def __init__(self, served: InProcess, monkeypatch: pytest.MonkeyPatch) -> None:
        # the route writes through a per-project view of the store, wrapped to be
        # measured: the hold goes into the store class
        self.store_class = type(served.state.store.inner)  # type: ignore[attr-defined]
        self.real: Insert = self.store_class.insert_response
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.error: BaseException | None = None
        self.records: list[ResponseRecord] = []
        self.model_asked_first: bool | None = None
        """Whether the model had been asked when the insert began (see `asked`)."""
        self.asked: asyncio.Event | None = None

        async def insert(store: Any, record: ResponseRecord) -> None:
            if self.asked is not None:
                self.model_asked_first = self.asked.is_set()
            self.records.append(record)
            self.entered.set()
            await self.release.wait()
            if self.error is not None:
                raise self.error
            await self.real(store, record)

        monkeypatch.setattr(self.store_class, "insert_response", insert)


def mark(event: asyncio.Event) -> Callable[[GenerationRequest], None]:
    """A script step that sets `event` when the model gets to it."""

    def step(request: GenerationRequest) -> None:
        event.set()

    return step


async def test_the_model_is_asked_while_the_insert_commits_but_nothing_is_sent_before_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with serving(tmp_path) as served:
        held = HeldInsert(served, monkeypatch)
        asked, delivered = asyncio.Event(), asyncio.Event()
        held.asked = asked
        served.scripted.push([mark(asked), OutputTextDelta(text="hi"), mark(delivered)])
        sent: list[dict[str, Any]] = []
        stored_at_start: list[ResponseRecord | None] = []

        async def on_message(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                (record,) = held.records
                stored_at_start.append(await served.state.store.get_response(record.id))
            sent.append(message)

        body = {"model": "scripted", "input": "go", "stream": True}
        request = asyncio.create_task(
            asgi_request(served.app, "POST", "/v1/responses", body, on_message=on_message)
        )
        await held.entered.wait()
        await asked.wait()
        # the model has streamed its first delta through the run, and the insert is
        # still held: the answer must not have begun
        await delivered.wait()
        assert sent == [], "nothing may go out before the stored row exists"
        held.release.set()
        reply = await request

    assert reply.status == 200
    assert held.model_asked_first, "the upstream request goes out before the insert's work"
    assert len(stored_at_start) == 1
    assert stored_at_start[0] is not None, "the stored row must exist when the headers go out"
    events = reply.events()
    assert events[0]["type"] == "response.created"
    assert events[-1]["type"] == "response.completed"
    assert "hi" in [e.get("delta") for e in events]


async def test_the_non_streamed_answer_also_waits_for_the_insert(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with serving(tmp_path) as served:
        held = HeldInsert(served, monkeypatch)
        finished = asyncio.Event()
        served.scripted.push([OutputTextDelta(text="hi"), mark(finished)])
        sent: list[dict[str, Any]] = []

        async def on_message(message: dict[str, Any]) -> None:
            sent.append(message)

        body = {"model": "scripted", "input": "go"}
        request = asyncio.create_task(
            asgi_request(served.app, "POST", "/v1/responses", body, on_message=on_message)
        )
        await finished.wait()
        assert sent == []
        held.release.set()
        reply = await request
        (record,) = held.records
        stored = await served.state.store.get_response(record.id)

    assert reply.status == 200
    assert reply.json()["status"] == "completed"
    # the final update came after the insert, not before it (which would be lost)
    assert stored is not None
    assert stored.status == "completed"


async def test_a_failed_insert_cancels_the_model_and_answers_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with serving(tmp_path) as served:
        held = HeldInsert(served, monkeypatch)
        held.error = sqlite3.OperationalError("disk I/O error")
        streaming, cancelled = asyncio.Event(), asyncio.Event()

        async def hold_open(request: GenerationRequest) -> None:
            streaming.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.set()
                raise

        served.scripted.push([OutputTextDelta(text="hi"), hold_open])
        conversation = (await served.client.post("/v1/conversations", json={})).json()["id"]
        sent: list[dict[str, Any]] = []

        async def on_message(message: dict[str, Any]) -> None:
            sent.append(message)

        body = {"model": "scripted", "input": "go", "stream": True, "conversation": conversation}
        request = asyncio.create_task(
            asgi_request(served.app, "POST", "/v1/responses", body, on_message=on_message)
        )
        await streaming.wait()
        assert sent == []
        held.release.set()
        # Starlette answers an unexpected error with a 500, then re-raises it
        with pytest.raises(sqlite3.OperationalError):
            await request
        assert cancelled.is_set(), "the model's stream must be cancelled"
        (record,) = held.records
        assert await served.state.store.get_response(record.id) is None
        monkeypatch.undo()
        # the lease was let go before the error left: the conversation is free now
        again = await served.client.post(
            "/v1/responses",
            json={"model": "scripted", "input": "again", "conversation": conversation},
        )

    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[0]["status"] == 500
    assert json.loads(sent[1]["body"])["error"]["type"] == "server_error"
    assert again.status_code == 200
    assert again.json()["status"] == "completed"
