"""One response, from an admitted request to its terminal event.

A `ResponseRun` drives the provider in its own task (the *producer*), so that the
HTTP side can go away without cutting the run's bookkeeping in half. The order of
the last steps is the heart of the project (DESIGN.md invariant 2):

1. the provider finishes (or fails, or the client disconnects and the run is
   cancelled) and the state machine closes every item;
2. the response is written, the turn's items are appended to the conversation and
   the conversation lease is released (`ConversationLease.commit_turn`), in one
   shielded step;
3. only then is the terminal event handed to the HTTP side.

A client that acts on `response.completed` therefore never finds the conversation
locked. With `lock_release="after_body"` step 2 keeps the lease; the lease lets go
once the HTTP side reports the body closed (`body_closed()`) and a delay has passed.

A *background* run (`background: true`) is not tied to any HTTP connection: a
disconnect does not cancel it (only `cancel()` does, for the cancel endpoint). Its
events go through an `EventLog` (`turnstream.server.replay`), which the creating
request's stream follows like any resumed stream does, and which is sealed (stored,
terminal event included) in step 2.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any

from turnstream import sse
from turnstream.engine.deltas import Delta
from turnstream.engine.state import ResponseStateMachine
from turnstream.protocol import Response, ResponseError, ResponseFailedEvent
from turnstream.providers.base import ProviderError
from turnstream.storage.base import ConversationLockedError, Store

from .admission import Admission
from .appstate import ServerState
from .replay import EventLog, FrameQueue, drain
from .settings import Settings

__all__ = ["ResponseRun", "launch"]

log = logging.getLogger("turnstream.server")

JSON = dict[str, Any]


class ResponseRun:
    """Runs one response; the HTTP layer reads `chunks()` or awaits `result()`."""

    def __init__(
        self,
        admission: Admission,
        *,
        store: Store,
        settings: Settings,
        on_settled: Callable[[ResponseRun], None] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.provider = admission.provider
        self.request = admission.generation
        self.response_id = admission.response_id
        self.input_items = list(admission.input_items)
        self.store_response = admission.response.store
        self.background = admission.response.background
        self.lease = admission.lease
        self.machine = ResponseStateMachine(admission.response)
        self.events: EventLog | None = (
            EventLog(store, self.response_id) if self.background else None
        )
        # the creating request's body; a background run's follows its event log
        self._body: FrameQueue = (
            self.events.subscribe(None)[1] if self.events is not None else asyncio.Queue()
        )
        self._first = asyncio.Event()
        self._early_error: ProviderError | None = None
        self._task: asyncio.Task[None] | None = None
        self._settled = asyncio.Event()
        self._on_settled = on_settled
        self.started_at = time.monotonic()
        self.persist_seconds = 0.0
        self._override: Response | None = None
        self._live: Response | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        self._emit(self.machine.start())
        if self.events is not None:
            self.events.start()
        self._task = asyncio.create_task(self._produce(), name=f"run {self.response_id}")

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

    def cancel(self) -> None:
        """Stop generating; the run records itself cancelled.

        The HTTP side calls this when the client went away, but never for a
        background run: only the cancel endpoint cancels those.
        """
        if self._task is not None and not self._task.done():
            self._task.cancel()

    def body_closed(self) -> None:
        """The creating request's HTTP body has closed (or will never be sent).

        Only the lease cares: in `after_body` mode this starts its release.
        """
        if self.lease is not None:
            self.lease.body_closed()

    async def result(self) -> JSON:
        """The final Response (waits for the run to settle)."""
        await self._settled.wait()
        return self.final_response

    @property
    def response(self) -> Response:
        """The Response as it stands (final once settled)."""
        return self._override if self._override is not None else self.machine.response

    @property
    def final_response(self) -> JSON:
        return self.response.model_dump(mode="json")

    @property
    def visible_response(self) -> JSON:
        """What `GET /v1/responses/{id}` shows of this run: the Response as it
        stands, except that a closed one stays as it was before closing until it has
        been persisted (a poller must not act on a turn that is not saved yet)."""
        if self._settled.is_set() or self._live is None:
            return self.final_response
        return self._live.model_dump(mode="json")

    def chunks(self) -> AsyncIterator[bytes]:
        """Encoded SSE bytes, batched: everything queued is sent in one write."""
        return drain(self._body, self.settings.keepalive_interval)

    # -- the producer ------------------------------------------------------------------

    def _emit(self, events: Sequence[Any]) -> None:
        if self.events is not None:
            self.events.append(events)
            return
        for event in events:
            self._body.put_nowait(sse.encode(event))

    async def _produce(self) -> None:
        machine = self.machine
        closing: list[Any]
        stream = self.provider.stream(self.request)
        try:
            try:
                async for delta in stream:
                    self._on_delta(delta)
                closing = self._close(machine.finish)
            finally:
                await _aclose(stream)
        except asyncio.CancelledError:
            closing = self._close(machine.cancel)
            await asyncio.shield(self._finish(closing))
            raise
        except ProviderError as exc:
            if not self._first.is_set():
                self._early_error = exc
            closing = self._close(functools.partial(machine.fail, exc.code, exc.message))
        except Exception:
            log.exception("provider failed on %s", self.response_id)
            closing = self._close(
                functools.partial(
                    machine.fail,
                    "server_error",
                    "The model failed while generating this response.",
                )
            )
        await asyncio.shield(self._finish(closing))

    def _close(self, close: Callable[[], Iterable[Any]]) -> list[Any]:
        """Close the state machine, keeping what the Response looked like before."""
        self._live = self.machine.response
        return list(close())

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
            if self.events is not None:
                # the terminal event is stored before anyone hears of it
                frame = await self.events.seal(terminal)
                self._settle()
                self.events.announce(frame)
            else:
                self._settle()
                self._body.put_nowait(sse.encode(terminal))
                self._body.put_nowait(None)
            if self._on_settled is not None:
                self._on_settled(self)

    def _settle(self) -> None:
        self._settled.set()
        if self.lease is not None:
            self.lease.settled()

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
        if self.lease is not None:
            with contextlib.suppress(Exception):
                await self.lease.release()
        return ResponseFailedEvent(sequence_number=terminal.sequence_number, response=failed)

    async def _persist(self) -> None:
        response = self.final_response
        if self.lease is None:
            if self.store_response:
                await self.store.update_response(self.response_id, response)
            return
        items = None
        if response["status"] in ("completed", "incomplete"):
            items = [*self.input_items, *response["output"]]
        try:
            await self.lease.commit_turn(
                response=response, items=items, store_response=self.store_response
            )
        except ConversationLockedError:
            # the lease expired and someone else took the conversation: our items
            # must not be interleaved with theirs
            log.error(
                "lost the lease on %s before %s finished",
                self.lease.conversation_id,
                self.response_id,
            )
            if self.store_response:
                await self.store.update_response(self.response_id, response)


def launch(state: ServerState, admission: Admission) -> ResponseRun:
    """Start the run of an admitted request and register it with the app."""
    run = ResponseRun(
        admission, store=admission.store, settings=state.settings, on_settled=state.on_run_settled
    )
    state.runs[run.response_id] = run
    run.start()
    return run


async def _aclose(stream: AsyncIterator[Delta]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()
