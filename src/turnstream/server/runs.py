"""One response, from an accepted request to its terminal event.

A `ResponseRun` drives the provider in its own task (the *producer*), so that the
HTTP side can go away without cutting the run's bookkeeping in half. The order of
the last steps is the heart of the project (DESIGN.md invariant 2):

1. the provider finishes (or fails, or the client disconnects and the run is
   cancelled) and the state machine closes every item;
2. the response is written, the turn's items are appended to the conversation and
   the conversation lock is released, in one shielded transaction;
3. only then is the terminal event handed to the HTTP side.

A client that acts on `response.completed` therefore never finds the conversation
locked. With `lock_release="after_body"` step 2 keeps the lock and the HTTP side
releases it after the body has closed plus a delay, reproducing OpenAI's race on
purpose.

A *background* run (`background: true`) is not tied to any HTTP connection: a
disconnect does not cancel it (only `cancel()` does, for the cancel endpoint). It
keeps every event it emitted in memory for subscribers in this process
(`subscribe()`), and writes them to the store in batches (at most every
`EVENT_FLUSH_INTERVAL`), the last batch, with the terminal event, in the shielded
persist step before the terminal event is announced, so a resumed stream
(`GET /v1/responses/{id}?stream=true`) never misses the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from turnstream import sse
from turnstream.engine.deltas import Delta
from turnstream.engine.state import ResponseStateMachine
from turnstream.engine.toolset import Toolset
from turnstream.protocol import Response, ResponseError, ResponseFailedEvent
from turnstream.providers.base import GenerationRequest, Provider, ProviderError
from turnstream.storage.base import ConversationLockedError, Store

from .settings import Settings

__all__ = ["EVENT_FLUSH_INTERVAL", "ResponseRun", "drain"]

log = logging.getLogger("turnstream.server")

JSON = dict[str, Any]

EVENT_FLUSH_INTERVAL = 0.05
"""Seconds between two batched writes of a background run's events."""


class ResponseRun:
    """Runs one response; the HTTP layer reads `chunks()` or awaits `result()`."""

    def __init__(
        self,
        *,
        store: Store,
        settings: Settings,
        provider: Provider,
        request: GenerationRequest,
        response: JSON,
        input_items: Sequence[JSON],
        store_response: bool,
        conversation_id: str | None,
        on_settled: Callable[[ResponseRun], None] | None = None,
        background: bool = False,
        toolset: Toolset | None = None,
        seal_reasoning: Callable[[str], str] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.provider = provider
        self.request = request
        self.response_id: str = response["id"]
        self.input_items = list(input_items)
        self.store_response = store_response
        self.conversation_id = conversation_id
        self.machine = ResponseStateMachine(response, tools=toolset, seal_reasoning=seal_reasoning)
        self.holds_lock = conversation_id is not None
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()  # None ends the body
        self._first = asyncio.Event()
        self._early_error: ProviderError | None = None
        self._task: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._settled = asyncio.Event()
        self._on_settled = on_settled
        self._detached: set[asyncio.Task[None]] = set()
        self.started_at = time.monotonic()
        self.persist_seconds = 0.0
        self._override: Response | None = None
        self.background = background
        # background runs only: every frame so far, live subscribers, unsaved events
        self._frames: list[tuple[int, bytes]] = []
        self._subscribers: list[asyncio.Queue[bytes | None]] = []
        self._ended = False
        self._unsaved_events: list[tuple[int, str]] = []
        self._flush_wake = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._flusher: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        self._emit(self.machine.start())
        if self.background:
            self._flusher = asyncio.create_task(self._flush_loop())
        self._task = asyncio.create_task(self._produce(), name=f"run {self.response_id}")
        if self.holds_lock:
            self._heartbeat = asyncio.create_task(self._renew_lease())

    async def wait_for_first_delta(self) -> ProviderError | None:
        """Wait until the provider produced something (or failed, or
        `settings.first_delta_wait` passed).

        Returns the provider's error if it failed before producing anything, so the
        caller can answer with a plain HTTP error instead of a stream.
        """
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._first.wait(), self.settings.first_delta_wait)
        if self._early_error is not None:
            await self._settled.wait()
            return self._early_error
        return None

    @property
    def early_error(self) -> ProviderError | None:
        """The provider's error when it failed before producing anything."""
        return self._early_error

    def keep(self, task: asyncio.Task[None]) -> None:
        """Hold a reference to a detached follow-up task until it ends."""
        self._detached.add(task)
        task.add_done_callback(self._detached.discard)

    def cancel(self) -> None:
        """Stop generating; the run records itself cancelled.

        The HTTP side calls this when the client went away, but never for a
        background run: only the cancel endpoint cancels those.
        """
        if self._task is not None and not self._task.done():
            self._task.cancel()

    async def result(self) -> JSON:
        """The final Response (waits for the run to settle)."""
        await self._settled.wait()
        return self.final_response

    @property
    def final_response(self) -> JSON:
        response = self._override if self._override is not None else self.machine.response
        return response.model_dump(mode="json")

    def chunks(self) -> AsyncIterator[bytes]:
        """Encoded SSE bytes, batched: everything queued is sent in one write."""
        return drain(self._queue, self.settings.keepalive_interval)

    def subscribe(self, after: int | None) -> tuple[bytes, asyncio.Queue[bytes | None]]:
        """Follow a background run: the frames so far with `sequence_number > after`
        (all when None), and a queue of every later frame, `None` after the terminal
        one. Call `unsubscribe()` when done."""
        backlog = b"".join(frame for seq, frame in self._frames if after is None or seq > after)
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        if self._ended:
            queue.put_nowait(None)
        else:
            self._subscribers.append(queue)
        return backlog, queue

    def unsubscribe(self, queue: asyncio.Queue[bytes | None]) -> None:
        with contextlib.suppress(ValueError):
            self._subscribers.remove(queue)

    async def release_after_body(self) -> None:
        """`after_body` mode: called once the HTTP body has closed."""
        if self.settings.lock_release != "after_body" or self.conversation_id is None:
            return
        await self._settled.wait()
        await asyncio.sleep(self.settings.lock_release_delay)
        await self._release()

    # -- the producer ------------------------------------------------------------------

    def _emit(self, events: Sequence[Any]) -> None:
        if self.background:
            for event in events:
                self._publish(self._keep(event))
            self._flush_wake.set()
            return
        for event in events:
            self._queue.put_nowait(sse.encode(event))

    def _keep(self, event: Any) -> bytes:
        """Background runs: remember the event for replay; returns its frame."""
        data: bytes = event.__pydantic_serializer__.to_json(event)
        frame = sse.encode_data(event.type, data)
        seq: int = event.sequence_number
        self._frames.append((seq, frame))
        self._unsaved_events.append((seq, data.decode()))
        return frame

    def _publish(self, frame: bytes) -> None:
        self._queue.put_nowait(frame)
        for queue in self._subscribers:
            queue.put_nowait(frame)

    def _end(self) -> None:
        self._ended = True
        self._queue.put_nowait(None)
        for queue in self._subscribers:
            queue.put_nowait(None)
        self._subscribers.clear()

    async def _flush_loop(self) -> None:
        while True:
            await self._flush_wake.wait()
            self._flush_wake.clear()
            # shielded: cancelling the loop (at the end of the run) must not cut a
            # write in half; the final flush queues behind it on the lock
            await asyncio.shield(self._flush())
            await asyncio.sleep(EVENT_FLUSH_INTERVAL)

    async def _flush(self) -> None:
        async with self._flush_lock:
            batch, self._unsaved_events = self._unsaved_events, []
            if not batch:
                return
            try:
                await self.store.append_events(self.response_id, batch)
            except Exception:
                log.exception("could not store the events of %s", self.response_id)
                self._unsaved_events[:0] = batch  # try again with the next batch

    async def _stop_flusher(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None

    async def _produce(self) -> None:
        machine = self.machine
        closing: list[Any]
        stream = self.provider.stream(self.request)
        try:
            try:
                async for delta in stream:
                    self._on_delta(delta)
                closing = list(machine.finish())
            finally:
                await _aclose(stream)
        except asyncio.CancelledError:
            closing = list(machine.cancel())
            await asyncio.shield(self._finish(closing))
            raise
        except ProviderError as exc:
            if not self._first.is_set():
                self._early_error = exc
            closing = list(machine.fail(exc.code, exc.message))
        except Exception:
            log.exception("provider failed on %s", self.response_id)
            closing = list(
                machine.fail("server_error", "The model failed while generating this response.")
            )
        await asyncio.shield(self._finish(closing))

    def _on_delta(self, delta: Delta) -> None:
        events = self.machine.feed(delta)
        if events:
            self._emit(events)
        if not self._first.is_set():
            self._first.set()

    async def _finish(self, closing: list[Any]) -> None:
        """Persist, release, then announce (invariant 2)."""
        self._first.set()
        self._emit(closing[:-1])
        terminal = closing[-1]
        began = time.perf_counter()
        try:
            await self._persist()
        except Exception:
            # A turn that was not saved must not be announced as done: the client
            # would build on items the conversation does not have.
            log.exception("could not persist %s", self.response_id)
            terminal = await self._unsaved(terminal)
        finally:
            self.persist_seconds = time.perf_counter() - began
            if self.background:
                # the terminal event is stored before anyone hears of it
                frame = self._keep(terminal)
                await self._stop_flusher()
                await self._flush()
                self._settled.set()
                self._publish(frame)
            else:
                self._settled.set()
                self._emit([terminal])
            self._end()
            if self._on_settled is not None:
                self._on_settled(self)

    async def _unsaved(self, terminal: Any) -> ResponseFailedEvent:
        """Turn the terminal event into `response.failed` and clean up what we can."""
        failed = terminal.response.model_copy(
            update={
                "status": "failed",
                "error": ResponseError(
                    code="server_error", message="The server could not save this response."
                ),
                "incomplete_details": None,
            }
        )
        self._override = failed
        if self.store_response:
            with contextlib.suppress(Exception):
                await self.store.update_response(self.response_id, self.final_response)
        with contextlib.suppress(Exception):
            await self._release()
        return ResponseFailedEvent(sequence_number=terminal.sequence_number, response=failed)

    async def _persist(self) -> None:
        response = self.final_response
        status = response["status"]
        release_now = self.settings.lock_release == "before_terminal"
        if self.conversation_id is not None:
            items = None
            if status in ("completed", "incomplete"):
                items = [*self.input_items, *response["output"]]
            try:
                await self.store.finish_turn(
                    self.conversation_id,
                    self.response_id,
                    response_id=self.response_id,
                    response=response,
                    items=items,
                    store_response=self.store_response,
                    release=release_now,
                )
            except ConversationLockedError:
                # the lease expired and someone else took the conversation: our
                # items must not be interleaved with theirs
                log.error(
                    "lost the lease on %s before %s finished",
                    self.conversation_id,
                    self.response_id,
                )
                if self.store_response:
                    await self.store.update_response(self.response_id, response)
            if release_now:
                self._stop_heartbeat()
                self.holds_lock = False
        elif self.store_response:
            await self.store.update_response(self.response_id, response)

    # -- the lease ---------------------------------------------------------------------

    async def _renew_lease(self) -> None:
        assert self.conversation_id is not None
        period = max(self.settings.lease_ttl / 3, 0.05)
        while True:
            await asyncio.sleep(period)
            try:
                ok = await self.store.renew_lock(
                    self.conversation_id, self.response_id, ttl=self.settings.lease_ttl
                )
            except Exception:
                log.exception("lease renewal failed for %s", self.conversation_id)
                continue
            if not ok:
                log.error("lease on %s lost by %s", self.conversation_id, self.response_id)
                return

    def _stop_heartbeat(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None

    async def _release(self) -> None:
        self._stop_heartbeat()
        if self.conversation_id is not None and self.holds_lock:
            self.holds_lock = False
            await self.store.release_lock(self.conversation_id, self.response_id)


async def _aclose(stream: AsyncIterator[Delta]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()


async def drain(
    queue: asyncio.Queue[bytes | None], keepalive_interval: float
) -> AsyncIterator[bytes]:
    """Frames from `queue` until `None`, batched (everything waiting goes out in one
    write), with an SSE keepalive comment whenever the queue stays quiet too long."""
    while True:
        try:
            chunk = await asyncio.wait_for(queue.get(), keepalive_interval)
        except TimeoutError:
            yield sse.KEEPALIVE
            continue
        parts: list[bytes] = []
        done = chunk is None
        while chunk is not None:
            parts.append(chunk)
            if queue.empty():
                break
            chunk = queue.get_nowait()
            done = chunk is None
        if parts:
            yield b"".join(parts)
        if done:
            return
