"""A fake OpenAI-compatible Chat Completions server on a real loopback port.

Reusable by any test or benchmark that needs an upstream for `OpenAIChatProvider`:

    with FakeChatUpstream() as upstream:
        upstream.queue(FakeReply(chunks=[text_chunk("Hel"), text_chunk("lo"), finish_chunk()]))
        provider = OpenAIChatProvider(upstream.base_url, models={"m": "upstream-m"})
        ...
        assert upstream.requests[0].body["stream"] is True

It runs in a `ServerThread` (uvicorn in a daemon thread with its own event loop), so a
stalled client cannot stall the server. Each `POST .../chat/completions` takes the next queued `FakeReply`
(or, with the queue empty, `default_reply(body)`, which echoes the last message) and
records the request. A streaming reply watches for the client going away: the
`time.monotonic()` of every disconnect seen before the stream finished is appended to
`disconnects` and `disconnected` is set.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from turnstream.cli._server_thread import ServerThread

__all__ = [
    "FakeChatUpstream",
    "FakeReply",
    "ReceivedRequest",
    "chunk",
    "finish_chunk",
    "reasoning_chunk",
    "text_chunk",
    "tool_call_chunk",
    "usage_chunk",
]

Frame = Mapping[str, Any] | bytes


@dataclass
class FakeReply:
    """One scripted upstream answer.

    Attributes:
        chunks: Chunk dicts (sent as `data: <json>` frames) or raw bytes (sent verbatim,
            e.g. comments, `event:` lines or deliberately broken frames).
        done: Append `data: [DONE]` after the chunks.
        delay: Seconds to wait before each frame.
        write_size: Split every frame into writes of at most this many bytes.
        status: HTTP status; anything but 200 (or a `body`) sends a JSON body instead
            of a stream.
        headers: Extra response headers (e.g. `retry-after`).
        body: JSON body (a dict) or raw bytes for a non-stream reply.
        hold_open: After the chunks, keep the stream open (no `[DONE]`, no end) until
            the client goes away: a reply that only the client can end, for tests of
            how a client stops a stream, without racing a stream that ends on its own.
        hold: An event the stream waits for (at most 60 s) before its first frame,
            so a test decides when the upstream answers (no timing luck).
    """

    chunks: Sequence[Frame] = ()
    done: bool = True
    delay: float = 0.0
    write_size: int | None = None
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Mapping[str, Any] | bytes | None = None
    hold_open: bool = False
    hold: threading.Event | None = None

    @classmethod
    def error(
        cls,
        status: int,
        message: str,
        *,
        code: str | None = None,
        type: str = "invalid_request_error",
        headers: Mapping[str, str] | None = None,
    ) -> FakeReply:
        """An OpenAI-shaped JSON error reply."""
        error = {"message": message, "type": type, "param": None, "code": code}
        return cls(status=status, body={"error": error}, headers=headers or {})

    def frames(self) -> list[bytes]:
        frames = [
            frame if isinstance(frame, bytes) else b"data: " + json.dumps(frame).encode() + b"\n\n"
            for frame in self.chunks
        ]
        if self.done:
            frames.append(b"data: [DONE]\n\n")
        return frames


@dataclass(frozen=True)
class ReceivedRequest:
    """A request as the fake saw it."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: Any
    client_port: int | None = None
    """The client's source port: equal ports mean a reused (pooled) connection."""


def chunk(
    delta: Mapping[str, Any] | None = None,
    *,
    finish_reason: str | None = None,
    usage: Mapping[str, Any] | None = None,
    choices: bool = True,
) -> dict[str, Any]:
    """A `chat.completion.chunk` dict shaped like OpenAI's."""
    body: dict[str, Any] = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "fake-upstream",
        "system_fingerprint": "fp_fake",
        "choices": (
            [
                {
                    "index": 0,
                    "delta": dict(delta or {}),
                    "logprobs": None,
                    "finish_reason": finish_reason,
                }
            ]
            if choices
            else []
        ),
    }
    if usage is not None:
        body["usage"] = dict(usage)
    return body


def text_chunk(text: str) -> dict[str, Any]:
    return chunk({"content": text})


def reasoning_chunk(text: str, field: str = "reasoning_content") -> dict[str, Any]:
    return chunk({field: text})


def tool_call_chunk(
    index: int, *, call_id: str | None = None, name: str | None = None, arguments: str = ""
) -> dict[str, Any]:
    call: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
    if call_id is not None:
        call["id"] = call_id
        call["type"] = "function"
    if name is not None:
        call["function"]["name"] = name
    return chunk({"tool_calls": [call]})


def finish_chunk(reason: str = "stop") -> dict[str, Any]:
    return chunk({}, finish_reason=reason)


def usage_chunk(
    prompt_tokens: int, completion_tokens: int, *, cached_tokens: int = 0, reasoning_tokens: int = 0
) -> dict[str, Any]:
    """The final usage-only chunk that `stream_options.include_usage` asks for."""
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": reasoning_tokens},
    }
    return chunk(usage=usage, choices=False)


def echo_reply(body: Any) -> FakeReply:
    """The default reply: the last message's text content, a word per chunk."""
    messages = body.get("messages", []) if isinstance(body, Mapping) else []
    content = messages[-1].get("content") if messages else ""
    text = content if isinstance(content, str) else "ok"
    words = [word + " " for word in text.split(" ")]
    words[-1] = words[-1][:-1]
    return FakeReply(chunks=[*(text_chunk(w) for w in words if w), finish_chunk("stop")])


class FakeChatUpstream:
    """A Chat Completions server for tests; see the module docstring."""

    def __init__(self, default_reply: Callable[[Any], FakeReply] = echo_reply) -> None:
        self.default_reply = default_reply
        self.requests: list[ReceivedRequest] = []
        self.disconnects: list[float] = []
        self.disconnected = threading.Event()
        self.completed = 0
        """Streams written to their end (since the last `reset`)."""
        # bumped by `reset`: a stream of an earlier test that ends or disconnects
        # after it is not counted against the next test
        self._epoch = 0
        self._replies: deque[FakeReply] = deque()
        self._server: ServerThread | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def queue(self, *replies: FakeReply) -> None:
        """Queue replies, consumed one per request in order."""
        self._replies.extend(replies)

    def reset(self) -> None:
        """Forget queued replies, recorded requests and disconnects."""
        self._replies.clear()
        self.requests.clear()
        self.disconnects.clear()
        self.disconnected.clear()
        self.completed = 0
        self.default_reply = echo_reply
        self._epoch += 1

    async def wait_for_disconnect(self, within: float = 2.0) -> float:
        """The monotonic time of the first disconnect, waiting up to `within` seconds."""
        deadline = time.monotonic() + within
        while not self.disconnects:
            if time.monotonic() > deadline:
                raise TimeoutError("the fake upstream saw no disconnect")
            await asyncio.sleep(0.002)
        return self.disconnects[0]

    def start(self) -> FakeChatUpstream:
        self._server = ServerThread(
            self._app,
            name="fake-chat-upstream",
            lifespan="off",
            interface="asgi3",
            ws="none",
            timeout_graceful_shutdown=1,
        ).start(timeout=10)
        self.port = self._server.port
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(timeout=5)

    def __enter__(self) -> FakeChatUpstream:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- the ASGI app -------------------------------------------------------------

    async def _app(self, scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        client = scope.get("client")
        self.requests.append(
            ReceivedRequest(
                scope["method"], scope["path"], headers, body, client[1] if client else None
            )
        )
        reply = self._replies.popleft() if self._replies else self.default_reply(body)
        if reply.status != 200 or reply.body is not None:
            await self._send_body(send, reply)
        else:
            await self._send_stream(receive, send, reply)

    async def _send_body(self, send: Any, reply: FakeReply) -> None:
        payload = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
        headers = [(b"content-type", b"application/json")]
        headers += [(k.encode(), v.encode()) for k, v in reply.headers.items()]
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    async def _send_stream(self, receive: Any, send: Any, reply: FakeReply) -> None:
        headers = [(b"content-type", b"text/event-stream; charset=utf-8")]
        headers += [(k.encode(), v.encode()) for k, v in reply.headers.items()]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        epoch = self._epoch
        watcher = asyncio.ensure_future(self._watch_disconnect(receive, epoch))
        frames = reply.frames()
        if reply.hold_open and reply.done:
            frames = frames[:-1]
        if reply.hold is not None:
            await asyncio.to_thread(reply.hold.wait, 60)
        try:
            for frame in frames:
                if reply.delay:
                    await asyncio.wait([watcher], timeout=reply.delay)
                if watcher.done():
                    return
                size = reply.write_size or len(frame) or 1
                for start in range(0, len(frame), size):
                    piece = frame[start : start + size]
                    await send({"type": "http.response.body", "body": piece, "more_body": True})
                    if reply.write_size:
                        await asyncio.sleep(0)  # let each piece leave as its own write
            if reply.hold_open:
                await watcher  # only the client going away ends this reply
                return
            watcher.cancel()
            await send({"type": "http.response.body", "body": b""})
            if epoch == self._epoch:
                self.completed += 1
        except OSError:  # newer servers report a vanished client as an OSError
            self._record_disconnect(epoch)
        finally:
            watcher.cancel()

    async def _watch_disconnect(self, receive: Any, epoch: int) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self._record_disconnect(epoch)

    def _record_disconnect(self, epoch: int) -> None:
        if epoch != self._epoch:
            return  # a stream of an earlier test
        self.disconnects.append(time.monotonic())
        self.disconnected.set()
