"""An in-process app with API keys, on any backend, for the auth and tenant tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.databases import fresh_database_url
from turnstream.providers.echo import EchoProvider
from turnstream.server.app import create_app
from turnstream.server.appstate import ServerState
from turnstream.server.settings import Settings
from turnstream.storage.sql import SQLStore


@dataclass
class Gated:
    app: Any
    client: httpx.AsyncClient

    @property
    def state(self) -> ServerState:
        state: ServerState = self.app.state.turnstream
        return state

    @property
    def store(self) -> SQLStore:
        store = self.state.store
        store = getattr(store, "inner", store)  # the app measures its store (ObservedStore)
        assert isinstance(store, SQLStore)
        return store

    async def key(self, name: str, project: str = "default") -> dict[str, str]:
        """Headers carrying a new key of `project`."""
        _, secret = await self.store.create_key(name, project=project)
        return {"authorization": f"Bearer {secret}"}


@contextlib.asynccontextmanager
async def gated_app(backend: str, tmp_path: Path, **settings: Any) -> AsyncIterator[Gated]:
    with fresh_database_url(backend, tmp_path) as url:
        settings.setdefault("auth_cache_ttl", 0.0)
        app = create_app(
            Settings(db_url=url, enable_local_model=False, **settings),
            providers=[EchoProvider()],
        )
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                yield Gated(app=app, client=client)
