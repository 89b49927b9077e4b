"""`POST /v1/responses/compact`, and the `compaction` items it makes.

The wire is websocket-compact.md §2. A compaction turns a long context into a short
window for the same conversation: the current turn (from the last user message on)
kept verbatim, everything older replaced by one `compaction` item at the end.

The item is opaque: its `encrypted_content` is a Fernet token (encrypted and
authenticated) under the server's compaction key (`server/secrets.py`), which every
replica sharing the database has. It holds the summary of the items it replaced.
When a request's context contains one, `expand_compactions` opens it and puts the
summary in its place, as a developer message; a token this server did not seal (a
forged or foreign one) is a 400 before any work.

The summary comes from the named model, asked to summarise the older items; a model
that cannot write one (`writes_summaries = False`, the echo model) or fails gets a
deterministic one instead: each older item on one line, shortened.

Tool pairing stays valid: the kept window never starts with a
`function_call_output` whose call was compacted away (the split moves back to
include the call).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from turnstream.engine.context import assemble_chain
from turnstream.engine.deltas import OutputTextDelta
from turnstream.protocol import errors as E
from turnstream.protocol import new_id, normalize_input
from turnstream.protocol.ids import stored_items
from turnstream.protocol.items import InputItem
from turnstream.providers.base import GenerationRequest, Provider, ProviderError
from turnstream.storage.base import Store

from .appstate import ServerState, get_state
from .auth import project_store
from .secrets import compaction_key

__all__ = ["compact", "expand_compactions", "router"]

router = APIRouter(prefix="/v1", tags=["responses"])

JSON = dict[str, Any]

_BODY_FIELDS = {"model", "input", "previous_response_id", "instructions", "prompt_cache_key"}
_LINE = 160
"""Characters per item in a deterministic summary."""
SUMMARY_PROMPT = (
    "Summarise the conversation above for your own later use: the user's goals, "
    "facts and decisions, tool results that matter, and what is still open. "
    "Answer with the summary only."
)


@router.post("/responses/compact", summary="Compact a conversation's context")
async def compact_route(request: Request) -> JSONResponse:
    state = get_state(request)
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        raise E.malformed_json() from None
    if not isinstance(body, dict):
        raise E.malformed_json()
    return JSONResponse(await compact(state, body, project_store(request, state)))


async def compact(state: ServerState, body: Mapping[str, Any], store: Store) -> JSON:
    """The `CompactResource` for a `CompactResponseMethodPublicBody`; a
    `previous_response_id` is looked up in `store` (the caller's project)."""
    for name in body:
        if name not in _BODY_FIELDS:
            raise E.unknown_parameter(name)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise E.invalid_request("Missing required parameter: 'model'.", param="model")
    provider = state.models.get(model)
    context = await _context(state, body, store)
    split = _split(context)
    older, recent = context[:split], context[split:]
    output = [dict(item) for item in recent]
    summary = ""
    if older:
        summary = await _summary(provider, model, body.get("instructions"), older, state)
        output.append(await seal(state, summary))
    input_tokens = _words(context)
    output_tokens = len(summary.split())
    return {
        "id": new_id("resp"),
        "object": "response.compaction",
        "created_at": int(time.time()),
        "output": output,
        "usage": {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens,
        },
    }


async def _context(state: ServerState, body: Mapping[str, Any], store: Store) -> list[JSON]:
    from pydantic import TypeAdapter

    raw = body.get("input")
    items: list[JSON] = []
    if raw is not None:
        if not isinstance(raw, str | list):
            raise E.invalid_request("Invalid type for 'input'.", param="input")
        if isinstance(raw, list):
            adapter: TypeAdapter[InputItem] = TypeAdapter(InputItem)
            for n, item in enumerate(raw):
                try:
                    adapter.validate_python(item)
                except ValueError:
                    raise E.invalid_request(
                        f"Invalid value for 'input[{n}]'.", param=f"input[{n}]"
                    ) from None
        items = stored_items(normalize_input(raw))
    previous = body.get("previous_response_id")
    if previous:
        chain = await store.response_chain(str(previous))
        if not chain:
            raise E.previous_response_not_found(str(previous))
        turns = [(rec.input_items, rec.response.get("output", [])) for rec in chain]
        items = assemble_chain(turns, items)
    # a context compacted before is summarised with what its items stand for
    return await expand_compactions(state, items)


def _split(context: Sequence[Mapping[str, Any]]) -> int:
    """Where the kept window starts: the last user message, moved back so that no
    kept output lacks its call."""
    split = len(context)
    for n in range(len(context) - 1, -1, -1):
        item = context[n]
        if item.get("type", "message") == "message" and item.get("role") == "user":
            split = n
            break
    kept_outputs = {
        item.get("call_id")
        for item in context[split:]
        if item.get("type") == "function_call_output"
    }
    for n in range(split):
        item = context[n]
        if item.get("type") == "function_call" and item.get("call_id") in kept_outputs:
            return n
    return split


async def _summary(
    provider: Provider,
    model: str,
    instructions: Any,
    older: list[JSON],
    state: ServerState,
) -> str:
    if getattr(provider, "writes_summaries", True):
        request = GenerationRequest(
            model=model,
            items=[*older, {"type": "message", "role": "user", "content": SUMMARY_PROMPT}],
            instructions=instructions if isinstance(instructions, str) else None,
            tools=[],
            tool_choice="none",
            parallel_tool_calls=False,
        )
        pieces: list[str] = []
        try:
            async for delta in provider.stream(request):
                if isinstance(delta, OutputTextDelta):
                    pieces.append(delta.text)
        except ProviderError:
            pieces = []
        if "".join(pieces).strip():
            return "".join(pieces).strip()
    return deterministic_summary(older)


def deterministic_summary(items: Sequence[Mapping[str, Any]]) -> str:
    """Each item on one line, shortened: a summary that needs no model."""
    return "\n".join(_line(item)[:_LINE] for item in items)


def _line(item: Mapping[str, Any]) -> str:
    kind = item.get("type", "message")
    if kind == "message":
        return f"{item.get('role')}: {_text(item.get('content'))}"
    if kind == "function_call":
        return f"called {item.get('name')}({item.get('arguments', '')}) [{item.get('call_id')}]"
    if kind == "function_call_output":
        return f"result [{item.get('call_id')}]: {_text(item.get('output'))}"
    return f"{kind}: {_text(item.get('content') or item.get('summary'))}"


def _text(content: Any) -> str:
    if isinstance(content, str):
        return " ".join(content.split())
    if isinstance(content, list):
        return " ".join(
            _text(part.get("text", "")) for part in content if isinstance(part, Mapping)
        )
    return ""


def _words(items: Sequence[Mapping[str, Any]]) -> int:
    return sum(len(_line(item).split()) for item in items)


# -- sealing ---------------------------------------------------------------------------


async def seal(state: ServerState, summary: str) -> JSON:
    """A `compaction` item standing for `summary`."""
    token = Fernet(await compaction_key(state)).encrypt(
        json.dumps({"v": 1, "summary": summary}).encode()
    )
    return {"id": new_id("cmp"), "type": "compaction", "encrypted_content": token.decode()}


async def expand_compactions(
    state: ServerState, context: Sequence[Mapping[str, Any]]
) -> list[JSON]:
    """`context` with every `compaction` item replaced by the context it stands for.

    Raises:
        APIError: 400 `invalid_compaction` for an item this server did not seal.
    """
    if not any(item.get("type") == "compaction" for item in context):
        return [dict(item) for item in context]
    fernet = Fernet(await compaction_key(state))
    expanded: list[JSON] = []
    for n, item in enumerate(context):
        if item.get("type") != "compaction":
            expanded.append(dict(item))
            continue
        try:
            payload = json.loads(fernet.decrypt(str(item.get("encrypted_content", ""))))
            summary = str(payload["summary"])
        except (InvalidToken, ValueError, KeyError, TypeError):
            raise E.invalid_request(
                "This compaction item was not produced by this server (or was altered); "
                "it cannot be used as input.",
                param=f"input[{n}].encrypted_content",
                code="invalid_compaction",
            ) from None
        expanded.append(
            {
                "id": item.get("id") or new_id("msg"),
                "type": "message",
                "role": "developer",
                "status": "completed",
                "content": [
                    {
                        "type": "input_text",
                        "text": f"Summary of the earlier conversation:\n{summary}",
                    }
                ],
            }
        )
    return expanded
