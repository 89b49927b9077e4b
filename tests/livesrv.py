"""A real uvicorn server on a loopback port, in a thread, for end-to-end tests.

Streaming, disconnects and the SDK's connection handling only behave for real over
a socket, so tests that need them start one of these.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from openai import OpenAI

from turnstream.cli._server_thread import ServerThread
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
                if not message.get("more_body", False):
                    # before the last byte leaves: a client that has read the whole
                    # answer must find it recorded (the test reads on another thread)
                    recorded["done"] = True
                    self._record(kind["value"], b"".join(body))
            await send(message)

        recorded = {"done": False}
        try:
            await self.app(scope, receive, tee)
        finally:
            if not recorded["done"]:  # a body cut off: record what was sent
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


class Gate:
    """A scripted-model step that holds its stream until the test opens the gate.

    Push it inside a script (`live.scripted.push([TextDelta("a"), gate, ...])`): the
    response then holds its conversation for exactly as long as the test needs, on
    any machine, instead of for a stream long enough that a loaded machine usually
    keeps up. `open()` may be called from the test's thread.
    """

    def __init__(self, live: LiveServer) -> None:
        self._live = live
        self._event = asyncio.Event()

    async def __call__(self, request: Any) -> None:
        await self._event.wait()

    def open(self) -> None:
        loop = self._live.loop
        assert loop is not None, "the server is not running"
        loop.call_soon_threadsafe(self._event.set)


@dataclass
class LiveServer:
    app: FastAPI
    recorder: WireRecorder
    thread: ServerThread
    """The uvicorn server and its event loop, in a daemon thread."""
    scripted: ScriptedProvider | None = None
    clients: list[Any] = field(default_factory=list, repr=False)
    """Sync clients the tests made; closed with the server so no socket leaks."""

    @property
    def port(self) -> int:
        return self.thread.port

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        return self.thread.loop

    @property
    def base_url(self) -> str:
        return f"{self.thread.base_url}/v1"

    @property
    def state(self) -> ServerState:
        state: ServerState = self.app.state.turnstream
        return state

    def gate(self) -> Gate:
        """A new closed `Gate` for this server's scripted model."""
        return Gate(self)

    def openai(self) -> OpenAI:
        """A sync `openai` client on this server (no retries), closed with the server."""
        client = OpenAI(base_url=self.base_url, api_key="test", max_retries=0)
        self.clients.append(client)
        return client

    def call(self, coro: Any, timeout: float = 10.0) -> Any:
        """Run a coroutine on the server's own event loop (for store inspection)."""
        return self.thread.call(coro, timeout)

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        self.thread.stop(15)


def start_server(
    db_path: Path,
    *,
    providers: Sequence[Provider] | None = None,
    wrap: Callable[[Any], Any] | None = None,
    **settings: Any,
) -> LiveServer:
    """Serve `create_app` with the echo, echo-slow and scripted models (or `providers`).

    `wrap(app)` returns an ASGI app around the server's own, between it and the wire
    recorder: a test's deliberate fault at the wire (e.g. holding back a frame).
    """
    scripted = None
    if providers is None:
        scripted = ScriptedProvider()
        providers = [EchoProvider(), EchoProvider(delay=0.02, models=("echo-slow",)), scripted]
    app = create_app(
        Settings(db_path=db_path, enable_local_model=False, **settings), providers=providers
    )
    recorder = WireRecorder(app if wrap is None else wrap(app))
    thread = ServerThread(recorder, name="turnstream-test-server").start(timeout=15)
    return LiveServer(app=app, recorder=recorder, thread=thread, scripted=scripted)


@contextlib.contextmanager
def running_server(db_path: Path, **kwargs: Any) -> Iterator[LiveServer]:
    live = start_server(db_path, **kwargs)
    try:
        yield live
    finally:
        live.stop()
    live.recorder.validate()


@contextlib.contextmanager
def backend_server(backend: str, tmp_path: Path, **kwargs: Any) -> Iterator[LiveServer]:
    """A live server on a fresh, empty database of `backend` (`tests/databases.py`)."""
    from .databases import fresh_database_url

    with (
        fresh_database_url(backend, tmp_path) as url,
        running_server(tmp_path / "turnstream.db", db_url=url, **kwargs) as live,
    ):
        yield live


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
    log_path: Path | None = None
    """The file the server's stderr goes to (kept after `stop()`)."""

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


_LISTENING = re.compile(rb"Uvicorn running on http://127\.0\.0\.1:(\d+)")


def spawn_server(
    db_path: Path, config: Path | None = None, *extra: str, db_url: str | None = None
) -> ServerProcess:
    """Start `turnstream serve` on a port the OS picks, on the SQLite file `db_path` or
    on `db_url` (its log goes beside `db_path` either way), and wait until it answers.

    The server binds port 0 and the port is read from its own start-up line, so two
    servers started at once (e.g. by two xdist workers) can never pick the same port,
    and the health check can never reach another test's server.
    """
    import subprocess
    import sys
    import tempfile

    import httpx

    args = [
        sys.executable,
        "-m",
        "turnstream.cli.main",
        "serve",
        "--port",
        "0",
        "--db",
        db_url or str(db_path),
        "--no-local",
    ]
    if config is not None:
        args += ["--config", str(config)]
    # info: uvicorn names the port it bound at that level
    args += ["--log-level", "info", *extra]
    log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - the ServerProcess closes it
        dir=db_path.parent, prefix="server-", suffix=".log", delete=False
    )
    log_path = Path(log.name)
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log)
    # generous: on a loaded 2-core machine `--workers` servers take 20 s to start
    deadline = time.monotonic() + 60
    port = None
    while True:
        if process.poll() is not None:
            log.close()
            raise RuntimeError(f"server exited: {log_path.read_text(errors='replace')}")
        if port is None and (found := _LISTENING.search(log_path.read_bytes())):
            port = int(found.group(1))
        if port is not None:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1).status_code == 200:
                    return ServerProcess(process, port, log, log_path)
            except httpx.TransportError:
                pass
        if time.monotonic() > deadline:
            process.kill()
            log.close()
            raise RuntimeError(f"server did not come up: {log_path.read_text(errors='replace')}")
        time.sleep(0.05)
