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
from typing import Any, cast

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from turnstream._tracing import Tracing
from turnstream.providers.base import Provider
from turnstream.storage import create_store
from turnstream.storage.base import Store

from . import compaction, conversations, health, metrics, models, responses, websocket
from .access import AccessMiddleware
from .appstate import ServerState
from .auth import KeyCache
from .errors import install_error_handlers
from .gate import RequestGate
from .limits import RateLimiter
from .metrics import ServerMetrics
from .middleware import RequestIdMiddleware
from .observed_store import ObservedStore
from .registry import ModelRegistry
from .replay import StoreWakeup
from .request_body import DecompressedBodyMiddleware
from .schemas import publish_request_schemas
from .settings import Settings

__all__ = ["create_app", "default_providers"]

log = logging.getLogger("turnstream.server")


def default_providers(settings: Settings) -> list[Provider]:
    """Configured models first (they win name clashes), then the built-ins."""
    from .config import load_providers

    return load_providers(settings)


async def _sweep_stale_responses(store: Store, lease_ttl: float) -> None:
    """Fail responses whose server died, at start-up and then periodically.

    A crashed replica's heartbeat lapses after `lease_ttl`; a restart alone cannot
    tell a dead peer from a live one sooner, so the sweep keeps looking, often
    enough that a dead replica's responses fail soon after its lease time.
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
        await asyncio.sleep(min(max(lease_ttl / 8, 0.1), 5.0))


async def _expire_events(store: Store, event_ttl: float) -> None:
    """Delete the event logs of responses that ended more than `event_ttl` ago."""
    while True:
        try:
            await store.expire_events(ended_before=time.time() - event_ttl)
        except Exception:
            log.exception("the event expiry sweep failed")
        await asyncio.sleep(min(max(event_ttl / 4, 0.1), 60.0))


def create_app(
    settings: Settings | None = None,
    *,
    store: Store | None = None,
    providers: Sequence[Provider] | None = None,
    tracer_provider: Any = None,
) -> FastAPI:
    """Build the server.

    Args:
        settings: Server settings; defaults read nothing but the environment's
            `TURNSTREAM_DB`.
        store: A store to use instead of the database named in `settings`.
        providers: Model providers to serve instead of the configured ones.
        tracer_provider: An OpenTelemetry `TracerProvider` for this app's spans;
            default: the global one (spans are a no-op without OpenTelemetry).
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
    server_metrics = ServerMetrics()
    tracing = Tracing(tracer_provider, name="turnstream.server")
    observed = ObservedStore(the_store, server_metrics, tracing, system=_db_system(the_store))
    state = ServerState(
        settings=settings,
        store=cast(Store, observed),
        models=registry,
        metrics=server_metrics,
        tracing=tracing,
        wakeup=StoreWakeup(the_store),
        key_cache=KeyCache(settings.auth_cache_ttl),
        rates=(
            RateLimiter(settings.limits.requests_per_minute)
            if settings.limits.requests_per_minute
            else None
        ),
    )
    if settings.faults.seed is not None:
        state.rng.seed(settings.faults.seed)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await the_store.open()
        sweepers = [
            asyncio.create_task(_sweep_stale_responses(the_store, settings.lease_ttl)),
            asyncio.create_task(_expire_events(the_store, settings.event_ttl)),
        ]
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
                    async with asyncio.timeout(10):
                        await asyncio.gather(*pending, return_exceptions=True)
            for sweeper in sweepers:
                sweeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sweeper
            await registry.aclose()
            await state.key_cache.aclose()  # a look-up still running holds a connection
            await the_store.close()

    app = FastAPI(
        title="turnstream",
        summary="A self-hosted OpenAI Responses + Conversations API server.",
        version="0.1.0",
        lifespan=lifespan,
        # FastAPI's native OpenTelemetry makes the HTTP request's span, which ours
        # (admission, the provider call, store writes) nest under
        telemetry={"tracer_provider": tracer_provider},
    )
    app.state.turnstream = state
    # the last added runs first: CORS answers preflights, request ids go on every
    # answer (refusals included), the access record counts refusals too, then the
    # gate checks keys, rates and body sizes before a compressed body is inflated
    app.add_middleware(DecompressedBodyMiddleware)
    app.add_middleware(RequestGate, state=state)
    app.add_middleware(AccessMiddleware, state=state)
    app.add_middleware(RequestIdMiddleware)
    if settings.cors_origin:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=[settings.cors_origin],
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["authorization", "content-type", "idempotency-key"],
            expose_headers=["x-request-id", "retry-after"],
        )
    install_error_handlers(app)
    app.include_router(compaction.router)
    app.include_router(responses.router)
    app.include_router(websocket.router)
    app.include_router(conversations.router)
    app.include_router(models.router)
    app.include_router(health.router)
    app.include_router(metrics.router)
    publish_request_schemas(app)
    return app


def _db_system(store: Store) -> str:
    """The OpenTelemetry `db.system.name` of a store, by its class."""
    name = type(store).__name__.lower()
    if "postgres" in name:
        return "postgresql"
    return "sqlite" if "sqlite" in name else "other_sql"
