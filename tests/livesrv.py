"""A real uvicorn server on a loopback port, in a thread, for end-to-end tests.

Streaming, disconnects and the SDK's connection handling only behave for real over
a socket, so tests that need them start one of these.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from turnstream.providers.base import Provider
from turnstream.providers.echo import EchoProvider
from turnstream.providers.scripted import ScriptedProvider
from turnstream.server.app import create_app
from turnstream.server.appstate import ServerState
from turnstream.server.settings import Settings
from turnstream.sse import Decoder

from .spec import validate_event, validate_response, validate_schema


class WireRecorder:
    """Tees every event and Response object the server sends on `/v1/responses`.

    The fixtures validate all of them against the Open Responses spec after each
    test, so *every* event the suite provokes is checked, not a hand-picked few.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.events: list[dict[str, Any]] = []
        self.responses: list[dict[str, Any]] = []
        self.socket_errors: list[dict[str, Any]] = []
        """WebSocket error frames (the nested shape, unlike SSE's flat one)."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket" and scope["path"] == "/v1/responses":
            await self.app(scope, receive, self._tee_frames(send))
            return
        if scope["type"] != "http" or not scope["path"].startswith("/v1/responses"):
            await self.app(scope, receive, send)
            return
        kind = {"value": b""}
        body: list[bytes] = []

        async def tee(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers", []))
                kind["value"] = (
                    headers.get(b"content-type", b"") if message["status"] < 300 else b""
                )
            elif message["type"] == "http.response.body":
                body.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, tee)
        finally:
            self._record(kind["value"], b"".join(body))

    def _tee_frames(self, send: Any) -> Any:
        """WebSocket mode: every text frame the server sends is an event or an error."""

        async def tee(message: Any) -> None:
            if message["type"] == "websocket.send" and message.get("text"):
                frame = json.loads(message["text"])
                if frame.get("type") == "error":
                    self.socket_errors.append(frame)
                else:
                    self.events.append(frame)
            await send(message)

        return tee

    def _record(self, content_type: bytes, data: bytes) -> None:
        if content_type.startswith(b"text/event-stream"):
            decoder = Decoder()
            for frame in [*decoder.feed(data), *decoder.flush()]:
                self.events.append(json.loads(frame.data))
        elif content_type.startswith(b"application/json") and data:
            body = json.loads(data)
            if isinstance(body, dict) and body.get("object") == "response" and "output" in body:
                self.responses.append(body)

    def validate(self) -> None:
        for event in self.events:
            validate_event(event)
            if "response" in event:
                validate_response(event["response"])
        for response in self.responses:
            validate_response(response)
        for frame in self.socket_errors:
            validate_schema(frame, "WebSocketErrorEvent")


@dataclass
class LiveServer:
    app: FastAPI
    recorder: WireRecorder
    server: uvicorn.Server
    thread: threading.Thread
    port: int
    scripted: ScriptedProvider | None = None
    loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)
    clients: list[Any] = field(default_factory=list, repr=False)
    """Sync clients the tests made; closed with the server so no socket leaks."""

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def state(self) -> ServerState:
        state: ServerState = self.app.state.turnstream
        return state

    def call(self, coro: Any, timeout: float = 10.0) -> Any:
        """Run a coroutine on the server's own event loop (for store inspection)."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        self.server.should_exit = True
        self.thread.join(15)


def start_server(
    db_path: Path,
    *,
    providers: Sequence[Provider] | None = None,
    **settings: Any,
) -> LiveServer:
    scripted = None
    if providers is None:
        scripted = ScriptedProvider()
        providers = [EchoProvider(), EchoProvider(delay=0.02, models=("echo-slow",)), scripted]
    app = create_app(
        Settings(db_path=db_path, enable_local_model=False, **settings), providers=providers
    )
    recorder = WireRecorder(app)
    config = uvicorn.Config(recorder, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    holder: dict[str, asyncio.AbstractEventLoop] = {}

    def run() -> None:
        loop = asyncio.new_event_loop()
        holder["loop"] = loop
        asyncio.set_event_loop(loop)
        with contextlib.suppress(Exception):
            loop.run_until_complete(server.serve())
        loop.close()

    thread = threading.Thread(target=run, daemon=True, name="turnstream-test-server")
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    return LiveServer(
        app=app,
        recorder=recorder,
        server=server,
        thread=thread,
        port=port,
        scripted=scripted,
        loop=holder["loop"],
    )


@contextlib.contextmanager
def running_server(db_path: Path, **kwargs: Any) -> Iterator[LiveServer]:
    live = start_server(db_path, **kwargs)
    try:
        yield live
    finally:
        live.stop()
    live.recorder.validate()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    """`turnstream serve` as a real OS process (for crash and multi-process tests)."""

    process: Any
    port: int
    log: Any = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def kill(self) -> None:
        import signal

        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self._close_log()

    def _close_log(self) -> None:
        if self.log is not None:
            self.log.close()
            self.log = None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except Exception:
                self.kill()
        self._close_log()


def spawn_server(db_path: Path, config: Path | None = None, *extra: str) -> ServerProcess:
    import subprocess
    import sys

    import httpx

    port = free_port()
    args = [
        sys.executable,
        "-m",
        "turnstream.cli.main",
        "serve",
        "--port",
        str(port),
        "--db",
        str(db_path),
        "--no-local",
    ]
    if config is not None:
        args += ["--config", str(config)]
    args += ["--log-level", "warning", *extra]
    log = (db_path.parent / f"server-{port}.log").open("wb")
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            log.close()
            raise RuntimeError(
                f"server exited: {(db_path.parent / f'server-{port}.log').read_text()}"
            )
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1).status_code == 200:
                return ServerProcess(process, port, log)
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            log.close()
            raise RuntimeError("server did not come up")
        time.sleep(0.05)
