"""A WebSocket turn, like an HTTP one, asks the model while its stored response's
insert commits, and sends nothing before the row exists.

Deterministic: the insert waits on a `threading.Event` the test sets (the server runs
in its own thread and loop), and the scripted model reports how far it got.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.livesrv import running_server
from turnstream.engine.deltas import OutputTextDelta
from turnstream.providers.base import GenerationRequest
from turnstream.server.appstate import ServerState
from turnstream.storage.base import ResponseRecord

JSON = dict[str, Any]


def mark(event: threading.Event) -> Callable[[GenerationRequest], None]:
    def step(request: GenerationRequest) -> None:
        event.set()

    return step


class Held:
    """The store's `insert_response`, held until `release` (then committed, or
    failed with `error`); the frames the server sends are watched at the wire."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.asked = threading.Event()
        self.error: BaseException | None = None
        self.records: list[ResponseRecord] = []
        self.model_asked_first: list[bool] = []
        self.sent_while_held: list[Any] = []
        self.row_at_first_frame: list[bool] = []
        self.state: ServerState | None = None

    def install(self, state: ServerState, monkeypatch: pytest.MonkeyPatch) -> None:
        self.state = state
        store_class = type(state.store.inner)  # type: ignore[attr-defined]
        real = store_class.insert_response

        async def insert(store: Any, record: ResponseRecord) -> None:
            self.model_asked_first.append(self.asked.is_set())
            self.records.append(record)
            await asyncio.to_thread(self.release.wait, 60)
            if self.error is not None:
                raise self.error
            await real(store, record)

        monkeypatch.setattr(store_class, "insert_response", insert)

    def wrap(self, app: Any) -> Any:
        async def watched_app(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "websocket":
                await app(scope, receive, send)
                return

            async def watched(message: Any) -> None:
                if message["type"] == "websocket.send":
                    if not self.release.is_set():
                        self.sent_while_held.append(message)
                    if not self.row_at_first_frame and self.records and self.state:
                        found = await self.state.store.get_response(self.records[0].id)
                        self.row_at_first_frame.append(found is not None)
                await send(message)

            await app(scope, receive, watched)

        return watched_app


async def test_a_websocket_turn_asks_the_model_while_the_insert_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = Held()
    delivered = threading.Event()
    with running_server(tmp_path / "ws.db", wrap=held.wrap) as live:
        held.install(live.app.state.turnstream, monkeypatch)
        assert live.scripted is not None
        live.scripted.push([mark(held.asked), OutputTextDelta(text="hi"), mark(delivered)])
        async with connect(f"ws://127.0.0.1:{live.port}/v1/responses") as socket:
            await socket.send(json.dumps({"type": "response.create", "model": "scripted"}))
            # the model has streamed its delta through the run; the insert is held
            assert await asyncio.to_thread(delivered.wait, 60)
            assert held.sent_while_held == [], "nothing may go out before the row exists"
            held.release.set()
            frames: list[JSON] = []
            while not frames or frames[-1]["type"] not in ("response.completed", "error"):
                frames.append(json.loads(await socket.recv()))
    assert held.model_asked_first == [True], "the model is asked before the insert's work"
    assert held.row_at_first_frame == [True]
    assert frames[0]["type"] == "response.created"
    assert frames[-1]["type"] == "response.completed"
    assert "hi" in [frame.get("delta") for frame in frames]


async def test_a_failed_insert_on_a_websocket_is_an_error_frame_and_the_socket_stays_usable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = Held()
    held.error = sqlite3.OperationalError("disk I/O error")
    streaming, cancelled = threading.Event(), threading.Event()

    async def hold_open(request: GenerationRequest) -> None:
        streaming.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with running_server(tmp_path / "ws.db", wrap=held.wrap) as live:
        held.install(live.app.state.turnstream, monkeypatch)
        assert live.scripted is not None
        live.scripted.push([OutputTextDelta(text="hi"), hold_open])
        async with connect(f"ws://127.0.0.1:{live.port}/v1/responses") as socket:
            await socket.send(json.dumps({"type": "response.create", "model": "scripted"}))
            assert await asyncio.to_thread(streaming.wait, 60)
            held.release.set()
            error = json.loads(await socket.recv())
            assert error["type"] == "error"
            assert error["error"]["type"] == "server_error"
            assert cancelled.is_set(), "the model's stream must be cancelled"
            (record,) = held.records
            async with httpx.AsyncClient(base_url=live.base_url) as http:
                assert (await http.get(f"/responses/{record.id}")).status_code == 404
            monkeypatch.undo()
            # the same connection answers the next turn
            await socket.send(json.dumps({"type": "response.create", "model": "echo"}))
            frames: list[JSON] = []
            while not frames or frames[-1]["type"] not in ("response.completed", "error"):
                frames.append(json.loads(await socket.recv()))
            assert frames[-1]["type"] == "response.completed"
