"""`/v1/models`: the public model names this server answers for."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from .appstate import get_state
from .model_catalog import codex_models

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["models"])


@router.get("/models", summary="List models")
async def list_models(request: Request) -> JSONResponse:
    models = get_state(request).models
    data = [
        {"id": name, "object": "model", "created": models.created_at, "owned_by": "turnstream"}
        for name in models.names()
    ]
    # `models` is what Codex CLI reads about each model (`model_catalog`)
    return JSONResponse({"object": "list", "data": data, "models": codex_models(models.names())})


@router.get("/models/{model_id}", summary="Retrieve a model")
async def retrieve_model(request: Request, model_id: str) -> JSONResponse:
    models = get_state(request).models
    models.get(model_id)
    return JSONResponse(
        {"id": model_id, "object": "model", "created": models.created_at, "owned_by": "turnstream"}
    )
