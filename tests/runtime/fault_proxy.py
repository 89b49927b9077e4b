"""A loopback TCP proxy that drops connections before the first response byte.

A server cannot drop a connection from inside ASGI (it can only answer 500), so the
runtime's resilience tests put this between the client and a real turnstream server.
It understands just enough HTTP/1.1 to see where a request starts: the client sends a
request, waits for the whole response, then sends the next one on the same keep-alive
connection (no pipelining). The first client bytes after a response (or on a new
connection) therefore begin a request, and each request independently draws whether
its connection dies.

`mode` says where:

- `"before_request"`: the request never reaches the server; the client socket is
  closed as soon as the request's first bytes arrive. Always safe to resend.
- `"before_response"`: the request is forwarded, and both sockets are closed when the
  server's first response byte arrives, which is not forwarded. The server may have
  done the work: a resend is ambiguous, as it is in real life.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Container, Coroutine
from typing import Any, Literal

__all__ = ["FaultProxy"]

DropMode = Literal["before_request", "before_response"]


class FaultProxy:
    """Forwards `127.0.0.1:<port>` to an upstream, dropping a share of requests.

    Use as `async with FaultProxy(...) as proxy:`; `proxy.base_url` replaces the server's.

    Attributes:
        requests: Requests seen (each drew once).
        drops: Requests whose connection was closed before any response byte.
        connections: Client connections accepted.
    """

    def __init__(
        self,
        upstream_port: int,
        *,
        drop_rate: float,
        mode: DropMode = "before_request",
        seed: int | None = None,
        upstream_host: str = "127.0.0.1",
        drop_requests: Container[int] | None = None,
    ) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.drop_rate = drop_rate
        self.drop_requests = drop_requests
        """Request numbers (1-based, in arrival order) to drop, instead of drawing."""
        self.mode: DropMode = mode
        self.rng = random.Random(seed)
        self.requests = 0
        self.drops = 0
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _draw(self) -> bool:
        if self.drop_requests is not None:
            return self.requests in self.drop_requests
        return self.rng.random() < self.drop_rate

    async def __aenter__(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        # Close the sockets rather than cancel the handlers: asyncio logs a cancelled
        # `client_connected_cb` task as an error.
        for writer in list(self._writers):
            writer.close()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        self._writers.add(client_w)
        try:
            await self._serve(client_r, client_w)
        finally:
            self._writers.discard(client_w)
            await _close(client_w)
            self._tasks.discard(task)

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            upstream_r, upstream_w = await asyncio.open_connection(
                self.upstream_host, self.upstream_port
            )
        except OSError:
            return
        self._writers.add(upstream_w)
        # Shared between the two pumps: does the next client chunk begin a request,
        # and must the connection die at the next response byte?
        state = {"request_start": True, "drop_at_response": False}
        done = asyncio.Event()

        async def client_to_server() -> None:
            while data := await client_r.read(65536):
                if state["request_start"]:
                    state["request_start"] = False
                    self.requests += 1
                    if self._draw():
                        if self.mode == "before_request":
                            self.drops += 1
                            return
                        state["drop_at_response"] = True
                upstream_w.write(data)
                await upstream_w.drain()

        async def server_to_client() -> None:
            while data := await upstream_r.read(65536):
                if state["drop_at_response"]:
                    self.drops += 1
                    return
                state["request_start"] = True
                client_w.write(data)
                await client_w.drain()

        async def pump(coro: Coroutine[Any, Any, None]) -> None:
            with contextlib.suppress(OSError):
                await coro
            done.set()

        pumps = [
            asyncio.create_task(pump(client_to_server())),
            asyncio.create_task(pump(server_to_client())),
        ]
        try:
            await done.wait()
        finally:
            for task in pumps:
                task.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            self._writers.discard(upstream_w)
            await _close(upstream_w)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError, ConnectionError):
        await writer.wait_closed()
