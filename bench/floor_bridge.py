"""The least a Python bridge can cost: a floor for `bridge_paced.py`'s CPU per chunk.

A bridge from a Chat Completions upstream to a Responses client has to wake up when a
chunk arrives, read it, and write an event to its client. On a given machine that
wake-up, the read and the write have a price no framework can remove. This server
pays only that, on raw asyncio (uvloop when installed) with `asyncio.Protocol`s and
no HTTP library, so that `bridge_paced.py --floor` can show in the same run how much
of turnstream's CPU per chunk is the machine's and how much is turnstream's.

`POST /v1/responses` (any body) opens a kept-alive connection to the upstream, asks
it for a stream, and answers `text/event-stream`:

- `--mode translate` (default): every upstream SSE event is `json.loads`-ed, a text
  delta becomes one `response.output_text.delta` event (`json.dumps`), and the end
  becomes `response.completed`: the least work a bridge that speaks Responses does.
- `--mode relay`: the upstream's events are passed through as they are (no JSON at
  all): the wake-up, the read and the write alone.

It validates nothing, stores nothing, has no error handling and serves one upstream:
it is a measuring stick, not a server.

    python bench/floor_bridge.py --upstream http://127.0.0.1:PORT/v1 [--mode relay]
    # prints its port
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from typing import cast
from urllib.parse import urlsplit

_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
    b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
)
_CHAT_BODY = json.dumps(
    {
        "model": "bench",
        "stream": True,
        "messages": [{"role": "user", "content": "go"}],
        "stream_options": {"include_usage": True},
    }
).encode()


def _chunk(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


class _ChunkedReader:
    """Splits an HTTP/1.1 chunked response (head skipped) into SSE events."""

    def __init__(self) -> None:
        self.buffer = b""
        self.head_done = False
        self.pending = b""  # SSE bytes not yet ending in a blank line
        self.ended = False

    def feed(self, data: bytes) -> list[bytes]:
        self.buffer += data
        if not self.head_done:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return []
            self.buffer = self.buffer[end + 4 :]
            self.head_done = True
        while True:
            line_end = self.buffer.find(b"\r\n")
            if line_end < 0:
                break
            size = int(self.buffer[:line_end], 16)
            if size == 0:
                self.ended = True
                self.buffer = b""
                break
            if len(self.buffer) < line_end + 2 + size + 2:
                break
            self.pending += self.buffer[line_end + 2 : line_end + 2 + size]
            self.buffer = self.buffer[line_end + 2 + size + 2 :]
        *events, self.pending = self.pending.split(b"\n\n")
        return events


class _Upstream(asyncio.Protocol):
    def __init__(self, client: _Client) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.reader = _ChunkedReader()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        events = self.reader.feed(data)
        if events:
            self.client.relay(events)
        if self.reader.ended:
            self.reader = _ChunkedReader()
            self.client.finish()

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.upstream = None


class _Client(asyncio.Protocol):
    def __init__(self, server: FloorBridge) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.upstream: _Upstream | None = None
        self.sequence = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        length = 0
        for line in self.buffer[:end].split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if len(self.buffer) < end + 4 + length:
            return
        self.buffer = self.buffer[end + 4 + length :]
        asyncio.get_running_loop().create_task(self.start())

    async def start(self) -> None:
        if self.upstream is None:
            loop = asyncio.get_running_loop()
            _, self.upstream = await loop.create_connection(
                lambda: _Upstream(self), self.server.host, self.server.port
            )
        assert self.upstream.transport is not None
        assert self.transport is not None
        self.upstream.transport.write(self.server.request)
        self.sequence = 0
        created = b'{"type":"response.created","sequence_number":0}'
        self.transport.write(_HEAD + _chunk(b"event: response.created\ndata: " + created + b"\n\n"))

    def relay(self, events: list[bytes]) -> None:
        assert self.transport is not None
        if self.server.mode == "relay":
            self.transport.write(_chunk(b"".join(event + b"\n\n" for event in events)))
            return
        out = []
        for event in events:
            data = event[6:] if event.startswith(b"data: ") else b""
            if not data.startswith(b"{"):
                continue
            choices = json.loads(data).get("choices") or [{}]
            text = (choices[0].get("delta") or {}).get("content")
            if text:
                self.sequence += 1
                payload = json.dumps(
                    {
                        "type": "response.output_text.delta",
                        "sequence_number": self.sequence,
                        "item_id": "msg_floor",
                        "output_index": 0,
                        "content_index": 0,
                        "delta": text,
                    }
                ).encode()
                out.append(b"event: response.output_text.delta\ndata: " + payload + b"\n\n")
        if out:
            self.transport.write(_chunk(b"".join(out)))

    def finish(self) -> None:
        assert self.transport is not None
        done = b'{"type":"response.completed","sequence_number":%d}' % (self.sequence + 1)
        self.transport.write(
            _chunk(b"event: response.completed\ndata: " + done + b"\n\n") + b"0\r\n\r\n"
        )

    def connection_lost(self, exc: Exception | None) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.close()


class FloorBridge:
    def __init__(self, upstream: str, mode: str) -> None:
        parts = urlsplit(upstream)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.mode = mode
        self.request = (
            b"POST %s/chat/completions HTTP/1.1\r\nhost: %s\r\n"
            b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
            % (parts.path.rstrip("/").encode(), self.host.encode(), len(_CHAT_BODY), _CHAT_BODY)
        )


async def serve(upstream: str, mode: str) -> None:
    bridge = FloorBridge(upstream, mode)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Client(bridge), "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--upstream", required=True, help="the upstream's base URL (…/v1)")
    parser.add_argument("--mode", choices=("translate", "relay"), default="translate")
    args = parser.parse_args()
    runner = asyncio.run
    with contextlib.suppress(ImportError):
        import uvloop

        runner = uvloop.run
    with contextlib.suppress(KeyboardInterrupt):
        runner(serve(args.upstream, args.mode))


if __name__ == "__main__":
    main()
