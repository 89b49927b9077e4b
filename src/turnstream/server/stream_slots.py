"""`StreamSlot`: one open stream counted against its key's concurrent-stream limit.

The count lives in the database (`Store.acquire_stream_slot`), so the limit holds
across replicas. A slot is held from admission until the stream's body has closed,
renewed meanwhile; should its replica die, the slot lapses after
`Limits.stream_slot_ttl`. One object acquires, renews and releases it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets

from turnstream.protocol.errors import APIError
from turnstream.storage.base import Store

from .auth import Principal
from .limits import Limits

__all__ = ["StreamSlot", "too_many_streams"]

log = logging.getLogger("turnstream.server")


def too_many_streams(limit: int) -> APIError:
    return APIError(
        429,
        "requests",
        f"Too many concurrent streams for this key (limit {limit}); "
        "wait for one to finish and try again.",
        code="rate_limit_exceeded",
        headers={"retry-after": "1", "retry-after-ms": "1000"},
    )


class StreamSlot:
    """A held slot; `release()` when the stream's body has closed."""

    def __init__(self, store: Store, slot: str, ttl: float) -> None:
        self.store = store
        self.slot = slot
        self.ttl = ttl
        self._renewer = asyncio.create_task(self._renew(), name=f"turnstream-slot:{slot}")

    @classmethod
    async def take(cls, store: Store, principal: Principal, limits: Limits) -> StreamSlot | None:
        """A slot for one more stream of the principal's key; None when no limit
        applies (no key, or no limit configured).

        Raises:
            APIError: 429 `rate_limit_exceeded` when the key has its limit open.
        """
        limit = limits.concurrent_streams
        if limit is None or principal.key_id is None:
            return None
        slot = "slot_" + secrets.token_hex(12)
        ttl = limits.stream_slot_ttl
        if not await store.acquire_stream_slot(principal.key_id, slot, limit=limit, ttl=ttl):
            raise too_many_streams(limit)
        return cls(store, slot, ttl)

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self.ttl / 3)
            try:
                await self.store.renew_stream_slot(self.slot, ttl=self.ttl)
            except Exception:
                # a missed renewal only risks the slot lapsing early; the next retries
                log.warning("could not renew stream slot %s", self.slot, exc_info=True)

    def release(self) -> None:
        """Stop renewing and free the slot (in the background: the body is done)."""
        self._renewer.cancel()
        task = asyncio.get_running_loop().create_task(self._free())
        _pending.add(task)
        task.add_done_callback(_pending.discard)

    async def _free(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await self._renewer
        try:
            await self.store.release_stream_slot(self.slot)
        except Exception:
            log.warning("could not release stream slot %s; it lapses", self.slot, exc_info=True)


_pending: set[asyncio.Task[None]] = set()
"""Releases in flight (a task nobody references may be collected before it runs)."""
