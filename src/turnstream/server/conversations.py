"""`/v1/conversations`: the eight endpoints of protocol.md §4.

Item changes go through the store, which refuses them while a response holds the
conversation's lease, so a running turn never sees its context change under it.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from turnstream.protocol import errors as E
from turnstream.protocol import new_id, normalize_input
from turnstream.storage.base import ConversationLockedError, ConversationNotFoundError

from .errors import conversation_locked
from .lists import list_body
from .state import get_state

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["conversations"])

JSON = dict[str, Any]
ModelT = TypeVar("ModelT", bound=BaseModel)


class ConversationCreateParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[JSON] | None = Field(default=None, max_length=20)
    metadata: dict[str, str] | None = None


class ConversationUpdateParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    metadata: dict[str, str] | None


class ItemsCreateParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[JSON] = Field(min_length=1, max_length=20)


def _check_metadata(metadata: dict[str, str] | None) -> dict[str, str]:
    metadata = metadata or {}
    if len(metadata) > 16:
        raise E.invalid_request(
            "Invalid 'metadata': too many properties (at most 16).", param="metadata"
        )
    for key, value in metadata.items():
        if len(key) > 64:
            raise E.invalid_request(
                f"Invalid 'metadata': key '{key[:20]}...' is longer than 64 characters.",
                param="metadata",
            )
        if len(value) > 512:
            raise E.invalid_request(
                f"Invalid 'metadata.{key}': value is longer than 512 characters.",
                param=f"metadata.{key}",
            )
    return metadata


def _items(raw: list[JSON]) -> list[JSON]:
    try:
        return normalize_input(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = "items" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"])
        raise E.invalid_request(
            f"Invalid value for '{param}': {first['msg']}.", param=param
        ) from None


async def _parse(request: Request, model: type[ModelT]) -> ModelT:
    raw = await request.body()
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "json_invalid":
            raise E.malformed_json() from None
        if first["type"] == "extra_forbidden":
            raise E.unknown_parameter(str(first["loc"][0])) from None
        param = ".".join(str(p) for p in first["loc"]) or None
        raise E.invalid_request(
            f"Invalid value for '{param}': {first['msg']}.", param=param
        ) from None


@router.post("/conversations", summary="Create a conversation")
async def create_conversation(request: Request) -> JSONResponse:
    state = get_state(request)
    params = await _parse(request, ConversationCreateParams)
    conversation = await state.store.create_conversation(
        new_id("conv"),
        metadata=_check_metadata(params.metadata),
        items=_items(params.items or []),
        created_at=int(time.time()),
    )
    return JSONResponse(conversation)


@router.get("/conversations/{conversation_id}", summary="Retrieve a conversation")
async def retrieve_conversation(request: Request, conversation_id: str) -> JSONResponse:
    conversation = await get_state(request).store.get_conversation(conversation_id)
    if conversation is None:
        raise E.conversation_not_found(conversation_id)
    return JSONResponse(conversation)


@router.post("/conversations/{conversation_id}", summary="Update a conversation's metadata")
async def update_conversation(request: Request, conversation_id: str) -> JSONResponse:
    params = await _parse(request, ConversationUpdateParams)
    conversation = await get_state(request).store.update_conversation(
        conversation_id, metadata=_check_metadata(params.metadata)
    )
    if conversation is None:
        raise E.conversation_not_found(conversation_id)
    return JSONResponse(conversation)


@router.delete("/conversations/{conversation_id}", summary="Delete a conversation")
async def delete_conversation(request: Request, conversation_id: str) -> JSONResponse:
    if not await get_state(request).store.delete_conversation(conversation_id):
        raise E.conversation_not_found(conversation_id)
    return JSONResponse({"id": conversation_id, "object": "conversation.deleted", "deleted": True})


@router.post("/conversations/{conversation_id}/items", summary="Add items to a conversation")
async def create_items(
    request: Request,
    conversation_id: str,
    include: Annotated[list[str] | None, Query(alias="include[]")] = None,
) -> JSONResponse:
    state = get_state(request)
    params = await _parse(request, ItemsCreateParams)
    try:
        created = await state.store.add_items(conversation_id, _items(params.items))
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
    store = get_state(request).store
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
    store = get_state(request).store
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
    store = state.store
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
