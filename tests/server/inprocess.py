"""An app served in-process for the operations tests: httpx over ASGI, lifespan run."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from turnstream.providers.scripted import ScriptedProvider
from turnstream.server.app import create_app
from turnstream.server.appstate import ServerState
from turnstream.server.settings import Settings


@dataclass
class InProcess:
    app: Any
    client: httpx.AsyncClient
    scripted: ScriptedProvider

    @property
    def state(self) -> ServerState:
        state: ServerState = self.app.state.turnstream
        return state

    async def metric(self, name: str, **labels: str) -> float:
        """A sample's value as `/metrics` shows it (0 when absent)."""
        text = (await self.client.get("/metrics")).text
        return sample(text, name, **labels)


def sample(text: str, name: str, **labels: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


@contextlib.asynccontextmanager
async def serving(
    tmp_path: Path, *, tracer_provider: Any = None, **settings: Any
) -> AsyncIterator[InProcess]:
    scripted = ScriptedProvider()
    app = create_app(
        Settings(db_path=tmp_path / "ops.db", enable_local_model=False, **settings),
        providers=[scripted],
        tracer_provider=tracer_provider,
    )
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://ops") as client,
    ):
        yield InProcess(app=app, client=client, scripted=scripted)


@dataclass
class Reply:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def events(self) -> list[dict[str, Any]]:
        return [
            json.loads(line[len(b"data: ") :])
            for line in self.body.splitlines()
            if line.startswith(b"data: ")
        ]


async def asgi_request(
    app: Any,
    method: str,
    path: str,
    body: Any = None,
    *,
    on_message: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
    disconnect: asyncio.Event | None = None,
) -> Reply:
    """One HTTP request through the app's raw ASGI interface.

    `on_message` sees each message the app sends the moment it sends it (httpx's
    ASGI transport only returns once the body has ended); setting `disconnect` makes
    the client go away (the next `receive()` answers `http.disconnect`).
    """
    raw = json.dumps(body).encode() if body is not None else b""
    gone = disconnect or asyncio.Event()
    sent_request = False
    status = 0
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent_request
        if not sent_request:
            sent_request = True
            return {"type": "http.request", "body": raw, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body" and message.get("body"):
            chunks.append(message["body"])
        if on_message is not None:
            await on_message(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    await app(scope, receive, send)
    return Reply(status, b"".join(chunks))
