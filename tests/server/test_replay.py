"""The event log and stream replay (`turnstream.server.replay`), without a server.

Events come from the real state machine; the store is an in-memory fake holding the
two event-log methods and `get_response`; the wake-up seam is driven by the test.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.types import Message

from turnstream import sse
from turnstream.engine.deltas import OutputTextDelta
from turnstream.engine.state import ResponseStateMachine
from turnstream.protocol import Response
from turnstream.server.replay import (
    EventLog,
    FinalBatch,
    StoreWakeup,
    drain,
    follow,
    replay_stored,
)
from turnstream.server.streaming import _stream
from turnstream.storage.base import ResponseRecord

RESPONSE_ID = "resp_1"


class EventStore:
    """The event log half of a Store, in memory."""

    def __init__(self, status: str = "in_progress", response: dict[str, Any] | None = None) -> None:
        self.events: dict[int, str] = {}
        self.status = status
        self.response = response or {}
        self.appends: list[list[int]] = []

    async def append_events(self, response_id: str, events: list[tuple[int, str]]) -> None:
        self.appends.append([seq for seq, _ in events])
        self.events.update(events)

    async def list_events(self, response_id: str, *, after: int | None) -> list[tuple[int, str]]:
        return sorted((s, d) for s, d in self.events.items() if after is None or s > after)

    async def get_response(self, response_id: str) -> ResponseRecord | None:
        return ResponseRecord(
            id=response_id, response=self.response, status=self.status, background=True
        )


def run_events(text: str = "one two three") -> tuple[list[Any], Any]:
    """A background response's events: (everything before the terminal, terminal)."""
    machine = ResponseStateMachine(
        Response(id=RESPONSE_ID, created_at=0, model="m", background=True)
    )
    events = [*machine.start()]
    for word in text.split():
        events.extend(machine.feed(OutputTextDelta(text=word + " ")))
    closing = machine.finish()
    return [*events, *closing[:-1]], closing[-1]


def decode(data: bytes) -> list[dict[str, Any]]:
    decoder = sse.Decoder()
    return [json.loads(e.data) for e in decoder.feed(data)] + [
        json.loads(e.data) for e in decoder.flush()
    ]


async def collect(frames: Any) -> bytes:
    return b"".join([chunk async for chunk in frames])


async def test_a_follower_gets_the_backlog_after_its_cursor_then_live_frames_to_the_end() -> None:
    store = EventStore()
    log = EventLog(store, RESPONSE_ID)  # type: ignore[arg-type]  # fake store
    events, terminal = run_events()
    log.append(events[:4])
    follower = asyncio.create_task(collect(follow(log, 1, keepalive_interval=60)))
    await asyncio.sleep(0)
    log.append(events[4:])
    log.announce(await log.seal(terminal))
    received = decode(await follower)
    assert [e["sequence_number"] for e in received] == list(range(2, terminal.sequence_number + 1))
    assert received[-1]["type"] == "response.completed"


async def test_the_terminal_event_is_stored_before_any_follower_hears_of_it() -> None:
    store = EventStore()
    log = EventLog(store, RESPONSE_ID)  # type: ignore[arg-type]  # fake store
    log.start()
    events, terminal = run_events()
    _, queue = log.subscribe(None)
    log.append(events)
    frame = await log.seal(terminal)
    assert sorted(store.events) == list(range(terminal.sequence_number + 1))
    heard = [queue.get_nowait() for _ in range(queue.qsize())]
    assert frame not in heard, "sealed is not announced"
    log.announce(frame)
    assert queue.get_nowait() == frame
    assert queue.get_nowait() is None


async def test_subscribing_after_the_end_gets_the_whole_log_and_an_ended_queue() -> None:
    log = EventLog(EventStore(), RESPONSE_ID)  # type: ignore[arg-type]  # fake store
    events, terminal = run_events()
    log.append(events)
    log.announce(await log.seal(terminal))
    backlog, queue = log.subscribe(None)
    assert len(decode(backlog)) == terminal.sequence_number + 1
    assert queue.get_nowait() is None


async def test_drain_sends_everything_waiting_in_one_write_and_stops_at_the_end() -> None:
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()
    for frame in (b"a", b"b", b"c", None):
        queue.put_nowait(frame)
    assert [chunk async for chunk in drain(queue, keepalive_interval=60)] == [b"abc"]


async def test_the_last_batch_goes_out_with_the_end_of_the_body_in_one_message() -> None:
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()
    queue.put_nowait(b"head")
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)
        if len(sent) == 2:  # the first batch is out: the run ends
            queue.put_nowait(b"terminal")
            queue.put_nowait(None)

    async def receive() -> Message:
        await asyncio.Event().wait()  # the client stays
        raise AssertionError

    gone = await _stream(drain(queue, keepalive_interval=60), [], 200, receive, send)
    assert not gone
    assert [m.get("body") for m in sent[1:]] == [b"head", b"terminal"]
    assert [m.get("more_body") for m in sent[1:]] == [True, False]
    assert isinstance(sent[-1]["body"], FinalBatch)


async def test_a_quiet_drain_sends_keepalives_until_frames_come_and_then_stops() -> None:
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()
    frames = drain(queue, keepalive_interval=0.01)
    # nothing queued: only the keepalive watchdog can answer these
    assert await anext(frames) == sse.KEEPALIVE
    assert await anext(frames) == sse.KEEPALIVE
    queue.put_nowait(b"frame")
    queue.put_nowait(None)
    rest = [chunk async for chunk in frames]
    assert rest[-1] == b"frame"
    assert set(rest[:-1]) <= {sse.KEEPALIVE}


async def test_a_drain_closed_early_leaves_no_keepalive_timer_behind() -> None:
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()
    frames = drain(queue, keepalive_interval=0.01)
    queue.put_nowait(b"frame")
    assert await anext(frames) == b"frame"
    await frames.aclose()
    await asyncio.sleep(0.05)
    assert queue.empty(), "the watchdog must stop with its drain"


async def test_a_drain_cancelled_as_a_frame_arrives_stops_instead_of_streaming_on() -> None:
    # The HTTP side cancels the task reading `drain` when the client goes away. If
    # the frame it waited for arrives in the same loop step, the cancel must still
    # win: Python 3.11's `asyncio.wait_for` returned the frame and dropped the
    # cancel (CPython gh-86296), so the stream went on to a vanished client.
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()
    read: list[bytes] = []
    waiting = asyncio.Event()

    async def reader() -> None:
        waiting.set()
        async for chunk in drain(queue, keepalive_interval=60):
            read.append(chunk)

    task = asyncio.create_task(reader())
    await waiting.wait()
    await asyncio.sleep(0)  # the reader is now parked on the empty queue
    assert not task.done()
    queue.put_nowait(b"frame")
    task.cancel()
    # had the cancel been dropped, the reader would read these and return normally
    queue.put_nowait(b"more")
    queue.put_nowait(None)
    await asyncio.wait({task})
    assert task.cancelled(), read


class StoreFedByWakeup:
    """An `EventWakeup` that stores the next batch of events when waited on, the way
    a NOTIFY would announce a batch another process stored."""

    def __init__(self, store: EventStore, batches: list[list[Any]]) -> None:
        self.store = store
        self.batches = batches
        self.waits = 0

    async def wait(self, response_id: str, after: int | None) -> None:
        self.waits += 1
        if self.batches:
            batch = self.batches.pop(0)
            await self.store.append_events(
                response_id, [(e.sequence_number, e.model_dump_json()) for e in batch]
            )


async def test_a_stored_replay_reads_new_events_each_time_the_wakeup_fires() -> None:
    store = EventStore()
    events, terminal = run_events()
    wakeup = StoreFedByWakeup(store, [events[:3], events[3:], [terminal]])
    frames = replay_stored(store, RESPONSE_ID, None, wakeup=wakeup, keepalive_interval=60)  # type: ignore[arg-type]  # fake store
    received = decode(await collect(frames))
    assert [e["sequence_number"] for e in received] == list(range(terminal.sequence_number + 1))
    assert wakeup.waits == 3


async def test_a_stored_replay_starts_after_its_cursor_and_stops_at_the_terminal_event() -> None:
    store = EventStore(status="completed")
    events, terminal = run_events()
    await store.append_events(
        RESPONSE_ID, [(e.sequence_number, e.model_dump_json()) for e in [*events, terminal]]
    )
    wakeup = StoreFedByWakeup(store, [])
    frames = replay_stored(store, RESPONSE_ID, 3, wakeup=wakeup, keepalive_interval=60)  # type: ignore[arg-type]  # fake store
    received = decode(await collect(frames))
    assert [e["sequence_number"] for e in received] == list(range(4, terminal.sequence_number + 1))
    assert wakeup.waits == 0


async def test_a_response_failed_without_its_terminal_event_ends_with_a_response_failed() -> None:
    # its replica died mid-run and the stale-response sweep marked it failed: the
    # log has no terminal event, and a follower must not hang for one
    events, terminal = run_events()
    failed = {
        **terminal.response.model_dump(mode="json"),
        "status": "failed",
        "error": {"code": "server_error", "message": "gone"},
    }
    store = EventStore(status="failed", response=failed)
    await store.append_events(
        RESPONSE_ID, [(e.sequence_number, e.model_dump_json()) for e in events]
    )
    frames = replay_stored(
        store,  # type: ignore[arg-type]  # fake store
        RESPONSE_ID,
        None,
        wakeup=StoreFedByWakeup(store, []),
        keepalive_interval=60,
        grace=0.0,
    )
    received = decode(await asyncio.wait_for(collect(frames), 5))
    assert [e["sequence_number"] for e in received] == list(range(len(events) + 1))
    assert received[-1]["type"] == "response.failed"
    assert received[-1]["response"] == failed


async def test_a_store_wakeup_waits_for_events_after_the_followers_cursor() -> None:
    calls: list[tuple[str, int | None, float]] = []

    class WaitingStore:
        async def wait_for_events(
            self, response_id: str, *, after: int | None, within: float
        ) -> list[tuple[int, str]]:
            calls.append((response_id, after, within))
            return []

    await StoreWakeup(WaitingStore(), within=0.5).wait(RESPONSE_ID, 7)  # type: ignore[arg-type]  # fake store
    assert calls == [(RESPONSE_ID, 7, 0.5)]
