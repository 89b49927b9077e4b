"""A Chat Completions upstream that answers no stream until `hold` are open at once.

With it, "N streams can be open to the upstream at the same time" is a deterministic
property: if a client caps its connections below `hold`, the streams it let through
wait for company that never comes, and the rest wait for a connection that never
frees, so the test fails on the client's pool timeout instead of passing by luck.

    async with HeldUpstream(hold=101) as upstream:
        ... 101 concurrent streams to upstream.base_url ...
"""

from __future__ import annotations

import asyncio
import json

__all__ = ["HeldUpstream"]

_REPLY = (
    b"".join(
        b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"
        for chunk in (
            {"choices": [{"index": 0, "delta": {"content": "held"}, "finish_reason": None}]},
            {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        )
    )
    + b"data: [DONE]\n\n"
)


class HeldUpstream:
    """Counts open chat requests; all of them are answered once `hold` are open."""

    def __init__(self, hold: int) -> None:
        self.hold = hold
        self.open = 0
        self.peak = 0
        self.released = asyncio.Event()
        self._arrivals = asyncio.Condition()
        self._server: asyncio.Server | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/v1"

    async def until_open(self, count: int) -> None:
        """Returns once `count` chat requests are open at once."""
        async with self._arrivals:
            await self._arrivals.wait_for(lambda: self.open >= count)

    async def __aenter__(self) -> HeldUpstream:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, backlog=1024)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        self.released.set()  # let every handler still waiting finish and close

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.lower().split(b"\r\n")
                if line.startswith(b"content-length:")
            )
            await reader.readexactly(length)
            self.open += 1
            self.peak = max(self.peak, self.open)
            if self.open >= self.hold:
                self.released.set()
            async with self._arrivals:
                self._arrivals.notify_all()
            await self.released.wait()
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n"
                b"content-length: %d\r\n\r\n%s" % (len(_REPLY), _REPLY)
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open -= 1
            writer.close()
