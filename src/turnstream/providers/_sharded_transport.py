"""An httpx transport that spreads many long streams over small connection pools.

httpcore's pool walks its whole connection list (and, per idle connection, the list
again) each time a request starts or ends. A streaming bridge keeps one connection
per open stream, so with hundreds of streams open that walk costs more CPU than the
streams' own chunks. `ShardedTransport` keeps each pool at `SHARD_SIZE`
connections and sends each request to the least busy one, so starting or ending a
stream costs the same at 1,000 open streams as at 10.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx

__all__ = ["SHARD_SIZE", "ShardedTransport"]

SHARD_SIZE = 32
"""Connections per pool."""


class ShardedTransport(httpx.AsyncBaseTransport):
    """Pools of at most `SHARD_SIZE` connections, one more whenever all are busy.

    Args:
        max_connections: The most connections in all pools together (`None`: no
            cap). At the cap a request waits in the least busy pool, and fails with
            its pool timeout if no connection frees in time.
    """

    def __init__(self, max_connections: int | None = None) -> None:
        self._max_connections = max_connections
        # one TLS context for every pool: building one costs milliseconds
        self._ssl_context = httpx.create_ssl_context()
        self._shards: list[httpx.AsyncHTTPTransport] = []
        self._busy: list[int] = []

    def _pick(self) -> int:
        free = [i for i, busy in enumerate(self._busy) if busy < self._shard_limit(i)]
        if free:
            return min(free, key=self._busy.__getitem__)
        room = (
            self._max_connections - SHARD_SIZE * len(self._shards)
            if self._max_connections is not None
            else SHARD_SIZE
        )
        if room <= 0:
            # every pool full at the cap: wait in the least busy one
            return min(range(len(self._busy)), key=self._busy.__getitem__)
        limit = min(room, SHARD_SIZE)
        self._shards.append(
            httpx.AsyncHTTPTransport(
                verify=self._ssl_context,
                limits=httpx.Limits(max_connections=limit, max_keepalive_connections=limit),
            )
        )
        self._busy.append(0)
        return len(self._shards) - 1

    def _shard_limit(self, index: int) -> int:
        if self._max_connections is None:
            return SHARD_SIZE
        return min(SHARD_SIZE, self._max_connections - SHARD_SIZE * index)

    def _release(self, index: int) -> Callable[[], None]:
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._busy[index] -= 1

        return release

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        index = self._pick()
        self._busy[index] += 1
        release = self._release(index)
        try:
            response = await self._shards[index].handle_async_request(request)
        except BaseException:
            release()
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _ReleasingStream(response.stream, release)
        return response

    async def aclose(self) -> None:
        for shard in self._shards:
            await shard.aclose()


class _ReleasingStream(httpx.AsyncByteStream):
    """A response body that gives its pool's slot back when closed."""

    def __init__(self, stream: httpx.AsyncByteStream, release: Callable[[], None]) -> None:
        self._stream = stream
        self._release = release

    def __aiter__(self) -> AsyncIterator[bytes]:
        # the inner iterator itself: no extra generator frame per chunk
        return self._stream.__aiter__()

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            self._release()
