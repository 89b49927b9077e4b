"""`/v1/responses`: create (streaming or not, background or not), retrieve (also as a
resumed stream), cancel, delete, input items.

Every check happens before the first byte of a stream: once `200 text/event-stream`
has gone out, errors can only travel inside the stream.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.background import BackgroundTask

from turnstream import sse
from turnstream.engine.context import assemble_chain, assemble_conversation, resolve_references
from turnstream.engine.pairing import validate_context
from turnstream.engine.toolset import Toolset
from turnstream.protocol import Response as ResponseObject
from turnstream.protocol import ResponseCreateParams, new_id, normalize_input, parse_create_params
from turnstream.protocol import errors as E
from turnstream.providers.base import GenerationRequest
from turnstream.storage.base import ConversationNotFoundError, ResponseRecord, Store

from .errors import conversation_locked, from_provider_error
from .faults import inject_faults
from .hosted_tools import dropped_tools_headers, offer_tools
from .lists import list_body
from .reasoning_seal import ENCRYPTED_REASONING, ReasoningSeal
from .runs import ResponseRun, drain
from .state import ServerState, get_state
from .streaming import EventStreamResponse, ReplayStreamResponse

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["responses"])

JSON = dict[str, Any]

_ITEM_PREFIX = {
    "message": "msg",
    "function_call": "fc",
    "function_call_output": "fco",
    "reasoning": "rs",
}


def _with_ids(items: list[JSON]) -> list[JSON]:
    """Give every input item a stored id (and a status), as OpenAI's stored items have."""
    out = []
    for item in items:
        item = dict(item)
        if "id" not in item or not item["id"]:
            item["id"] = new_id(_ITEM_PREFIX.get(item.get("type", ""), "item"))
        if (
            item.get("type") in ("message", "function_call_output", "function_call")
            and "status" not in item
        ):
            item["status"] = "completed"
        out.append(item)
    return out


async def _read_json(request: Request) -> JSON:
    raw = await request.body()
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise E.malformed_json() from None
    if not isinstance(body, dict):
        raise E.malformed_json()
    return body


@router.post("/responses", summary="Create a model response")
async def create_response(request: Request) -> Response:
    started = time.perf_counter()
    state = get_state(request)
    body = await _read_json(request)
    params = parse_create_params(body)
    toolset = offer_tools(params, state.settings)
    inject_faults(state)
    run = await _admit(state, params, toolset)
    # the server's own share of the latency: everything before the model was asked
    # (parsing, context assembly, the lock, the insert) and, without streaming, the
    # bookkeeping after it answered; the model's own time is not included
    admitted = time.perf_counter() - started
    if params.background and not params.stream:
        # the run goes on without us; the client polls GET /v1/responses/{id}
        run.keep(asyncio.create_task(run.release_after_body()))
        return JSONResponse(
            run.final_response,
            headers={ADDED_TIME_HEADER: _ms(admitted), **dropped_tools_headers(toolset)},
        )
    if params.stream:
        error = await run.wait_for_first_delta()
        if error is not None:
            run.keep(asyncio.create_task(run.release_after_body()))
            raise from_provider_error(error)
        return EventStreamResponse(
            run, headers={ADDED_TIME_HEADER: _ms(admitted), **dropped_tools_headers(toolset)}
        )
    try:
        final = await run.result()
    except asyncio.CancelledError:
        run.cancel()
        raise
    error = run.early_error
    if error is not None:
        run.keep(asyncio.create_task(run.release_after_body()))
        raise from_provider_error(error)
    return JSONResponse(
        final,
        headers={
            ADDED_TIME_HEADER: _ms(admitted + run.persist_seconds),
            **dropped_tools_headers(toolset),
        },
        background=BackgroundTask(run.release_after_body),
    )


ADDED_TIME_HEADER = "x-turnstream-added-ms"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


async def _admit(state: ServerState, params: ResponseCreateParams, toolset: Toolset) -> ResponseRun:
    """Validate everything, take the conversation lock, and start the run."""
    settings = state.settings
    # parse_create_params already refused the invalid combinations of protocol.md §1.2
    # (background without store among them)
    provider = state.models.get(params.model or "")

    new_items = _with_ids(normalize_input(params.input if params.input is not None else []))
    store = state.store
    response_id = new_id("resp")
    conversation_id = params.conversation_id
    locked = False

    if params.previous_response_id:
        chain = await store.response_chain(params.previous_response_id)
        if not chain:
            raise E.previous_response_not_found(params.previous_response_id)
        turns = [(rec.input_items, rec.response.get("output", [])) for rec in chain]
        context = assemble_chain(turns, new_items)
    elif conversation_id is not None:
        try:
            locked = await store.acquire_lock(conversation_id, response_id, ttl=settings.lease_ttl)
        except ConversationNotFoundError:
            raise E.conversation_not_found(conversation_id) from None
        if not locked:
            raise await conversation_locked(state, conversation_id)
    else:
        context = resolve_references(new_items)

    try:
        if conversation_id is not None:
            # read under the lock, so the context cannot change before the turn ends
            context = assemble_conversation(await store.all_items(conversation_id), new_items)
        validate_context(context)
        response = ResponseObject.from_params(
            params,
            response_id=response_id,
            created_at=int(time.time()),
            conversation_id=conversation_id,
            tools=toolset.functions,
            tool_choice=toolset.model_choice(params.model_dump(mode="json")["tool_choice"]),
        ).model_dump(mode="json")
        seal = ReasoningSeal(settings.reasoning_secret)
        generation = GenerationRequest(
            model=params.model or "",
            items=toolset.model_items(seal.reveal(context)),
            instructions=params.instructions,
            tools=response["tools"],
            tool_choice=response["tool_choice"],
            parallel_tool_calls=response["parallel_tool_calls"],
            max_output_tokens=params.max_output_tokens,
            temperature=params.temperature,
            top_p=params.top_p,
            metadata=params.metadata or {},
            text_format=params.text_format,
        )
        store_response = response["store"]
        if store_response:
            await store.insert_response(
                ResponseRecord(
                    id=response_id,
                    response=response,
                    input_items=new_items,
                    previous_response_id=params.previous_response_id,
                    conversation_id=conversation_id,
                    status=response["status"],
                    background=response["background"],
                    created_at=response["created_at"],
                )
            )
    except BaseException:
        if locked and conversation_id is not None:
            await store.release_lock(conversation_id, response_id)
        raise

    run = ResponseRun(
        store=store,
        settings=settings,
        provider=provider,
        request=generation,
        response=response,
        input_items=new_items,
        store_response=store_response,
        conversation_id=conversation_id,
        on_settled=state.on_run_settled,
        background=bool(response["background"]),
        toolset=toolset,
        seal_reasoning=seal.seal if ENCRYPTED_REASONING in (params.include or ()) else None,
    )
    state.runs[response_id] = run
    run.start()
    return run


@router.get("/responses/{response_id}", summary="Retrieve a model response")
async def retrieve_response(
    request: Request,
    response_id: str,
    include: Annotated[list[str] | None, Query(alias="include[]")] = None,
    stream: bool = False,
    starting_after: int | None = None,
) -> Response:
    state = get_state(request)
    record = await state.store.get_response(response_id)
    if record is None:
        raise E.response_not_found(response_id)
    run = state.runs.get(response_id)
    if stream:
        # only background responses keep their events for replay (protocol.md §6)
        if not record.background:
            raise E.response_not_found(response_id)
        if run is not None:
            return ReplayStreamResponse(_follow_run(run, starting_after, state))
        return ReplayStreamResponse(_poll_events(state, response_id, starting_after))
    body = (
        run.final_response
        if run is not None and record.status in ("queued", "in_progress")
        else record.response
    )
    return JSONResponse(body)


_TERMINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})
_TERMINAL_STATUSES = frozenset({"completed", "incomplete", "failed", "cancelled"})
EVENT_POLL_INTERVAL = 0.1
"""Seconds between two reads of the event log when following a run of another process."""
_GRACE = 1.0
"""How long a finished response may go without its terminal event in the log."""


async def _follow_run(
    run: ResponseRun, after: int | None, state: ServerState
) -> AsyncIterator[bytes]:
    """A run of this process: what it emitted so far, then live to its end."""
    backlog, queue = run.subscribe(after)
    try:
        if backlog:
            yield backlog
        async for frames in drain(queue, state.settings.keepalive_interval):
            yield frames
    finally:
        run.unsubscribe(queue)


async def _poll_events(
    state: ServerState, response_id: str, after: int | None
) -> AsyncIterator[bytes]:
    """A finished run, or one in another process: read the event log until its
    terminal event (or until the response is over without one, after a crash)."""
    store: Store = state.store
    last = after
    idle = over = 0.0
    while True:
        events = await store.list_events(response_id, after=last)
        if events:
            idle = 0.0
            parts: list[bytes] = []
            ended = False
            for seq, data in events:
                kind = json.loads(data)["type"]
                parts.append(sse.encode_data(kind, data.encode()))
                last = seq
                if kind in _TERMINAL_EVENTS:
                    ended = True
                    break
            yield b"".join(parts)
            if ended:
                return
            continue
        record = await store.get_response(response_id)
        if record is None or record.status in _TERMINAL_STATUSES:
            # the terminal event is stored just after the final status; a response
            # that stays over without one (its server crashed) ends the stream here
            over += EVENT_POLL_INTERVAL
            if over > _GRACE:
                return
        await asyncio.sleep(EVENT_POLL_INTERVAL)
        idle += EVENT_POLL_INTERVAL
        if idle >= state.settings.keepalive_interval:
            idle = 0.0
            yield sse.KEEPALIVE


@router.post("/responses/{response_id}/cancel", summary="Cancel a background response")
async def cancel_response(request: Request, response_id: str) -> JSONResponse:
    state = get_state(request)
    record = await state.store.get_response(response_id)
    if record is None:
        raise E.response_not_found(response_id)
    if not record.background:
        raise E.response_not_cancellable()
    run = state.runs.get(response_id)
    if run is not None:
        run.cancel()
        return JSONResponse(await asyncio.shield(run.result()))
    if record.status in _TERMINAL_STATUSES:
        return JSONResponse(record.response)
    raise E.APIError(
        409,
        E.INVALID_REQUEST,
        "This response is running in another server process; "
        "send the cancel request to that process.",
    )


@router.delete("/responses/{response_id}", summary="Delete a model response")
async def delete_response(request: Request, response_id: str) -> JSONResponse:
    state = get_state(request)
    if not await state.store.delete_response(response_id):
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
    state = get_state(request)
    if await state.store.get_response(response_id) is None:
        raise E.response_not_found(response_id)
    page = await state.store.list_input_items(response_id, after=after, limit=limit, order=order)
    return JSONResponse(list_body(page.data, page.has_more))
