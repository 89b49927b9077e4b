"""The event log of background responses and stream replay, in one place.

A background run (`background: true`) keeps every event it emits so that
`GET /v1/responses/{id}?stream=true` can replay it from any `starting_after`:

- `EventLog` holds a run's encoded frames in memory for followers in this process
  and writes the events to the store in batches (at most every
  `EVENT_FLUSH_INTERVAL`). `seal()` writes the last batch, terminal event included,
  before the run announces it, so a resumed stream never misses the end.
- `follow()` replays a live run of this process: its backlog, then live frames.
- `replay_stored()` replays from the store: a finished run, or one running in
  another process (replica). It waits for new events through an `EventWakeup`;
  `StoreWakeup` waits with `Store.wait_for_events`, which PostgreSQL wakes with
  LISTEN/NOTIFY and SQLite by polling. A run whose replica died has no terminal
  event; once the stale-response sweep marks it failed, the replay ends with a
  `response.failed` built from the stored response, so a follower never hangs.
- `drain()` turns a frame queue into the batched writes of an SSE body.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any, Protocol

from turnstream import sse
from turnstream.protocol import (
    TERMINAL_EVENT_TYPES,
    TERMINAL_STATUSES,
    Response,
    ResponseCompletedEvent,
    ResponseFailedEvent,
    ResponseIncompleteEvent,
)
from turnstream.storage.base import ResponseRecord, Store
from turnstream.storage.responses import STALE_RESPONSE_ERROR

__all__ = [
    "EVENT_FLUSH_INTERVAL",
    "EVENT_POLL_INTERVAL",
    "EventLog",
    "EventWakeup",
    "FinalBatch",
    "FrameQueue",
    "PollingWakeup",
    "StoreWakeup",
    "drain",
    "follow",
    "replay_stored",
]

log = logging.getLogger("turnstream.server")

FrameQueue = asyncio.Queue[bytes | None]
"""Encoded SSE frames; `None` ends the body."""

EVENT_FLUSH_INTERVAL = 0.05
"""Seconds between two batched writes of a background run's events."""
EVENT_POLL_INTERVAL = 0.1
"""Seconds between two reads of the event log when following a run of another process."""
REPLAY_GRACE = 1.0
"""How long a finished response may go without its terminal event in the log."""
STORE_WAKEUP_WITHIN = 1.0
"""The longest a `StoreWakeup` waits, so a follower still looks at the response's
status (a replica that died writes no more events) about once a second."""


class EventWakeup(Protocol):
    """Waits until response `response_id` may have events after `after` in the store."""

    async def wait(self, response_id: str, after: int | None) -> None:
        """Return when new events may exist; returning early is always allowed."""
        ...


class PollingWakeup:
    """The wake-up of a store without notifications: wait one poll interval."""

    def __init__(self, interval: float = EVENT_POLL_INTERVAL) -> None:
        self.interval = interval

    async def wait(self, response_id: str, after: int | None) -> None:
        await asyncio.sleep(self.interval)


class StoreWakeup:
    """Waits with `Store.wait_for_events`: woken by the appending transaction's
    NOTIFY on PostgreSQL (no busy poll across replicas), by polling on SQLite."""

    def __init__(self, store: Store, within: float = STORE_WAKEUP_WITHIN) -> None:
        self.store = store
        self.within = within

    async def wait(self, response_id: str, after: int | None) -> None:
        await self.store.wait_for_events(response_id, after=after, within=self.within)


class EventLog:
    """One background run's events: frames for followers here, rows in the store."""

    def __init__(
        self, store: Store, response_id: str, *, flush_interval: float = EVENT_FLUSH_INTERVAL
    ) -> None:
        self.store = store
        self.response_id = response_id
        self.flush_interval = flush_interval
        self._frames: list[tuple[int, bytes]] = []
        self._subscribers: list[FrameQueue] = []
        self._ended = False
        self._unsaved: list[tuple[int, str]] = []
        self._wake = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._flusher: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the batched writer."""
        self._flusher = asyncio.create_task(
            self._flush_loop(), name=f"event log {self.response_id}"
        )

    # -- writing -------------------------------------------------------------------------

    def append(self, events: Sequence[Any]) -> None:
        """Keep and publish `events`; they reach the store with the next batch."""
        for event in events:
            self._publish(self._keep(event))
        self._wake.set()

    async def seal(self, terminal: Any) -> bytes:
        """Keep the terminal event and write everything still unsaved, terminal
        included. Returns its frame, published only by `announce()`: what followers
        hear of has been stored first."""
        frame = self._keep(terminal)
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        await self._flush()
        return frame

    def announce(self, frame: bytes) -> None:
        """Publish the sealed terminal frame and end every follower's stream."""
        self._publish(frame)
        self._ended = True
        for queue in self._subscribers:
            queue.put_nowait(None)
        self._subscribers.clear()

    # -- following -----------------------------------------------------------------------

    def subscribe(self, after: int | None) -> tuple[bytes, FrameQueue]:
        """The frames so far with `sequence_number > after` (all when None), and a
        queue of every later frame, `None` after the terminal one. Call
        `unsubscribe()` when done."""
        backlog = b"".join(frame for seq, frame in self._frames if after is None or seq > after)
        queue: FrameQueue = asyncio.Queue()
        if self._ended:
            queue.put_nowait(None)
        else:
            self._subscribers.append(queue)
        return backlog, queue

    def unsubscribe(self, queue: FrameQueue) -> None:
        with contextlib.suppress(ValueError):
            self._subscribers.remove(queue)

    # -- internals -----------------------------------------------------------------------

    def _keep(self, event: Any) -> bytes:
        data: bytes = event.__pydantic_serializer__.to_json(event)
        frame = sse.encode_data(event.type, data)
        seq: int = event.sequence_number
        self._frames.append((seq, frame))
        self._unsaved.append((seq, data.decode()))
        return frame

    def _publish(self, frame: bytes) -> None:
        for queue in self._subscribers:
            queue.put_nowait(frame)

    async def _flush_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            # shielded: cancelling the loop (at `seal()`) must not cut a write in
            # half; the final flush queues behind it on the lock
            await asyncio.shield(self._flush())
            await asyncio.sleep(self.flush_interval)

    async def _flush(self) -> None:
        async with self._flush_lock:
            batch, self._unsaved = self._unsaved, []
            if not batch:
                return
            try:
                await self.store.append_events(self.response_id, batch)
            except Exception:
                log.exception("could not store the events of %s", self.response_id)
                self._unsaved[:0] = batch  # try again with the next batch


class FinalBatch(bytes):
    """The last batch of a body: the HTTP side sends it with the body's end, in one
    write instead of two (on a small machine a write that wakes the client is a large
    part of a short stream's cost)."""


async def drain(queue: FrameQueue, keepalive_interval: float) -> AsyncGenerator[bytes, None]:
    """Frames from `queue` until `None`, batched (everything waiting goes out in one
    write), with an SSE keepalive comment whenever the queue stays quiet too long.
    A batch that ends the body is a `FinalBatch`."""
    # The keepalive is a watchdog timer that puts a comment in the queue, re-armed
    # only when it fires: a timeout around each wait (`asyncio.timeout`) set up and
    # cancelled a timer per frame, ~7 % of the server's CPU at a model's pace. Not
    # `asyncio.wait_for` either: on Python 3.11 it returns a frame that arrives as
    # the reader is cancelled and drops the cancel (CPython gh-86296), and the HTTP
    # side cancels this reader when the client goes away.
    keepalive = _Keepalive(queue, keepalive_interval)
    try:
        while True:
            chunk = queue.get_nowait() if not queue.empty() else await queue.get()
            parts: list[bytes] = []
            done = chunk is None
            while chunk is not None:
                parts.append(chunk)
                if queue.empty():
                    break
                chunk = queue.get_nowait()
                done = chunk is None
            keepalive.reset()
            if parts:
                batch = b"".join(parts)
                yield FinalBatch(batch) if done else batch
            if done:
                return
    finally:
        keepalive.stop()


class _Keepalive:
    """Puts an SSE keepalive comment in `queue` whenever it has stayed empty for
    `interval` since the reader last took from it (`reset()`)."""

    def __init__(self, queue: FrameQueue, interval: float) -> None:
        self._queue = queue
        self._interval = interval
        self._loop = asyncio.get_running_loop()
        self._last = self._loop.time()
        self._timer = self._loop.call_at(self._last + interval, self._watch)

    def reset(self) -> None:
        self._last = self._loop.time()

    def stop(self) -> None:
        self._timer.cancel()

    def _watch(self) -> None:
        now = self._loop.time()
        due = self._last + self._interval
        if not self._queue.empty():
            due = now + self._interval  # the reader is behind: nothing to keep alive
        elif now >= due:
            self._queue.put_nowait(sse.KEEPALIVE)
            self._last = now
            due = now + self._interval
        self._timer = self._loop.call_at(due, self._watch)


async def follow(
    event_log: EventLog, after: int | None, keepalive_interval: float
) -> AsyncIterator[bytes]:
    """A run of this process: what it emitted so far, then live to its end."""
    backlog, queue = event_log.subscribe(after)
    try:
        if backlog:
            yield backlog
        # closed with us, so its keepalive timer stops now, not at garbage collection
        async with contextlib.aclosing(drain(queue, keepalive_interval)) as batches:
            async for frames in batches:
                yield frames
    finally:
        event_log.unsubscribe(queue)


async def replay_stored(
    store: Store,
    response_id: str,
    after: int | None,
    *,
    wakeup: EventWakeup,
    keepalive_interval: float,
    grace: float = REPLAY_GRACE,
) -> AsyncIterator[bytes]:
    """A finished run, or one in another process: read the event log until its
    terminal event. A response that is over without one (its replica died and the
    sweep failed it) ends with a terminal event made from the stored response."""
    last = after
    quiet_since = time.monotonic()
    over_since: float | None = None
    while True:
        events = await store.list_events(response_id, after=last)
        if events:
            quiet_since = time.monotonic()
            parts: list[bytes] = []
            ended = False
            for seq, data in events:
                kind = json.loads(data)["type"]
                parts.append(sse.encode_data(kind, data.encode()))
                last = seq
                if kind in TERMINAL_EVENT_TYPES:
                    ended = True
                    break
            yield b"".join(parts)
            if ended:
                return
            continue
        record = await store.get_response(response_id)
        if record is None or record.status in TERMINAL_STATUSES:
            # the terminal event is stored just after the final status; a response
            # that stays over without one (its server crashed) ends the stream here
            over_since = time.monotonic() if over_since is None else over_since
            if time.monotonic() - over_since > grace or _failed_by_sweep(record):
                if record is not None:
                    yield _stored_terminal(record, 0 if last is None else last + 1)
                return
        await wakeup.wait(response_id, last)
        if time.monotonic() - quiet_since >= keepalive_interval:
            quiet_since = time.monotonic()
            yield sse.KEEPALIVE


def _failed_by_sweep(record: ResponseRecord | None) -> bool:
    """Whether the stale-response sweep failed it: its replica died, and no terminal
    event will ever be logged, so waiting out the grace period is pointless."""
    return record is not None and record.response.get("error") == STALE_RESPONSE_ERROR


def _stored_terminal(record: ResponseRecord, sequence_number: int) -> bytes:
    """The terminal event the log lacks, made from the stored (final) response."""
    response = Response.model_validate(record.response)
    event: ResponseCompletedEvent | ResponseFailedEvent | ResponseIncompleteEvent
    if response.status == "completed":
        event = ResponseCompletedEvent(sequence_number=sequence_number, response=response)
    elif response.status == "failed":
        event = ResponseFailedEvent(sequence_number=sequence_number, response=response)
    else:
        event = ResponseIncompleteEvent(sequence_number=sequence_number, response=response)
    data: bytes = event.__pydantic_serializer__.to_json(event)
    return sse.encode_data(event.type, data)
