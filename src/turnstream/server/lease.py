"""`ConversationLease`: the one owner of a response's hold on its conversation.

A response that runs on a conversation takes the conversation's lease row at
admission (DESIGN.md invariant 3) and lets go of it exactly once, on every path. Only
this module calls the store's `acquire_lock`, `renew_lock` and `release_lock`; the
run and the HTTP side are handed the lease and tell it what happened:

- `commit_turn()`: write the turn under the lease. With `lock_release =
  "before_terminal"` the same store transaction also releases it, so the lease is
  free before the terminal event is announced (invariant 2).
- `body_closed()`: the HTTP body of the request that created the response has
  closed. With `lock_release = "after_body"` the lease is released only once the run
  has settled, the body has closed and `lock_release_delay` has passed: OpenAI's
  hosted behaviour, reproduced on purpose to test clients against it.
- `release()`: let go now (a failed admission, an unsaved turn). Idempotent.

While held, a heartbeat task renews the row every third of its TTL, so a live
holder keeps it and a crashed one loses it on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from turnstream.storage.base import ConversationLockedError, Store

from .settings import LockRelease, Settings

__all__ = ["ConversationLease"]

log = logging.getLogger("turnstream.server")

JSON = dict[str, Any]
Sleep = Callable[[float], Awaitable[None]]


class ConversationLease:
    """One response's lease on one conversation.

    Create it with `acquire()`; the constructor assumes the row is already held.
    """

    def __init__(
        self,
        store: Store,
        conversation_id: str,
        holder: str,
        *,
        ttl: float,
        release_mode: LockRelease = "before_terminal",
        release_delay: float = 0.0,
        sleep: Sleep = asyncio.sleep,
        on_lost: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.conversation_id = conversation_id
        self.holder = holder
        self.ttl = ttl
        self.release_mode: LockRelease = release_mode
        self.release_delay = release_delay
        self._sleep = sleep
        self._held = True
        self._heartbeat: asyncio.Task[None] | None = None
        self._settled = asyncio.Event()
        self._body_closed = False
        self._after_body: asyncio.Task[None] | None = None
        self._on_lost = on_lost

    @classmethod
    async def acquire(
        cls,
        store: Store,
        conversation_id: str,
        holder: str,
        settings: Settings,
        *,
        sleep: Sleep = asyncio.sleep,
        on_lost: Callable[[str], None] | None = None,
    ) -> ConversationLease | None:
        """Claim the conversation for `holder` and start the heartbeat.

        Returns `None` when another response holds it. Raises the store's
        `ConversationNotFoundError` for an unknown conversation. `on_lost(stage)` is
        called once if the lease turns out to have been taken over (`"renewal"` or
        `"commit"`: where this holder noticed), for the takeover metric.
        """
        if not await store.acquire_lock(conversation_id, holder, ttl=settings.lease_ttl):
            return None
        lease = cls(
            store,
            conversation_id,
            holder,
            ttl=settings.lease_ttl,
            release_mode=settings.lock_release,
            release_delay=settings.lock_release_delay,
            sleep=sleep,
            on_lost=on_lost,
        )
        lease._heartbeat = asyncio.create_task(
            lease._renew(), name=f"lease {conversation_id} for {holder}"
        )
        return lease

    @property
    def held(self) -> bool:
        """Whether this lease still holds the conversation, as far as it knows."""
        return self._held

    # -- what the run tells the lease ----------------------------------------------------

    async def commit_turn(
        self, *, response: JSON, items: Sequence[JSON] | None, store_response: bool
    ) -> None:
        """Write the turn under the lease: the response, the turn's `items` (None: add
        none), and in `before_terminal` mode the release, in one store transaction.

        Raises the store's `ConversationLockedError` when the lease was lost (it
        expired and another response took the conversation); the lease then counts
        itself released, since it has nothing left to let go of.
        """
        release = self.release_mode == "before_terminal"
        try:
            await self.store.finish_turn(
                self.conversation_id,
                self.holder,
                response_id=self.holder,
                response=response,
                items=list(items) if items is not None else None,
                store_response=store_response,
                release=release,
            )
        except ConversationLockedError:
            self._lost("commit")
            self._let_go()
            raise
        if release:
            self._let_go()

    def settled(self) -> None:
        """The run has ended and persisted; the after-body release may now proceed."""
        self._settled.set()
        self._maybe_release_after_body()

    # -- what the HTTP side tells the lease ----------------------------------------------

    def body_closed(self) -> None:
        """The creating request's body has closed (or will never be sent). Idempotent."""
        self._body_closed = True
        self._maybe_release_after_body()

    # -- letting go ----------------------------------------------------------------------

    async def release(self) -> None:
        """Release now, if still held. Idempotent; safe on every path."""
        if not self._held:
            return
        self._let_go()
        await self.store.release_lock(self.conversation_id, self.holder)

    async def wait_released(self) -> None:
        """Wait for a scheduled after-body release to finish (tests, shutdown)."""
        if self._after_body is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._after_body)

    def _let_go(self) -> None:
        self._held = False
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None

    def _maybe_release_after_body(self) -> None:
        # the one place an after-body release is scheduled: both conditions met, once
        if not (self._settled.is_set() and self._body_closed) or self._after_body is not None:
            return
        if self.release_mode != "after_body" or not self._held:
            return
        # detached, so a cancelled request handler cannot skip it
        self._after_body = asyncio.create_task(
            self._release_after_delay(), name=f"release {self.conversation_id} after body"
        )

    async def _release_after_delay(self) -> None:
        await self._sleep(self.release_delay)
        try:
            await self.release()
        except Exception:
            # the row expires on its own after `ttl`; nothing else can be done here
            log.exception("could not release %s after the body", self.conversation_id)

    async def _renew(self) -> None:
        period = max(self.ttl / 3, 0.05)
        while True:
            await asyncio.sleep(period)
            try:
                ok = await self.store.renew_lock(self.conversation_id, self.holder, ttl=self.ttl)
            except Exception:
                log.exception("lease renewal failed for %s", self.conversation_id)
                continue
            if not ok:
                log.error("lease on %s lost by %s", self.conversation_id, self.holder)
                self._lost("renewal")
                return

    def _lost(self, stage: str) -> None:
        # reported once: a lost renewal is usually followed by a refused commit
        if self._on_lost is not None:
            on_lost, self._on_lost = self._on_lost, None
            on_lost(stage)
