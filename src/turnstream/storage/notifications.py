"""PostgreSQL LISTEN/NOTIFY for followers of a background response's event log.

One dedicated connection per store LISTENs on `EVENTS_CHANNEL` (a pooled
connection cannot: it would stop listening when returned to the pool) and wakes
whoever watches the response id a notification names. `append_events` sends the
NOTIFY in its own transaction, so a follower woken by it finds the events stored.

Should the listening connection drop, its watchers are woken (they look again) and
the next wait reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information

from turnstream.storage.dialect import NextAppend
from turnstream.storage.events import EVENTS_CHANNEL

__all__ = ["EventListener"]

logger = logging.getLogger(__name__)


class EventListener:
    """Wakes watchers of a response id when its events are appended, anywhere."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._conn: Any = None
        self._connecting = asyncio.Lock()
        self._watchers: dict[str, set[asyncio.Event]] = {}

    async def _listening(self) -> None:
        async with self._connecting:
            if self._conn is not None and not self._conn.is_closed():
                return
            conn = await asyncpg.connect(self._dsn)
            conn.add_termination_listener(self._terminated)
            await conn.add_listener(EVENTS_CHANNEL, self._notified)
            self._conn = conn

    def _notified(self, _conn: Any, _pid: int, _channel: str, response_id: str) -> None:
        for woken in self._watchers.get(response_id, ()):
            woken.set()

    def _terminated(self, _conn: Any) -> None:
        logger.warning("the event listener's connection closed; reconnecting on next wait")
        for watchers in self._watchers.values():
            for woken in watchers:
                woken.set()

    @contextlib.asynccontextmanager
    async def watch(self, response_id: str) -> AsyncIterator[NextAppend]:
        """See `DialectBase._events_appended`: listening starts before this yields."""
        await self._listening()
        woken = asyncio.Event()
        self._watchers.setdefault(response_id, set()).add(woken)

        async def next_append(seconds: float) -> None:
            await self._listening()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), seconds)
            woken.clear()

        try:
            yield next_append
        finally:
            watchers = self._watchers[response_id]
            watchers.discard(woken)
            if not watchers:
                del self._watchers[response_id]

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
