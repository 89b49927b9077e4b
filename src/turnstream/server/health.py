"""`/healthz` (the process is alive) and `/readyz` (it can answer requests).

Ready means the database answers and every configured model is loaded
(`Provider.load_state`), except one set to load on its first request (the terminal
chat's server preloads only the chat's model); a failed load reads `failed`. A load balancer sends traffic by `/readyz` and restarts by
`/healthz`, so `/healthz` checks nothing that a restart would not fix. While models
load, `/readyz` also gives each one's progress (`load_progress`, 0.0 to 1.0), which
the chat page shows as a progress bar.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from .appstate import ServerState, get_state

__all__ = ["DATABASE_TIMEOUT", "router"]

DATABASE_TIMEOUT = 2.0
"""Seconds the database gets to answer a readiness probe."""

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness", include_in_schema=False)
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"})


@router.get("/readyz", summary="Readiness", include_in_schema=False)
async def readyz(request: Request) -> JSONResponse:
    state = get_state(request)
    checks: dict[str, Any] = {"database": await _database(state), "models": _models(state)}
    # a model that loads on its first request does not hold readiness back: it is
    # not loading, and the request that needs it waits for it (or gets a 503)
    ready = checks["database"] == "ok" and all(
        v in ("ready", "on_first_use") for v in checks["models"].values()
    )
    if ready:
        return JSONResponse({"status": "ready", "checks": checks})
    error = {
        "message": "The server is not ready to answer requests.",
        "type": "server_error",
        "param": None,
        "code": "not_ready",
    }
    body = {"status": "not_ready", "checks": checks, "error": error}
    progress = _load_progress(state, checks["models"])
    if progress:
        body["load_progress"] = progress
    return JSONResponse(body, 503)


async def _database(state: ServerState) -> str:
    try:
        # a read by primary key of an id that cannot exist: the cheapest query every
        # Store has, and it goes all the way to the database
        async with asyncio.timeout(DATABASE_TIMEOUT):
            await state.store.get_response("resp_readyz")
    except TimeoutError:
        return "timeout"
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    return "ok"


def _load_progress(state: ServerState, models: dict[str, str]) -> dict[str, float]:
    progress: dict[str, float] = {}
    for provider in state.models.providers:
        for name in provider.models():
            if models.get(name) == "loading" and name not in progress:
                progress[name] = round(provider.model_load_progress(name), 3)
    return progress


def _models(state: ServerState) -> dict[str, str]:
    found: dict[str, str] = {}
    for provider in state.models.providers:
        for name in provider.models():
            if name not in found:
                found[name] = provider.load_state(name)
    return found
