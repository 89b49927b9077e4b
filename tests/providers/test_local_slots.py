"""LocalProvider's parallel slots, its queue and cancelling during prompt evaluation,
with a fake llama.cpp engine (no model, no timing luck: threads meet on events)."""

from __future__ import annotations

import asyncio
import sys
import threading
import types
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.providers.helpers import is_warm_up
from turnstream.engine.deltas import Delta, OutputTextDelta, QueuedDelta, StartedDelta
from turnstream.providers.base import GenerationRequest
from turnstream.providers.local import LocalProvider, xllamacpp_engine_factory

WAIT = 30.0
"""Seconds a test waits for a thread before it calls it a hang (never a speed claim)."""


def chunk(content: str | None = None, finish: str | None = None) -> dict[str, Any]:
    delta = {} if content is None else {"content": content}
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def progress(processed: int, total: int = 4096) -> dict[str, Any]:
    """What llama.cpp streams after each evaluated batch when asked to (`return_progress`)."""
    stats = {"total": total, "cache": 0, "processed": processed, "time_ms": processed}
    return {"choices": [], "object": "chat.completion.chunk", "prompt_progress": stats}


def request(text: str = "Hi") -> GenerationRequest:
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    return GenerationRequest("local", [item])


class GatedEngine:
    """Each request evaluates its prompt (progress chunks) until the test lets it answer.

    `inside` counts requests in `handle_chat_completions` at once; `release(n)` lets
    the n-th request (0-based) finish its prompt and answer.
    """

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.inside = 0
        self.most_inside = 0
        self.entered = threading.Semaphore(0)
        self.cancelled = threading.Event()
        self.returned = threading.Semaphore(0)
        self.cancel_seen_after: int | None = None
        self._lock = threading.Lock()
        self._go: list[threading.Event] = []

    def release(self, index: int) -> None:
        self._go[index].set()

    def handle_chat_completions(
        self, prompt: dict[str, Any], callback: Callable[[dict[str, Any]], bool] | None = None
    ) -> Any:
        if is_warm_up(prompt):  # the warm-up at load: not a request
            return {"choices": []}
        with self._lock:
            self.bodies.append(prompt)
            go = threading.Event()
            self._go.append(go)
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
        self.entered.release()
        try:
            batches = 0
            while not go.wait(0.005):  # a long prompt: one progress chunk per batch
                batches += 1
                if callback(progress(64 * batches)):
                    self.cancel_seen_after = batches
                    self.cancelled.set()
                    return None
            for item in (chunk("ok"), chunk(finish="stop")):
                if callback(item):
                    self.cancelled.set()
                    return None
            return None
        finally:
            with self._lock:
                self.inside -= 1
            self.returned.release()


def provider_for(engine: GatedEngine, slots: int) -> LocalProvider:
    return LocalProvider(
        {"local": "0.5b"},
        slots=slots,
        engine_factory=lambda path: engine,
        model_path=lambda size: Path("/nonexistent.gguf"),
    )


async def entered(engine: GatedEngine) -> None:
    assert await asyncio.to_thread(engine.entered.acquire, True, WAIT), "no request arrived"


class Consumer:
    """Reads one stream in a task, recording its deltas."""

    def __init__(self, stream: AsyncIterator[Delta]) -> None:
        self.deltas: list[Delta] = []
        self.got = asyncio.Event()
        self.task = asyncio.create_task(self._read(stream))

    async def _read(self, stream: AsyncIterator[Delta]) -> None:
        async for delta in stream:
            self.deltas.append(delta)
            self.got.set()

    async def next_delta(self) -> Delta:
        await asyncio.wait_for(self.got.wait(), WAIT)
        self.got.clear()
        return self.deltas[-1]


async def test_two_slots_let_two_requests_generate_at_the_same_time() -> None:
    engine = GatedEngine()
    provider = provider_for(engine, slots=2)
    first, second = Consumer(provider.stream(request("a"))), Consumer(provider.stream(request("b")))
    await entered(engine)
    await entered(engine)  # both are inside llama.cpp before either may answer
    assert engine.inside == 2
    engine.release(0)
    engine.release(1)
    await asyncio.wait_for(asyncio.gather(first.task, second.task), WAIT)
    for consumer in (first, second):
        assert not any(isinstance(d, QueuedDelta | StartedDelta) for d in consumer.deltas)
        assert OutputTextDelta("ok") in consumer.deltas
    await provider.aclose()


async def test_a_request_beyond_the_slots_is_queued_until_one_frees() -> None:
    engine = GatedEngine()
    provider = provider_for(engine, slots=1)
    first = Consumer(provider.stream(request("a")))
    await entered(engine)
    second = Consumer(provider.stream(request("b")))
    assert await second.next_delta() == QueuedDelta()
    assert len(engine.bodies) == 1  # the queued request never reached llama.cpp
    engine.release(0)
    await asyncio.wait_for(first.task, WAIT)
    assert await second.next_delta() == StartedDelta()
    await entered(engine)
    engine.release(1)
    await asyncio.wait_for(second.task, WAIT)
    assert second.deltas[:2] == [QueuedDelta(), StartedDelta()]
    assert OutputTextDelta("ok") in second.deltas
    assert engine.most_inside == 1
    await provider.aclose()


async def test_leaving_the_queue_gives_up_the_place_without_taking_a_slot() -> None:
    engine = GatedEngine()
    provider = provider_for(engine, slots=1)
    first = Consumer(provider.stream(request("a")))
    await entered(engine)
    quitter = Consumer(provider.stream(request("b")))
    assert await quitter.next_delta() == QueuedDelta()
    quitter.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await quitter.task
    engine.release(0)
    await asyncio.wait_for(first.task, WAIT)
    third = Consumer(provider.stream(request("c")))
    await entered(engine)  # the slot went to the third request: nobody holds it
    engine.release(1)
    await asyncio.wait_for(third.task, WAIT)
    assert len(engine.bodies) == 2
    await provider.aclose()


async def test_cancelling_during_prompt_evaluation_stops_it_and_frees_the_slot() -> None:
    engine = GatedEngine()  # never released: the prompt evaluates until cancelled
    provider = provider_for(engine, slots=1)
    consumer = Consumer(provider.stream(request("a long prompt")))
    await entered(engine)
    assert engine.bodies[0]["return_progress"] is True
    consumer.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer.task
    # the callback cancelled at a progress chunk, before any token was generated
    assert await asyncio.to_thread(engine.cancelled.wait, WAIT)
    assert engine.cancel_seen_after is not None
    assert await asyncio.to_thread(engine.returned.acquire, True, WAIT)
    after = Consumer(provider.stream(request("next")))
    await entered(engine)
    engine.release(1)
    await asyncio.wait_for(after.task, WAIT)
    assert OutputTextDelta("ok") in after.deltas
    await provider.aclose()


async def test_progress_chunks_never_reach_the_reply() -> None:
    engine = GatedEngine()
    provider = provider_for(engine, slots=1)
    consumer = Consumer(provider.stream(request()))
    await entered(engine)
    await asyncio.to_thread(engine.cancelled.wait, 0.05)  # let some progress chunks pass
    engine.release(0)
    await asyncio.wait_for(consumer.task, WAIT)
    assert [d for d in consumer.deltas if not isinstance(d, OutputTextDelta)] == [
        d for d in consumer.deltas if type(d).__name__ in ("FinishDelta", "ItemEndDelta")
    ]
    assert [d for d in consumer.deltas if isinstance(d, OutputTextDelta)] == [OutputTextDelta("ok")]
    await provider.aclose()


def test_the_engine_gets_a_slot_sized_context_per_slot(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[Any] = []

    class Params:
        def __init__(self) -> None:
            self.model = types.SimpleNamespace(path="")
            self.cpuparams = types.SimpleNamespace(n_threads=0)
            self.cpuparams_batch = types.SimpleNamespace(n_threads=0)

    def server(params: Any) -> Any:
        made.append(params)
        return types.SimpleNamespace(handle_chat_completions=None)

    fake = types.SimpleNamespace(CommonParams=Params, Server=server)
    monkeypatch.setitem(sys.modules, "xllamacpp", fake)
    create = xllamacpp_engine_factory(ctx_size=4096, slots=3, batch_size=32, port=1)
    create(Path("/m.gguf"))
    (params,) = made
    assert (params.n_parallel, params.n_ctx) == (3, 3 * 4096)
    assert (params.n_batch, params.n_ubatch) == (32, 32)
    with pytest.raises(ValueError, match="slots"):
        xllamacpp_engine_factory(slots=0)


def test_the_engine_computes_with_the_threads_set_or_the_usable_cpus(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from turnstream.providers import local

    made: list[Any] = []

    def params() -> Any:
        return types.SimpleNamespace(
            model=types.SimpleNamespace(path=""),
            cpuparams=types.SimpleNamespace(n_threads=0),
            cpuparams_batch=types.SimpleNamespace(n_threads=0),
        )

    def server(p: Any) -> Any:
        made.append(p)
        return types.SimpleNamespace(handle_chat_completions=None)

    monkeypatch.setitem(
        sys.modules, "xllamacpp", types.SimpleNamespace(CommonParams=params, Server=server)
    )
    xllamacpp_engine_factory(threads=1, port=1)(Path("/m.gguf"))
    monkeypatch.setattr(local.os, "sched_getaffinity", lambda pid: set(range(64)))
    xllamacpp_engine_factory(port=1)(Path("/m.gguf"))
    monkeypatch.setattr(local.os, "sched_getaffinity", lambda pid: {3})
    xllamacpp_engine_factory(port=1)(Path("/m.gguf"))
    threads = [(p.cpuparams.n_threads, p.cpuparams_batch.n_threads) for p in made]
    assert threads == [(1, 1), (local.MAX_DEFAULT_THREADS,) * 2, (1, 1)]
    with pytest.raises(ValueError, match="threads"):
        xllamacpp_engine_factory(threads=0)


async def test_each_model_reports_its_own_load_progress() -> None:
    engine = GatedEngine()
    building = threading.Event()
    may_finish = threading.Event()

    def factory(path: Path) -> GatedEngine:
        building.set()
        assert may_finish.wait(WAIT)
        return engine

    provider = LocalProvider(
        {"local": "1.5b", "local-small": "0.5b"},
        engine_factory=factory,
        model_path=lambda size: Path(f"/{size}.gguf"),
    )
    provider.start()
    assert await asyncio.to_thread(building.wait, WAIT)
    # one model is past its file and inside llama.cpp; the other waits its turn (loads
    # never overlap; which goes first is up to the thread pool)
    progress = sorted(provider.model_load_progress(m) for m in ("local", "local-small"))
    assert progress == [0.0, pytest.approx(0.8)]
    assert provider.load_progress == 0.0
    may_finish.set()
    await asyncio.wait_for(provider.ready(), WAIT)
    assert (
        provider.model_load_progress("local") == provider.model_load_progress("local-small") == 1.0
    )
    await provider.aclose()


def test_a_slot_comes_back_even_when_its_event_loop_has_gone() -> None:
    engine = GatedEngine()  # never released: request 0 evaluates until cancelled
    provider = provider_for(engine, slots=1)

    async def start_and_leave() -> None:
        Consumer(provider.stream(request("a")))
        await entered(engine)
        # returning ends the loop with the request still inside llama.cpp

    asyncio.run(start_and_leave())
    # the loop closed the stream: llama.cpp cancels, and the worker gives the slot back
    # although nothing can run on that loop any more
    assert engine.returned.acquire(timeout=WAIT)

    async def next_request() -> list[Delta]:
        consumer = Consumer(provider.stream(request("b")))
        await entered(engine)
        engine.release(1)
        await asyncio.wait_for(consumer.task, WAIT)
        await provider.aclose()
        return consumer.deltas

    deltas = asyncio.run(next_request())
    assert QueuedDelta() not in deltas
    assert OutputTextDelta("ok") in deltas
