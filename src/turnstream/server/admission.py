"""Admission: everything between a parsed create request and a running response.

`admit()` checks the request against the server's state and prepares the run: it
picks the provider, gives the new input items their stored ids, assembles the
context (from the `previous_response_id` chain, or from the conversation under its
lease), validates tool pairing, builds the initial `Response` and the
`GenerationRequest`, and inserts the response when it is stored. Every check
happens here, before the first byte of any answer, so a refusal is still a plain
HTTP error.

With `overlap_insert` the stored response's insert is started, not awaited: the
caller starts the model alongside it and must await `Admission.inserting` before it
announces anything (the stored row exists before any event), and cancel the run if
the insert fails. The insert is a database round trip (on SQLite, thread hand-offs
too) that would otherwise sit in front of the model's first token.

It takes parsed params and the app's state, not an HTTP request, so any transport
(the HTTP route today, a WebSocket route later) admits the same way. If anything
fails after the lease was taken, the lease is released before the error leaves.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter

from turnstream.engine.context import assemble_chain, assemble_conversation, resolve_references
from turnstream.engine.pairing import validate_context
from turnstream.engine.toolset import Toolset
from turnstream.protocol import Response, ResponseCreateParams, ToolChoice, new_id, normalize_input
from turnstream.protocol import errors as E
from turnstream.protocol.ids import stored_items
from turnstream.providers.base import GenerationRequest, Provider
from turnstream.storage.base import ConversationNotFoundError, ResponseRecord, Store
from turnstream.storage.schema import DEFAULT_PROJECT

from .appstate import ServerState
from .compaction import expand_compactions
from .errors import conversation_locked
from .lease import ConversationLease
from .reasoning_seal import ENCRYPTED_REASONING, ReasoningSeal

__all__ = ["Admission", "admit"]

JSON = dict[str, Any]

_TOOL_CHOICE: TypeAdapter[ToolChoice] = TypeAdapter(ToolChoice)


@dataclass(frozen=True, slots=True)
class Admission:
    """An admitted request: what a `ResponseRun` needs to start."""

    response: Response
    """The initial `in_progress` Response (empty output)."""
    input_items: list[JSON]
    """The request's new input items, with their stored ids."""
    generation: GenerationRequest
    """The assembled context and settings for the provider."""
    provider: Provider
    lease: ConversationLease | None
    """The conversation's lease, held; `None` without a conversation."""
    toolset: Toolset
    """The request's tools as the model is offered them, to map its calls back."""
    store: Store
    """The store scoped to the caller's project, which the run writes through."""
    context: list[JSON]
    """The assembled context as the client's items (before the model's view of them:
    tools mapped to functions, sealed reasoning opened); a WebSocket connection keeps
    it to continue from."""
    seal_reasoning: Callable[[str], str] | None = None
    """Seals reasoning into `encrypted_content` when the request includes it."""
    inserting: asyncio.Task[None] | None = None
    """The stored response's insert when admitted with `overlap_insert` (still
    running, perhaps); `None` when it was awaited in `admit` or nothing is stored."""

    @property
    def response_id(self) -> str:
        return self.response.id


async def admit(
    state: ServerState,
    params: ResponseCreateParams,
    toolset: Toolset,
    *,
    project: str = DEFAULT_PROJECT,
    prior: Sequence[JSON] | None = None,
    response_id: str | None = None,
    overlap_insert: bool = False,
) -> Admission:
    """Validate `params` against the server's state and prepare the run.

    Everything is read and written in `project` (the caller's, see `auth`): another
    project's response or conversation is not found.

    Args:
        state: The app's state.
        params: The parsed create request.
        toolset: The request's tools as offered to the model (`hosted_tools.offer_tools`).
        project: The caller's project.
        prior: The whole context of `params.previous_response_id` (its input and
            output, and everything before), when the caller holds it already: a
            WebSocket connection keeps its last response's, which is the only copy
            of a `store=false` one. The chain is then not loaded from storage.
        response_id: The new response's id, when the caller had to know it first
            (an idempotency key is bound to it before admission).
        overlap_insert: Start the stored response's insert and return before it
            commits (not for a background response, whose event log writes under
            the row from its first event): see `Admission.inserting`.

    Raises:
        APIError: `model_not_found`, `previous_response_not_found`,
            `conversation_not_found`, `conversation_locked`, or a context that does
            not pair calls with outputs.
    """
    attributes = {
        "gen_ai.request.model": params.model,
        "gen_ai.conversation.id": params.conversation_id,
    }
    with state.tracing.span("admit", attributes=attributes):
        return await _admit(state, params, toolset, project, prior, response_id, overlap_insert)


async def _admit(
    state: ServerState,
    params: ResponseCreateParams,
    toolset: Toolset,
    project: str,
    prior: Sequence[JSON] | None,
    response_id: str | None,
    overlap_insert: bool,
) -> Admission:
    # parse_create_params already refused the invalid combinations (background
    # without store among them)
    provider = state.models.get(params.model or "")
    store = state.store.scoped(project)
    new_items = stored_items(normalize_input(params.input if params.input is not None else []))
    response_id = response_id or new_id("resp")
    conversation_id = params.conversation_id

    lease: ConversationLease | None = None
    context: list[Mapping[str, Any]]
    if params.previous_response_id and prior is not None:
        context = assemble_chain([(list(prior), [])], new_items)
    elif params.previous_response_id:
        chain = await store.response_chain(params.previous_response_id)
        if not chain:
            raise E.previous_response_not_found(params.previous_response_id)
        turns = [(rec.input_items, rec.response.get("output", [])) for rec in chain]
        context = assemble_chain(turns, new_items)
    elif conversation_id is not None:
        try:
            lease = await ConversationLease.acquire(
                store,
                conversation_id,
                response_id,
                state.settings,
                on_lost=lambda stage: state.metrics.lease_takeovers.labels(stage).inc(),
            )
        except ConversationNotFoundError:
            raise E.conversation_not_found(conversation_id) from None
        if lease is None:
            raise await conversation_locked(state, conversation_id)
    else:
        context = resolve_references(new_items)

    try:
        if conversation_id is not None:
            # read under the lease, so the context cannot change before the turn ends
            context = assemble_conversation(await store.all_items(conversation_id), new_items)
        # compaction items stay as they are in storage; the model sees what they stand for
        context = list(await expand_compactions(state, context))
        validate_context(context)
        response = Response.from_params(
            params,
            response_id=response_id,
            created_at=int(time.time()),
            conversation_id=conversation_id,
            tools=toolset.functions,
            tool_choice=toolset.model_choice(params.model_dump(mode="json")["tool_choice"]),
        )
        seal = ReasoningSeal(state.settings.reasoning_secret)
        generation = _generation_request(
            params, response, toolset.model_items(seal.reveal(context))
        )
        inserting = None
        if response.store and overlap_insert and not response.background:
            # last, so nothing after it can fail and leave it running unowned
            inserting = asyncio.create_task(_insert_after_a_turn(store, response, new_items))
        elif response.store:
            await store.insert_response(_record(response, new_items))
    except BaseException:
        if lease is not None:
            await lease.release()
        raise
    return Admission(
        response=response,
        input_items=new_items,
        generation=generation,
        provider=provider,
        lease=lease,
        toolset=toolset,
        seal_reasoning=seal.seal if ENCRYPTED_REASONING in (params.include or ()) else None,
        store=store,
        context=[dict(item) for item in context],
        inserting=inserting,
    )


async def _insert_after_a_turn(store: Store, response: Response, input_items: list[JSON]) -> None:
    # one loop turn first: the run started right after admission then sends the
    # upstream request before the insert's own Python work (SQLAlchemy, ~1 ms of the
    # loop's time) runs, instead of after it
    await asyncio.sleep(0)
    await store.insert_response(_record(response, input_items))


def _generation_request(
    params: ResponseCreateParams, response: Response, context: list[Mapping[str, Any]]
) -> GenerationRequest:
    # tools and tool choice as the Response echoes them (normalized), in the
    # provider's wire-dict form
    return GenerationRequest(
        model=params.model or "",
        items=context,
        instructions=params.instructions,
        tools=[tool.model_dump(mode="json") for tool in response.tools],
        tool_choice=_TOOL_CHOICE.dump_python(response.tool_choice, mode="json"),
        parallel_tool_calls=response.parallel_tool_calls,
        max_output_tokens=params.max_output_tokens,
        temperature=params.temperature,
        top_p=params.top_p,
        metadata=params.metadata or {},
        text_format=params.text_format,
    )


def _record(response: Response, input_items: list[JSON]) -> ResponseRecord:
    """The stored row of a new response (the store keeps JSON)."""
    return ResponseRecord(
        id=response.id,
        response=response.model_dump(mode="json"),
        input_items=input_items,
        previous_response_id=response.previous_response_id,
        conversation_id=response.conversation.id if response.conversation else None,
        status=response.status,
        background=response.background,
        created_at=response.created_at,
    )
