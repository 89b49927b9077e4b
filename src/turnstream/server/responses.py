"""`/v1/responses`: create (streaming or not), retrieve, delete, input items.

Every check happens before the first byte of a stream: once `200 text/event-stream`
has gone out, errors can only travel inside the stream.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.background import BackgroundTask

from turnstream.engine.context import assemble_chain, assemble_conversation, resolve_references
from turnstream.engine.pairing import validate_context
from turnstream.protocol import Response as ResponseObject
from turnstream.protocol import ResponseCreateParams, new_id, normalize_input, parse_create_params
from turnstream.protocol import errors as E
from turnstream.providers.base import GenerationRequest
from turnstream.storage.base import ConversationNotFoundError, ResponseRecord

from .errors import conversation_locked, from_provider_error, unsupported
from .faults import inject_faults
from .lists import list_body
from .runs import ResponseRun
from .state import ServerState, get_state
from .streaming import EventStreamResponse

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
    inject_faults(state)
    run = await _admit(state, params)
    # the server's own share of the latency: everything before the model was asked
    # (parsing, context assembly, the lock, the insert) and, without streaming, the
    # bookkeeping after it answered; the model's own time is not included
    admitted = time.perf_counter() - started
    if params.stream:
        error = await run.wait_for_first_delta()
        if error is not None:
            run.keep(asyncio.create_task(run.release_after_body()))
            raise from_provider_error(error)
        return EventStreamResponse(run, headers={ADDED_TIME_HEADER: _ms(admitted)})
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
        headers={ADDED_TIME_HEADER: _ms(admitted + run.persist_seconds)},
        background=BackgroundTask(run.release_after_body),
    )


ADDED_TIME_HEADER = "x-turnstream-added-ms"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


async def _admit(state: ServerState, params: ResponseCreateParams) -> ResponseRun:
    """Validate everything, take the conversation lock, and start the run."""
    settings = state.settings
    # parse_create_params already refused the invalid combinations of protocol.md §1.2
    if params.background:
        raise unsupported("background", "Background mode is not supported by this server yet.")
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
        ).model_dump(mode="json")
        generation = GenerationRequest(
            model=params.model or "",
            items=context,
            instructions=params.instructions,
            tools=response["tools"],
            tool_choice=response["tool_choice"],
            parallel_tool_calls=response["parallel_tool_calls"],
            max_output_tokens=params.max_output_tokens,
            temperature=params.temperature,
            top_p=params.top_p,
            metadata=params.metadata or {},
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
) -> JSONResponse:
    state = get_state(request)
    record = await state.store.get_response(response_id)
    if record is None:
        raise E.response_not_found(response_id)
    if stream:
        # only background responses keep their events for replay (protocol.md §6)
        raise E.response_not_found(response_id)
    run = state.runs.get(response_id)
    body = (
        run.final_response
        if run is not None and record.status in ("queued", "in_progress")
        else record.response
    )
    return JSONResponse(body)


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
