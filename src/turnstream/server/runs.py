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
terminal event included) in step 2. A cancel may come from any replica: the run
watches for it (`Store.wait_for_cancel`, woken by NOTIFY on PostgreSQL) while it
goes, and cancels itself where it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any

from turnstream import sse
from turnstream._tracing import Tracing, fail, set_attributes
from turnstream.engine.deltas import Delta, StartedDelta
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

CANCEL_WATCH_PERIOD = 30.0
"""Seconds one `wait_for_cancel` call waits before the watcher asks again."""

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
        tracing: Tracing | None = None,
    ) -> None:
        self.store = store
        self.tracing = tracing if tracing is not None else Tracing(name="turnstream.server")
        self.settings = settings
        self.provider = admission.provider
        self.request = admission.generation
        self.context = admission.context
        self.response_id = admission.response_id
        self.input_items = list(admission.input_items)
        self.store_response = admission.response.store
        self.background = admission.response.background
        self.lease = admission.lease
        self._inserting = admission.inserting
        self.machine = ResponseStateMachine(
            admission.response, tools=admission.toolset, seal_reasoning=admission.seal_reasoning
        )
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
        self._cancel_watch: asyncio.Task[None] | None = None
        self._settled = asyncio.Event()
        self._on_settled = on_settled
        self.started_at = time.monotonic()
        self.first_event_at: float | None = None
        """When the provider's first delta arrived (`time.monotonic()`)."""
        self.upstream_error: str | None = None
        """The kind of the provider's failure (its error code), if it failed."""
        self.persist_seconds = 0.0
        self._override: Response | None = None
        self._live: Response | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        # in_progress waits for a provider that may first queue the request, so that
        # `response.queued` can come before it
        self._emit(self.machine.start(hold=self.provider.may_queue(self.request.model)))
        if self.events is not None:
            self.events.start()
        self._task = asyncio.create_task(self._produce(), name=f"run {self.response_id}")
        if self.background:
            self._cancel_watch = asyncio.create_task(
                self._watch_for_cancel(), name=f"cancel watch {self.response_id}"
            )

    async def _watch_for_cancel(self) -> None:
        """Cancel this run when any replica asks (`Store.request_cancel`)."""
        while True:
            try:
                if await self.store.wait_for_cancel(self.response_id, within=CANCEL_WATCH_PERIOD):
                    self.cancel()
                    return
            except Exception:
                # the database may be away for a while; the run goes on regardless
                log.warning("could not watch %s for a cancel", self.response_id, exc_info=True)
                await asyncio.sleep(1.0)

    async def persisted(self) -> None:
        """Wait until the stored response's row exists, when it was inserted alongside
        the run (`admit(overlap_insert=True)`); raises the insert's error.

        Nothing of the run may be announced before this returns: a client that hears
        of a response must be able to retrieve it. On an error, `cancel()` the run
        (it then writes nothing and releases its lease).
        """
        if self._inserting is not None:
            # shielded: a client leaving now cancels the run, not the insert the run
            # still waits for before it settles
            await asyncio.shield(self._inserting)

    async def _insert_committed(self) -> bool:
        """Whether the response's row exists (waits for an overlapped insert)."""
        inserting = self._inserting
        if inserting is None:
            return True
        await asyncio.wait({inserting})
        return not inserting.cancelled() and inserting.exception() is None

    async def wait_for_first_delta(self) -> ProviderError | None:
        """Wait until the provider produced something or reported its upstream
        started (`GenerationRequest.on_started`), or failed, or
        `settings.first_delta_wait` passed.

        Returns the provider's error if it failed before producing anything, so the
        caller can answer with a plain HTTP error instead of a stream.
        """
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.settings.first_delta_wait):
                await self._first.wait()
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
        try:
            closing = await self._call_provider()
        except asyncio.CancelledError:
            closing = self._close(machine.cancel)
            await asyncio.shield(self._finish(closing))
            raise
        except ProviderError as exc:
            self.upstream_error = exc.code or "provider_error"
            if not self._first.is_set():
                self._early_error = exc
            closing = self._close(functools.partial(machine.fail, exc.code, exc.message))
        except Exception:
            self.upstream_error = "exception"
            log.exception("provider failed on %s", self.response_id)
            closing = self._close(
                functools.partial(
                    machine.fail,
                    "server_error",
                    "The model failed while generating this response.",
                )
            )
        await asyncio.shield(self._finish(closing))

    async def _call_provider(self) -> list[Any]:
        """Stream the provider's deltas through the state machine; the closing events.

        The provider call is one span (GenAI conventions: `chat {model}`); the store
        writes that follow are its siblings, not its children.
        """
        model = self.request.model
        attributes = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": type(self.provider).__name__,
            "gen_ai.request.model": model,
            "gen_ai.request.max_tokens": self.request.max_output_tokens,
            "gen_ai.request.temperature": self.request.temperature,
            "gen_ai.request.top_p": self.request.top_p,
            "gen_ai.response.id": self.response_id,
            "gen_ai.conversation.id": self.lease.conversation_id if self.lease else None,
        }
        with self.tracing.span(f"chat {model}", kind="client", attributes=attributes) as span:
            stream = self.provider.stream(
                dataclasses.replace(self.request, on_started=self._on_started)
            )
            try:
                async for delta in stream:
                    self._on_delta(delta)
            except ProviderError as exc:
                fail(span, exc.code or "provider_error", exc.message)
                raise
            finally:
                await _aclose(stream)
            closing = self._close(self.machine.finish)
            if span is not None:
                set_attributes(span, _response_attributes(self.machine.response))
        return closing

    def _close(self, close: Callable[[], Iterable[Any]]) -> list[Any]:
        """Close the state machine, keeping what the Response looked like before."""
        self._live = self.machine.response
        return list(close())

    def _on_started(self) -> None:
        """The upstream accepted the request: the stream's head need not wait for the
        first delta (a failure from now on is reported in the stream)."""
        self._first.set()

    def _on_delta(self, delta: Delta) -> None:
        events = self.machine.feed(delta)
        if events:
            self._emit(events)
        if isinstance(delta, StartedDelta):
            # not yet something the client must see: a failure before the first real
            # delta should still be a plain HTTP error
            return
        if self.first_event_at is None:
            self.first_event_at = time.monotonic()
            self._first.set()

    async def _finish(self, closing: list[Any]) -> None:
        """Persist, release, then announce (invariant 2)."""
        self._first.set()
        if self._cancel_watch is not None:
            self._cancel_watch.cancel()
        self._emit(closing[:-1])
        terminal = closing[-1]
        began = time.perf_counter()
        try:
            if not await self._insert_committed():
                # nothing to update and nothing was announced: the HTTP side answers
                # the insert's error; only the lease is left to let go
                if self.lease is not None:
                    with contextlib.suppress(Exception):
                        await self.lease.release()
            else:
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
            try:
                await self.store.update_response(self.response_id, self.final_response)
            except Exception:
                # the database is away: store it once it is back, or the response
                # stays `in_progress` (the sweep spares a live replica's responses)
                task = asyncio.create_task(
                    _store_when_back(self.store, self.response_id, self.final_response)
                )
                _PENDING_WRITES.add(task)
                task.add_done_callback(_PENDING_WRITES.discard)
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
            # the lease expired (its heartbeat stalled longer than the lease time),
            # so the turn was not added: announcing it done would have the client
            # build on items the conversation does not have. `_finish` fails it.
            log.error(
                "lost the lease on %s before %s finished",
                self.lease.conversation_id,
                self.response_id,
            )
            raise


def launch(state: ServerState, admission: Admission) -> ResponseRun:
    """Start the run of an admitted request and register it with the app."""
    run = ResponseRun(
        admission,
        store=admission.store,
        settings=state.settings,
        on_settled=state.on_run_settled,
        tracing=state.tracing,
    )
    state.runs[run.response_id] = run
    run.start()
    return run


def _response_attributes(response: Response) -> dict[str, Any]:
    usage = response.usage
    return {
        "gen_ai.response.model": response.model,
        "gen_ai.response.finish_reasons": [response.status],
        "gen_ai.usage.input_tokens": usage.input_tokens if usage else None,
        "gen_ai.usage.output_tokens": usage.output_tokens if usage else None,
    }


_PENDING_WRITES: set[asyncio.Task[None]] = set()
"""Strong references to `_store_when_back` tasks (the loop keeps only weak ones)."""
STORE_RETRY_FOR = 300.0
"""How long a run's final response is retried while the database is away."""


async def _store_when_back(store: Store, response_id: str, response: JSON) -> None:
    deadline = time.monotonic() + STORE_RETRY_FOR
    while time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        try:
            await store.update_response(response_id, response)
        except Exception:
            continue
        log.info("stored %s once the database was back", response_id)
        return
    log.error("gave up storing the final state of %s", response_id)


async def _aclose(stream: AsyncIterator[Delta]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()
