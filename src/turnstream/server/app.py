"""`create_app(settings)`: the API's ASGI app, built from explicit parts.

It serves `/v1` only; the chat page is a separate router that the CLI mounts beside
it (`turnstream.cli._apps`), so the server never imports the client half.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence

from fastapi import FastAPI

from turnstream.providers.base import Provider
from turnstream.storage import create_store
from turnstream.storage.base import Store

from . import compaction, conversations, models, responses, websocket
from .appstate import ServerState
from .errors import install_error_handlers
from .middleware import RequestIdMiddleware
from .registry import ModelRegistry
from .settings import Settings

__all__ = ["create_app", "default_providers"]

log = logging.getLogger("turnstream.server")


def default_providers(settings: Settings) -> list[Provider]:
    """Configured models first (they win name clashes), then the built-ins."""
    from .config import load_providers

    return load_providers(settings)


async def _sweep_stale_responses(store: Store, lease_ttl: float) -> None:
    """Fail responses whose server died, at start-up and then periodically.

    A crashed process's heartbeat lapses after `lease_ttl`; a restart alone cannot
    tell a dead peer from a live one sooner, so the sweep keeps looking.
    """
    while True:
        try:
            stale = await store.fail_stale_responses()
        except Exception:
            log.exception("the stale-response sweep failed")
        else:
            if stale:
                log.warning(
                    "marked %d responses left running by a stopped server as failed", len(stale)
                )
        await asyncio.sleep(max(lease_ttl / 2, 0.25))


def create_app(
    settings: Settings | None = None,
    *,
    store: Store | None = None,
    providers: Sequence[Provider] | None = None,
) -> FastAPI:
    """Build the server.

    Args:
        settings: Server settings; defaults read nothing but the environment's
            `TURNSTREAM_DB`.
        store: A store to use instead of the database named in `settings`.
        providers: Model providers to serve instead of the configured ones.
    """
    settings = settings or Settings()
    the_store = (
        store
        if store is not None
        else create_store(
            settings.database, owner_ttl=settings.lease_ttl, pool_size=settings.db_pool_size
        )
    )
    registry = ModelRegistry(
        providers if providers is not None else default_providers(settings),
        created_at=int(time.time()),
    )
    state = ServerState(settings=settings, store=the_store, models=registry)
    if settings.faults.seed is not None:
        state.rng.seed(settings.faults.seed)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await the_store.open()
        sweeper = asyncio.create_task(_sweep_stale_responses(the_store, settings.lease_ttl))
        for provider in registry.providers:
            provider.start()
        try:
            yield
        finally:
            # server shutdown: cancel what is still running so every run releases
            # its conversation lock and records itself as cancelled
            for run in list(state.runs.values()):
                run.cancel()
            pending = [run.result() for run in list(state.runs.values())]
            if pending:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.gather(*pending, return_exceptions=True), 10)
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            await registry.aclose()
            await the_store.close()

    app = FastAPI(
        title="turnstream",
        summary="A self-hosted OpenAI Responses + Conversations API server.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.turnstream = state
    app.add_middleware(RequestIdMiddleware)
    install_error_handlers(app)
    app.include_router(compaction.router)
    app.include_router(responses.router)
    app.include_router(websocket.router)
    app.include_router(conversations.router)
    app.include_router(models.router)
    return app
