"""PostgreSQL LISTEN/NOTIFY: wake watchers of a key on a channel, across replicas.

One dedicated connection per store LISTENs (a pooled connection cannot: it would
stop listening when returned to the pool), on each channel the first time someone
watches it, and wakes whoever watches the key (a response id) a notification
carries. Writers send the NOTIFY inside their transaction, so a woken watcher
finds what was written.

Should the listening connection drop, every watcher is woken (it looks again) and
the next wait reconnects.

Channels are per database, but stores may share a database on different schemas
(`?search_path=tenant1`), with the same keys. A notification therefore carries the
writer's schema after the key (`resp_1/tenant1`, see `payload`), and a listener wakes
only for its own schema's; a bare key (from a writer before this rule) wakes every
watcher of it, as it did then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information

from turnstream.storage.dialect import Wakeup

__all__ = ["PAYLOAD_SQL", "Listener", "addressed_key"]

logger = logging.getLogger(__name__)

PAYLOAD_SQL = "CAST(:key AS text) || '/' || coalesce(current_schema(), '')"
"""The payload a writer sends for `:key`, in SQL: the key, then the schema it wrote to.
Keys are ids this project makes, which never contain `/`."""


def addressed_key(payload: str, schema: str | None) -> str | None:
    """The key a notification wakes for a listener on `schema`: None if it came from
    another schema's store."""
    key, scoped, sender = payload.partition("/")
    if scoped and sender != schema:
        return None
    return key


class Listener:
    """Wakes watchers of `(channel, key)` when any process notifies it."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._conn: Any = None
        self._channels: set[str] = set()
        self._connecting = asyncio.Lock()
        self._watchers: dict[tuple[str, str], set[asyncio.Event]] = {}
        self._schema: str | None = None
        self._closes = 0

    async def _listen(self, channel: str) -> None:
        async with self._connecting:
            if self._conn is None or self._conn.is_closed():
                closes = self._closes
                conn = await asyncpg.connect(self._dsn)
                # Ours only once assigned: until then a cancel (the waiter went away)
                # or a close() meanwhile must not leave it open.
                try:
                    schema = await conn.fetchval("SELECT coalesce(current_schema(), '')")
                    if self._closes != closes:
                        raise RuntimeError("the listener was closed while it connected")
                except BaseException:
                    conn.terminate()
                    raise
                conn.add_termination_listener(self._terminated)
                self._conn, self._channels, self._schema = conn, set(), schema
            if channel not in self._channels:
                await self._conn.add_listener(channel, self._notified)
                self._channels.add(channel)

    def _notified(self, _conn: Any, _pid: int, channel: str, payload: str) -> None:
        key = addressed_key(payload, self._schema)
        for woken in self._watchers.get((channel, key), ()) if key is not None else ():
            woken.set()

    def _terminated(self, _conn: Any) -> None:
        logger.warning("the LISTEN connection closed; reconnecting on the next wait")
        for watchers in self._watchers.values():
            for woken in watchers:
                woken.set()

    @contextlib.asynccontextmanager
    async def watch(self, channel: str, key: str) -> AsyncIterator[Wakeup]:
        """See `DialectBase._watch`: listening starts before this yields."""
        await self._listen(channel)
        woken = asyncio.Event()
        self._watchers.setdefault((channel, key), set()).add(woken)

        async def wakeup(seconds: float) -> None:
            await self._listen(channel)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await woken.wait()
            woken.clear()

        try:
            yield wakeup
        finally:
            watchers = self._watchers[(channel, key)]
            watchers.discard(woken)
            if not watchers:
                del self._watchers[(channel, key)]

    async def close(self) -> None:
        self._closes += 1
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
