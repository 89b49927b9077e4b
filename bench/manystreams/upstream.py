"""The fake Chat Completions upstream of `bench/many_streams.py`: raw asyncio, one
process, every content chunk stamped with the time it was scheduled for."""

from __future__ import annotations

import asyncio
import json
import time


class UpstreamConnection(asyncio.Protocol):
    """One HTTP/1.1 connection to the fake upstream; answers one chat request at a time
    with a paced SSE stream driven by loop timers (no task per stream)."""

    def __init__(self, chunks: int, interval: float) -> None:
        self.chunks = chunks
        self.interval = interval
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.busy = False
        self.close_after = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while not self.busy:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1").lower()
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip() == "content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            self.close_after = "\r\nconnection: close" in head
            self.answer(head.split(" ", 2)[1], body)

    def answer(self, path: str, body: bytes) -> None:
        assert self.transport is not None
        if not path.endswith("/chat/completions"):
            data = b'{"object":"list","data":[]}'
            self.transport.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                % (len(data), data)
            )
            return
        request = json.loads(body)
        self.busy = True
        self.usage = bool((request.get("stream_options") or {}).get("include_usage"))
        self.head = (
            b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":0,'
            b'"model":"fake","choices":[{"index":0,"delta":'
        )
        self.transport.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
            + _chunk(self.head + b'{"role":"assistant","content":""},"finish_reason":null}]}\n\n')
        )
        self.start = time.monotonic()
        self.sent = 0
        asyncio.get_running_loop().call_at(self.start, self.tick)

    def tick(self) -> None:
        if self.transport is None or self.transport.is_closing():
            self.busy = False
            return
        due = self.start + self.sent * self.interval
        payload = b'{"content":"@%d;"},"finish_reason":null}]}\n\n' % int(due * 1e6)
        out = _chunk(self.head + payload)
        self.sent += 1
        if self.sent < self.chunks:
            asyncio.get_running_loop().call_at(self.start + self.sent * self.interval, self.tick)
        else:
            out += _chunk(self.head + b'{},"finish_reason":"stop"}]}\n\n')
            if self.usage:
                out += _chunk(
                    b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":0,'
                    b'"model":"fake","choices":[],"usage":{"prompt_tokens":1,'
                    b'"completion_tokens":%d,"total_tokens":%d}}\n\n'
                    % (self.chunks, self.chunks + 1)
                )
            out += _chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n"
            self.busy = False
        self.transport.write(out)
        if not self.busy and self.close_after:
            self.transport.close()
        elif not self.busy and self.buffer:
            self.data_received(b"")


def _chunk(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


async def serve_upstream(chunks: int, interval: float) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: UpstreamConnection(chunks, interval), "127.0.0.1", 0, backlog=4096
    )
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()
