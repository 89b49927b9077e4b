"""The SSE response: a small ASGI app that streams a run and watches for disconnects.

Starlette's `StreamingResponse` only notices a vanished client when a write fails,
which for a slow model can be many seconds later. This response listens on
`receive()` at the same time, so a disconnect cancels generation at once (a
non-background run then ends `cancelled`; a background run keeps going), and the
run's own bookkeeping, which lives in its producer task, is never cut short by the
HTTP side.

`ReplayStreamResponse` serves `GET /v1/responses/{id}?stream=true`: any async
iterator of encoded frames, with the same headers.

`BodyClosedResponse` wraps whatever answers a create request and reports when its
body has closed, on every path (sent, failed, cancelled): the one signal the
conversation lease's after-body release waits for.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .replay import FinalBatch
from .runs import ResponseRun

__all__ = ["BodyClosedResponse", "EventStreamResponse", "ReplayStreamResponse"]

_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


async def _pump(
    frames: AsyncIterator[bytes], headers: list[tuple[bytes, bytes]], status_code: int, send: Send
) -> None:
    await send({"type": "http.response.start", "status": status_code, "headers": headers})
    async for chunk in frames:
        final = isinstance(chunk, FinalBatch)
        await send({"type": "http.response.body", "body": chunk, "more_body": not final})
        if final:
            return
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _stream(
    frames: AsyncIterator[bytes],
    headers: list[tuple[bytes, bytes]],
    status_code: int,
    receive: Receive,
    send: Send,
) -> bool:
    """Send `frames` as an SSE body while listening for a disconnect; returns whether
    the client went away before the body was complete.

    Waiting on both at once matters when the stream is quiet: a client that leaves
    a held-open stream is noticed now, not at the next frame or keepalive.
    """

    async def watch() -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return

    pumping = asyncio.create_task(_pump(frames, headers, status_code, send))
    watcher = asyncio.create_task(watch())
    try:
        await asyncio.wait({pumping, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (pumping, watcher):
            task.cancel()
        for task in (pumping, watcher):
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await task
        aclose = getattr(frames, "aclose", None)
        if aclose is not None:
            await aclose()
    if pumping.cancelled():
        return True
    error = pumping.exception()
    if isinstance(error, OSError):
        # newer servers raise on a write to a closed connection
        return True
    if error is not None:
        raise error
    return False


class EventStreamResponse(Response):
    """Streams a run to the client that created it; a disconnect cancels the run
    unless it is a background run."""

    media_type = "text/event-stream"

    def __init__(
        self, run: ResponseRun, *, status_code: int = 200, headers: dict[str, str] | None = None
    ) -> None:
        # deliberately not calling Response.__init__: there is no body to render,
        # this class only reuses the type so FastAPI passes it through untouched
        self.run = run
        self.status_code = status_code
        self.background = None
        self.extra_headers = [
            (k.encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [*_HEADERS, *self.extra_headers]
        gone = await _stream(self.run.chunks(), headers, self.status_code, receive, send)
        if gone and not self.run.background:
            self.run.cancel()


class ReplayStreamResponse(Response):
    """Streams encoded SSE frames from `frames`; stops reading it on a disconnect."""

    media_type = "text/event-stream"

    def __init__(self, frames: AsyncIterator[bytes], *, status_code: int = 200) -> None:
        self.frames = frames
        self.status_code = status_code
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _stream(self.frames, _HEADERS, self.status_code, receive, send)


class BodyClosedResponse(Response):
    """Sends `inner`, then calls `on_closed()`, also when sending failed or was
    cancelled."""

    def __init__(self, inner: Response, *, on_closed: Callable[[], None]) -> None:
        # not calling Response.__init__: `inner` renders the body
        self.inner = inner
        self.on_closed = on_closed
        self.status_code = inner.status_code
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.inner(scope, receive, send)
        finally:
            self.on_closed()
