"""The load generator of `bench/many_streams.py`: N streams opened at once on raw
asyncio sockets, each recording when its events arrived."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from typing import Any

_CONTENT = re.compile(rb'"(?:content|delta)":"@(\d+);')
_TERMINAL = (b"data: [DONE]", b'"type":"response.completed"')
_CODE = re.compile(rb'"code":"([^"]*)"')
_FAILED = (b'"type":"response.failed"', b'"type":"response.incomplete"', b'"type":"error"')


class ClientStream(asyncio.Protocol):
    """One streamed request read with a minimal HTTP/1.1 + SSE parser; records when each
    event and content chunk arrives."""

    def __init__(self, request: bytes, done: asyncio.Future[dict[str, Any]]) -> None:
        self.request = request
        self.done = done
        self.started = time.monotonic()
        self.raw = b""
        self.head_done = False
        self.chunked = False
        self.chunk_left = 0  # bytes of the current chunk still to come (+2 for its CRLF)
        self.sse = b""
        self.status = 0
        self.transport: asyncio.BaseTransport | None = None
        self.first_event: float | None = None
        self.arrivals: list[float] = []
        self.lateness: list[float] = []
        self.terminal = False
        self.error: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        transport.write(self.request)  # type: ignore[attr-defined]  # a uvloop TCPTransport

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        self.raw += data
        if not self.head_done:
            end = self.raw.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.raw[:end].lower()
            self.status = int(head.split(b" ", 2)[1])
            self.chunked = b"transfer-encoding: chunked" in head
            self.raw = self.raw[end + 4 :]
            self.head_done = True
        self.sse += self.body()
        while (end := self.sse.find(b"\n\n")) >= 0:
            event = self.sse[:end]
            self.sse = self.sse[end + 2 :]
            if self.first_event is None:
                self.first_event = now
            if found := _CONTENT.search(event):
                self.arrivals.append(now)
                self.lateness.append(now - int(found.group(1)) / 1e6)
            elif any(marker in event for marker in _TERMINAL):
                self.terminal = True
            elif any(marker in event for marker in _FAILED):
                code = _CODE.search(event)
                self.error = f"failed: {code.group(1).decode() if code else event[:200]!r}"

    def body(self) -> bytes:
        """Takes what `raw` holds of the body, without the chunked framing."""
        if self.chunked:
            parts = []
            while self.raw:
                if self.chunk_left == 0:
                    end = self.raw.find(b"\r\n")
                    if end < 0:
                        break
                    size = int(self.raw[:end].split(b";")[0], 16)
                    self.raw = self.raw[end + 2 :]
                    if size == 0:
                        break
                    self.chunk_left = size + 2
                before = self.chunk_left
                take = self.raw[:before]
                self.raw = self.raw[len(take) :]
                self.chunk_left = before - len(take)
                parts.append(take[: max(0, before - 2)])  # not the chunk's closing CRLF
            return b"".join(parts)
        body, self.raw = self.raw, b""
        return body

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None and self.error is None:
            self.error = f"connection lost: {exc!r}"
        self.finish()

    def finish(self) -> None:
        if self.done.done():
            return
        self.done.set_result(
            {
                "status": self.status,
                "error": self.error,
                "terminal": self.terminal,
                "first_event": None
                if self.first_event is None
                else self.first_event - self.started,
                "arrivals": [t - self.started for t in self.arrivals],
                "lateness": self.lateness,
                "total": time.monotonic() - self.started,
            }
        )


async def generate(port: int, path: str, body: bytes, n: int, ramp: float, limit_s: float) -> None:
    """Opens `n` streams (spread over `ramp` seconds), waits for all, prints the
    records as JSON."""
    loop = asyncio.get_running_loop()
    request = (
        b"POST %s HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        b"accept: text/event-stream\r\nconnection: close\r\ncontent-length: %d\r\n\r\n%s"
        % (path.encode(), len(body), body)
    )
    begin = time.monotonic()
    deadline = begin + ramp + limit_s

    async def one(i: int) -> dict[str, Any]:
        await asyncio.sleep(begin + ramp * i / n - time.monotonic())
        done: asyncio.Future[dict[str, Any]] = loop.create_future()
        try:
            _, stream = await loop.create_connection(
                lambda: ClientStream(request, done), "127.0.0.1", port
            )
        except OSError as exc:
            return {
                "status": 0,
                "error": f"connect: {exc!r}",
                "terminal": False,
                "first_event": None,
                "arrivals": [],
                "lateness": [],
                "total": 0.0,
            }
        try:
            async with asyncio.timeout(deadline - time.monotonic()):
                return await asyncio.shield(done)
        except TimeoutError:
            stream.error = stream.error or "timed out"
            stream.finish()
            stream.transport.close()  # type: ignore[attr-defined]  # a uvloop TCPTransport
            return done.result()

    cpu = time.process_time()
    records = await asyncio.gather(*(one(i) for i in range(n)))
    json.dump({"records": records, "cpu_s": time.process_time() - cpu}, sys.stdout)
