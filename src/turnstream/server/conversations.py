"""`/v1/conversations`: the eight endpoints of OpenAI's Conversations API.

Item changes go through the store, which refuses them while a response holds the
conversation's lease, so a running turn never sees its context change under it
(`docs/wire.md`, "Conversation locking").
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from turnstream.protocol import InputItem, Metadata, new_id, normalize_input, parse_body
from turnstream.protocol import errors as E
from turnstream.storage.base import ConversationLockedError, ConversationNotFoundError, Store

from .appstate import get_state
from .auth import project_store
from .errors import conversation_locked
from .limits import parse_json
from .lists import list_body
from .schemas import request_body

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["conversations"])

JSON = dict[str, Any]
ModelT = TypeVar("ModelT", bound=BaseModel)


class ConversationCreateParams(BaseModel):
    items: list[InputItem] | None = Field(default=None, max_length=20)
    metadata: Metadata | None = None


class ConversationUpdateParams(BaseModel):
    metadata: Metadata | None


class ItemsCreateParams(BaseModel):
    items: list[InputItem] = Field(min_length=1, max_length=20)


def _store(request: Request) -> Store:
    """The caller's project's store: another project's conversation looks missing."""
    return project_store(request, get_state(request))


async def _parse(request: Request, model: type[ModelT]) -> ModelT:
    raw = await request.body()
    return parse_body(model, parse_json(raw) if raw else {})


@router.post(
    "/conversations",
    summary="Create a conversation",
    openapi_extra=request_body(ConversationCreateParams, required=False),
)
async def create_conversation(request: Request) -> JSONResponse:
    store = _store(request)
    params = await _parse(request, ConversationCreateParams)
    conversation = await store.create_conversation(
        new_id("conv"),
        metadata=params.metadata or {},
        items=normalize_input(params.items or []),
        created_at=int(time.time()),
    )
    return JSONResponse(conversation)


@router.get("/conversations/{conversation_id}", summary="Retrieve a conversation")
async def retrieve_conversation(request: Request, conversation_id: str) -> JSONResponse:
    conversation = await _store(request).get_conversation(conversation_id)
    if conversation is None:
        raise E.conversation_not_found(conversation_id)
    return JSONResponse(conversation)


@router.post(
    "/conversations/{conversation_id}",
    summary="Update a conversation's metadata",
    openapi_extra=request_body(ConversationUpdateParams),
)
async def update_conversation(request: Request, conversation_id: str) -> JSONResponse:
    params = await _parse(request, ConversationUpdateParams)
    conversation = await _store(request).update_conversation(
        conversation_id, metadata=params.metadata or {}
    )
    if conversation is None:
        raise E.conversation_not_found(conversation_id)
    return JSONResponse(conversation)


@router.delete("/conversations/{conversation_id}", summary="Delete a conversation")
async def delete_conversation(request: Request, conversation_id: str) -> JSONResponse:
    if not await _store(request).delete_conversation(conversation_id):
        raise E.conversation_not_found(conversation_id)
    return JSONResponse({"id": conversation_id, "object": "conversation.deleted", "deleted": True})


@router.post(
    "/conversations/{conversation_id}/items",
    summary="Add items to a conversation",
    openapi_extra=request_body(ItemsCreateParams),
)
async def create_items(
    request: Request,
    conversation_id: str,
    include: Annotated[list[str] | None, Query(alias="include[]")] = None,
) -> JSONResponse:
    state = get_state(request)
    params = await _parse(request, ItemsCreateParams)
    try:
        created = await _store(request).add_items(conversation_id, normalize_input(params.items))
    except ConversationNotFoundError:
        raise E.conversation_not_found(conversation_id) from None
    except ConversationLockedError:
        raise await conversation_locked(state, conversation_id) from None
    return JSONResponse(list_body(created, False))


@router.get("/conversations/{conversation_id}/items", summary="List a conversation's items")
async def list_items(
    request: Request,
    conversation_id: str,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Literal["asc", "desc"] = "desc",
    include: Annotated[list[str] | None, Query(alias="include[]")] = None,
) -> JSONResponse:
    store = _store(request)
    if await store.get_conversation(conversation_id) is None:
        raise E.conversation_not_found(conversation_id)
    page = await store.list_items(conversation_id, after=after, limit=limit, order=order)
    return JSONResponse(list_body(page.data, page.has_more))


@router.get(
    "/conversations/{conversation_id}/items/{item_id}", summary="Retrieve a conversation item"
)
async def retrieve_item(
    request: Request,
    conversation_id: str,
    item_id: str,
    include: Annotated[list[str] | None, Query(alias="include[]")] = None,
) -> JSONResponse:
    store = _store(request)
    if await store.get_conversation(conversation_id) is None:
        raise E.conversation_not_found(conversation_id)
    item = await store.get_item(conversation_id, item_id)
    if item is None:
        raise E.item_not_found(item_id)
    return JSONResponse(item)


@router.delete(
    "/conversations/{conversation_id}/items/{item_id}", summary="Delete a conversation item"
)
async def delete_item(request: Request, conversation_id: str, item_id: str) -> JSONResponse:
    state = get_state(request)
    store = _store(request)
    try:
        deleted = await store.delete_item(conversation_id, item_id)
    except ConversationNotFoundError:
        raise E.conversation_not_found(conversation_id) from None
    except ConversationLockedError:
        raise await conversation_locked(state, conversation_id) from None
    if not deleted:
        if await store.get_conversation(conversation_id) is None:
            raise E.conversation_not_found(conversation_id)
        raise E.item_not_found(item_id)
    conversation = await store.get_conversation(conversation_id)
    if conversation is None:
        raise E.conversation_not_found(conversation_id)
    return JSONResponse(conversation)
