"""`/v1/responses`: create (streaming or not, background or not), retrieve (also as a
resumed stream), cancel, delete, input items.

Every check happens before the first byte of a stream: once `200 text/event-stream`
has gone out, errors can only travel inside the stream.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from turnstream.protocol import TERMINAL_STATUSES, ResponseCreateParams, parse_create_params
from turnstream.protocol import errors as E
from turnstream.providers.base import ProviderError
from turnstream.storage.base import ResponseRecord

from .access import attach_run
from .admission import admit
from .appstate import ServerState, get_state
from .auth import principal_of, project_store
from .errors import from_provider_error
from .faults import inject_faults
from .hosted_tools import dropped_tools_headers, offer_tools
from .idempotency import IDEMPOTENCY_HEADER, IdempotencyClaim, claim_or_repeat
from .limits import check_create_body, parse_json
from .lists import list_body
from .replay import follow, replay_stored
from .runs import ResponseRun, launch
from .schemas import request_body
from .stream_slots import StreamSlot
from .streaming import BodyClosedResponse, EventStreamResponse, ReplayStreamResponse

__all__ = ["ADDED_TIME_HEADER", "router"]

router = APIRouter(prefix="/v1", tags=["responses"])

JSON = dict[str, Any]

ADDED_TIME_HEADER = "x-turnstream-added-ms"
"""The server's own share of a create request's latency, in milliseconds."""


async def _read_json(request: Request) -> JSON:
    body = parse_json(await request.body())
    if not isinstance(body, dict):
        raise E.malformed_json()
    return body


@router.post(
    "/responses",
    summary="Create a model response",
    openapi_extra=request_body(ResponseCreateParams),
)
async def create_response(request: Request) -> Response:
    started = time.perf_counter()
    state = get_state(request)
    body = await _read_json(request)
    check_create_body(body, state.settings.limits)
    params = parse_create_params(body)
    toolset = offer_tools(params, state.settings)
    inject_faults(state)
    principal = principal_of(request)
    key = request.headers.get(IDEMPOTENCY_HEADER)
    claim: IdempotencyClaim | None = None
    if key and params.store:
        outcome = await claim_or_repeat(state, key, body, project=principal.project)
        if not isinstance(outcome, IdempotencyClaim):
            return outcome
        claim = outcome
    slot = (
        await StreamSlot.take(state.store, principal, state.settings.limits)
        if params.stream
        else None
    )
    run: ResponseRun | None = None
    try:
        admission = await admit(
            state,
            params,
            toolset,
            project=principal.project,
            response_id=claim.response_id if claim else None,
            overlap_insert=True,
        )
        # the model is asked while the stored response's insert commits; nothing is
        # announced before the row exists
        run = launch(state, admission)
        await run.persisted()
    except BaseException as exc:
        if run is not None:
            run.cancel()
            if not isinstance(exc, asyncio.CancelledError):
                # the lease is let go before the error leaves, as on any refusal
                await run.result()
        if slot is not None:
            slot.release()
        if claim is not None:
            await claim.release(state.store)
        raise
    attach_run(request, run)
    on_closed = run.body_closed if slot is None else _both(run.body_closed, slot.release)
    # the server's own share of the latency: everything the answer waited for apart
    # from the model (parsing, context assembly, the lock, and the insert, which now
    # runs while the model starts) and, without streaming, the bookkeeping after it
    # answered; the model's own time is not included
    admitted = time.perf_counter() - started
    try:
        answer = await _answer(run, params, admitted, request, dropped_tools_headers(toolset))
    except BaseException:
        # no body of this run will be sent (an error body is not the run's)
        on_closed()
        raise
    return BodyClosedResponse(answer, on_closed=on_closed)


def _both(first: Callable[[], None], second: Callable[[], None]) -> Callable[[], None]:
    def both() -> None:
        try:
            first()
        finally:
            second()

    return both


async def _answer(
    run: ResponseRun,
    params: ResponseCreateParams,
    admitted: float,
    request: Request,
    headers: dict[str, str],
) -> Response:
    """The response type the request asked for: the background's initial Response,
    a stream, or the final Response."""
    headers = {**headers, ADDED_TIME_HEADER: _ms(admitted)}
    if params.background and not params.stream:
        # the run goes on without us; the client polls GET /v1/responses/{id}
        return JSONResponse(run.final_response, headers=headers)
    if params.stream:
        error = await _first_delta_while_connected(run, request)
        if error is not None:
            raise from_provider_error(error)
        return EventStreamResponse(run, headers=headers)
    try:
        final = await run.result()
    except asyncio.CancelledError:
        run.cancel()
        raise
    if run.early_error is not None:
        raise from_provider_error(run.early_error)
    headers[ADDED_TIME_HEADER] = _ms(admitted + run.persist_seconds)
    return JSONResponse(final, headers=headers)


async def _first_delta_while_connected(run: ResponseRun, request: Request) -> ProviderError | None:
    """`run.wait_for_first_delta()`, but a client that leaves meanwhile cancels a
    non-background run now: a retry of it (same `Idempotency-Key`) waits for this
    run, and must not wait for a model nobody is listening to."""
    if run.background:
        return await run.wait_for_first_delta()

    async def gone() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    first = asyncio.create_task(run.wait_for_first_delta())
    watcher = asyncio.create_task(gone())
    try:
        await asyncio.wait({first, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if not first.done():
        run.cancel()
        first.cancel()
        raise asyncio.CancelledError("the client went away before the first delta")
    return first.result()


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


@router.get("/responses/{response_id}", summary="Retrieve a model response")
async def retrieve_response(
    request: Request,
    response_id: str,
    include: Annotated[list[str] | None, Query(alias="include[]")] = None,
    stream: bool = False,
    starting_after: int | None = None,
) -> Response:
    state = get_state(request)
    store = project_store(request, state)
    record = await store.get_response(response_id)
    if record is None:
        raise E.response_not_found(response_id)
    run = state.runs.get(response_id)
    if stream:
        # only background responses keep their events for replay
        if not record.background:
            raise E.response_not_found(response_id)
        _check_not_expired(record, state.settings.event_ttl)
        keepalive = state.settings.keepalive_interval
        # a resumed stream is a stream: it counts against the key's limit too
        slot = await StreamSlot.take(state.store, principal_of(request), state.settings.limits)
        if run is not None and run.events is not None:
            replay = ReplayStreamResponse(follow(run.events, starting_after, keepalive))
        else:
            replay = ReplayStreamResponse(
                replay_stored(
                    store,
                    response_id,
                    starting_after,
                    wakeup=state.wakeup,
                    keepalive_interval=keepalive,
                )
            )
        return replay if slot is None else BodyClosedResponse(replay, on_closed=slot.release)
    # a run of this process shows its closing state until it has settled (persisted,
    # released, its terminal event stored); then it is gone and the record is final
    body = run.visible_response if run is not None else record.response
    return JSONResponse(body)


def _check_not_expired(record: ResponseRecord, event_ttl: float) -> None:
    """Refuse to resume a stream whose events have expired (or soon will, by the
    sweep): the same answer whether or not the sweep has run yet."""
    if record.status in TERMINAL_STATUSES and time.time() - record.updated_at > event_ttl:
        raise E.invalid_request(
            f"The stream of response '{record.id}' has expired: its events are kept "
            f"for {event_ttl:g} seconds after the response ends. "
            "Retrieve the response without stream=true.",
            param="stream",
            code="stream_expired",
        )


@router.post("/responses/{response_id}/cancel", summary="Cancel a background response")
async def cancel_response(request: Request, response_id: str) -> JSONResponse:
    state = get_state(request)
    record = await project_store(request, state).get_response(response_id)
    if record is None:
        raise E.response_not_found(response_id)
    if not record.background:
        raise E.response_not_cancellable()
    run = state.runs.get(response_id)
    if run is not None:
        run.cancel()
        return JSONResponse(await asyncio.shield(run.result()))
    if record.status in TERMINAL_STATUSES:
        return JSONResponse(record.response)
    # running on another replica: it watches for the request and cancels itself
    await state.store.request_cancel(response_id)
    return JSONResponse(await _settled_elsewhere(state, record))


async def _settled_elsewhere(state: ServerState, record: ResponseRecord) -> JSON:
    """The response once the replica running it has settled it, or as it stands
    after the lease time (a dead replica's response is failed by the sweep later)."""
    store = state.store
    events = await store.list_events(record.id, after=None)
    last = events[-1][0] if events else None
    deadline = time.monotonic() + state.settings.lease_ttl
    while time.monotonic() < deadline:
        current = await store.get_response(record.id)
        if current is None or current.status in TERMINAL_STATUSES:
            return (current or record).response
        record = current
        # the final status is written before the terminal event: wake on events
        new = await store.wait_for_events(record.id, after=last, within=0.5)
        last = new[-1][0] if new else last
    return record.response


@router.delete("/responses/{response_id}", summary="Delete a model response")
async def delete_response(request: Request, response_id: str) -> JSONResponse:
    state = get_state(request)
    if not await project_store(request, state).delete_response(response_id):
        raise E.response_not_found(response_id)
    return JSONResponse({"id": response_id, "object": "response", "deleted": True})


@router.get("/responses/{response_id}/input_items", summary="List a response's input items")
async def list_input_items(
    request: Request,
    response_id: str,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Literal["asc", "desc"] = "desc",
    include: Annotated[list[str] | None, Query(alias="include[]")] = None,
) -> JSONResponse:
    store = project_store(request, get_state(request))
    if await store.get_response(response_id) is None:
        raise E.response_not_found(response_id)
    page = await store.list_input_items(response_id, after=after, limit=limit, order=order)
    return JSONResponse(list_body(page.data, page.has_more))
