"""The server run in-process: raw ASGI calls into `create_app`, no socket.

The test owns `receive` and `send`, so it sees each body write the moment the app
makes it and can disconnect at an exact point. A store wrapper records the calls
the run makes, in one log with the body writes, so ordering is asserted directly:
persist, release, then announce (DESIGN.md invariant 2); a disconnect cancels only
a non-background run; the lease is released on every path, after the body in
`after_body` mode. Nothing here waits on the clock: the scripted model holds a
stream open on an `asyncio.Event`, and every wait is for an event the code under
test sets (the timeouts only turn a hang into a failure).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from turnstream.engine.deltas import OutputTextDelta
from turnstream.providers.base import GenerationRequest, ProviderError
from turnstream.providers.scripted import ScriptedProvider
from turnstream.server.app import create_app
from turnstream.server.appstate import ServerState
from turnstream.server.settings import Settings
from turnstream.storage import create_store
from turnstream.storage.base import Store

from .inprocess import Reply, asgi_request

WAIT = 30.0
"""Upper bound on any wait below; reaching it means the behaviour is missing."""


class RecordingStore:
    """A real store whose calls go into a shared log, with an event per call name."""

    def __init__(self, inner: Store, log: list[tuple[str, Any]]) -> None:
        self.inner = inner
        self.log = log
        self.events: dict[str, asyncio.Event] = {}

    def called(self, name: str) -> asyncio.Event:
        return self.events.setdefault(name, asyncio.Event())

    def scoped(self, project: str) -> RecordingStore:
        # the requests' project views record into the same log
        view = RecordingStore(self.inner.scoped(project), self.log)
        view.events = self.events
        return view

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.inner, name)
        if not callable(target):
            return target

        async def call(*args: Any, **kwargs: Any) -> Any:
            result = await target(*args, **kwargs)
            self.log.append((name, kwargs.get("release")))
            self.called(name).set()
            return result

        return call


@dataclass
class Served:
    app: Any
    store: RecordingStore
    real: Store
    scripted: ScriptedProvider
    log: list[tuple[str, Any]] = field(default_factory=list)

    @property
    def state(self) -> ServerState:
        state: ServerState = self.app.state.turnstream
        return state


@contextlib.asynccontextmanager
async def serving(tmp_path: Path, **settings: Any) -> AsyncIterator[Served]:
    real = create_store(tmp_path / "asgi.db")
    log: list[tuple[str, Any]] = []
    store = RecordingStore(real, log)
    scripted = ScriptedProvider()
    app = create_app(
        Settings(db_path=tmp_path / "asgi.db", enable_local_model=False, **settings),
        store=store,  # type: ignore[arg-type]  # a recording proxy of a real Store
        providers=[scripted],
    )
    async with app.router.lifespan_context(app):
        yield Served(app=app, store=store, real=real, scripted=scripted, log=log)


async def call(
    served: Served,
    method: str,
    path: str,
    body: Any = None,
    *,
    on_body: Callable[[bytes], Awaitable[None]] | None = None,
    disconnect: asyncio.Event | None = None,
) -> Reply:
    """One HTTP request through the app's ASGI interface, its announcement and the
    end of its body written to the served log beside the store's calls.

    `on_body` sees each body write as it is made; setting `disconnect` makes the
    client go away.
    """

    async def watch(message: dict[str, Any]) -> None:
        if message["type"] != "http.response.body":
            return
        chunk = message.get("body", b"")
        if chunk:
            if b"response.completed" in chunk:
                served.log.append(("announce", None))
            if on_body is not None:
                await on_body(chunk)
        if not message.get("more_body", False):
            served.log.append(("body_end", None))

    return await asgi_request(
        served.app, method, path, body, on_message=watch, disconnect=disconnect
    )


async def conversation(served: Served) -> str:
    reply = await call(served, "POST", "/v1/conversations", {})
    assert reply.status == 200
    conversation_id: str = reply.json()["id"]
    return conversation_id


def held_open(hold: asyncio.Event) -> Callable[[GenerationRequest], Awaitable[None]]:
    """A script step that keeps the stream open until `hold` is set."""

    async def step(request: GenerationRequest) -> None:
        await hold.wait()

    return step


def names(log: list[tuple[str, Any]]) -> list[str]:
    # the stale-response sweep runs on its own schedule; it is not part of a turn
    return [name for name, _ in log if name != "fail_stale_responses"]


async def test_a_streamed_turn_is_persisted_and_released_before_the_terminal_event(
    tmp_path: Path,
) -> None:
    async with serving(tmp_path) as served:
        conv = await conversation(served)
        locked_at_announce: list[float | None] = []

        async def on_body(chunk: bytes) -> None:
            if b"response.completed" in chunk:
                locked_at_announce.append(await served.real.lock_expires_in(conv))

        served.log.clear()
        reply = await call(
            served,
            "POST",
            "/v1/responses",
            {"model": "scripted", "input": "hi", "conversation": conv, "stream": True},
            on_body=on_body,
        )
        assert reply.status == 200
        assert reply.events()[-1]["type"] == "response.completed"
        order = names(served.log)
        assert order.index("finish_turn") < order.index("announce") < order.index("body_end")
        assert ("finish_turn", True) in served.log, "the commit releases the lease"
        assert locked_at_announce == [None], "the conversation is free when completed is sent"
        assert "release_lock" not in order, "released once, in the commit"


async def test_a_non_streamed_turn_is_persisted_and_released_before_the_body(
    tmp_path: Path,
) -> None:
    async with serving(tmp_path) as served:
        conv = await conversation(served)
        served.log.clear()
        reply = await call(
            served,
            "POST",
            "/v1/responses",
            {"model": "scripted", "input": "hi", "conversation": conv},
        )
        assert reply.status == 200
        assert reply.json()["status"] == "completed"
        order = names(served.log)
        assert order.index("finish_turn") < order.index("body_end")
        assert await served.real.lock_expires_in(conv) is None


async def test_a_disconnect_cancels_a_streamed_run_and_frees_the_conversation(
    tmp_path: Path,
) -> None:
    async with serving(tmp_path) as served:
        conv = await conversation(served)
        hold, gone = asyncio.Event(), asyncio.Event()
        served.scripted.push([OutputTextDelta(text="partial "), held_open(hold)])

        async def on_body(chunk: bytes) -> None:
            if b"output_text.delta" in chunk:
                gone.set()

        call_task = asyncio.create_task(
            call(
                served,
                "POST",
                "/v1/responses",
                {"model": "scripted", "input": "hi", "conversation": conv, "stream": True},
                on_body=on_body,
                disconnect=gone,
            )
        )
        await asyncio.wait_for(gone.wait(), WAIT)
        run = next(iter(served.state.runs.values()))
        final = await asyncio.wait_for(run.result(), WAIT)
        await asyncio.wait_for(call_task, WAIT)
        assert final["status"] == "cancelled"
        record = await served.real.get_response(run.response_id)
        assert record is not None
        assert record.status == "cancelled"
        assert await served.real.lock_expires_in(conv) is None
        assert await served.real.all_items(conv) == [], "a cancelled turn adds no items"
        hold.set()


async def test_a_disconnect_leaves_a_background_run_running_to_completion(
    tmp_path: Path,
) -> None:
    async with serving(tmp_path) as served:
        hold, gone = asyncio.Event(), asyncio.Event()
        served.scripted.push(
            [OutputTextDelta(text="partial "), held_open(hold), OutputTextDelta(text="end")]
        )

        async def on_body(chunk: bytes) -> None:
            if b"output_text.delta" in chunk:
                gone.set()

        await asyncio.wait_for(
            call(
                served,
                "POST",
                "/v1/responses",
                {"model": "scripted", "input": "hi", "background": True, "stream": True},
                on_body=on_body,
                disconnect=gone,
            ),
            WAIT,
        )
        run = next(iter(served.state.runs.values()))
        assert run.response.status == "in_progress", "the disconnect did not cancel it"
        hold.set()
        final = await asyncio.wait_for(run.result(), WAIT)
        assert final["status"] == "completed"
        assert final["output"][0]["content"][0]["text"] == "partial end"


async def test_after_body_mode_releases_only_after_the_body_has_closed(tmp_path: Path) -> None:
    async with serving(tmp_path, lock_release="after_body", lock_release_delay=0.0) as served:
        conv = await conversation(served)
        locked_at_announce: list[float | None] = []

        async def on_body(chunk: bytes) -> None:
            if b"response.completed" in chunk:
                locked_at_announce.append(await served.real.lock_expires_in(conv))

        served.log.clear()
        reply = await call(
            served,
            "POST",
            "/v1/responses",
            {"model": "scripted", "input": "hi", "conversation": conv, "stream": True},
            on_body=on_body,
        )
        assert reply.events()[-1]["type"] == "response.completed"
        await asyncio.wait_for(served.store.called("release_lock").wait(), WAIT)
        order = names(served.log)
        assert ("finish_turn", False) in served.log, "the commit keeps the lease"
        assert order.index("announce") < order.index("body_end") < order.index("release_lock")
        assert locked_at_announce[0] is not None, "still locked when completed is sent"
        assert order.count("release_lock") == 1
        assert await served.real.lock_expires_in(conv) is None


@pytest.mark.parametrize("stream", [False, True])
async def test_after_body_mode_releases_when_the_model_fails_before_any_output(
    tmp_path: Path, stream: bool
) -> None:
    async with serving(tmp_path, lock_release="after_body", lock_release_delay=0.0) as served:
        conv = await conversation(served)
        served.scripted.push(ProviderError("slow down", code="rate_limit_exceeded", status=429))
        reply = await call(
            served,
            "POST",
            "/v1/responses",
            {"model": "scripted", "input": "hi", "conversation": conv, "stream": stream},
        )
        assert reply.status == 429
        await asyncio.wait_for(served.store.called("release_lock").wait(), WAIT)
        assert await served.real.lock_expires_in(conv) is None


async def test_a_request_refused_after_the_lease_was_taken_releases_it(tmp_path: Path) -> None:
    async with serving(tmp_path) as served:
        conv = await conversation(served)
        orphan = {"type": "function_call_output", "call_id": "call_nowhere", "output": "4"}
        served.log.clear()
        reply = await call(
            served,
            "POST",
            "/v1/responses",
            {"model": "scripted", "input": [orphan], "conversation": conv},
        )
        assert reply.status == 400
        order = names(served.log)
        assert order.index("acquire_lock") < order.index("release_lock")
        assert await served.real.lock_expires_in(conv) is None
        assert served.state.runs == {}
