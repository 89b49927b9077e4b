"""`/healthz` answers while the process lives; `/readyz` only when the database
answers and every configured model is loaded."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from turnstream.providers.base import ModelLoadState
from turnstream.providers.scripted import ScriptedProvider
from turnstream.server.app import create_app
from turnstream.server.settings import Settings

from .inprocess import serving


class LoadingProvider(ScriptedProvider):
    """A provider whose model is still loading."""

    def models(self) -> Sequence[str]:
        return ["slow-model"]

    @property
    def loading(self) -> bool:
        return True

    @property
    def load_progress(self) -> float:
        return 0.25

    def is_ready(self, model: str) -> bool:
        return False


class StatedProvider(ScriptedProvider):
    """A provider whose models stand where `states` says."""

    def __init__(self, states: dict[str, ModelLoadState]) -> None:
        super().__init__(tuple(states))
        self.states = states

    def load_state(self, model: str) -> ModelLoadState:
        return self.states[model]


async def test_healthz_says_the_process_is_alive(tmp_path: Path) -> None:
    async with serving(tmp_path) as served:
        reply = await served.client.get("/healthz")
    assert reply.status_code == 200
    assert reply.json() == {"status": "ok"}


async def test_readyz_is_ready_when_the_database_answers_and_the_models_are_loaded(
    tmp_path: Path,
) -> None:
    async with serving(tmp_path) as served:
        reply = await served.client.get("/readyz")
    assert reply.status_code == 200
    assert reply.json() == {
        "status": "ready",
        "checks": {"database": "ok", "models": {"scripted": "ready"}},
    }


async def test_readyz_is_503_while_a_model_is_loading(tmp_path: Path) -> None:
    import httpx

    app = create_app(
        Settings(db_path=tmp_path / "r.db", enable_local_model=False),
        providers=[ScriptedProvider(), LoadingProvider()],
    )
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://r") as client,
    ):
        reply = await client.get("/readyz")
        alive = await client.get("/healthz")
    assert reply.status_code == 503
    body = reply.json()
    assert body["checks"]["models"] == {"scripted": "ready", "slow-model": "loading"}
    assert body["error"]["code"] == "not_ready"
    assert body["load_progress"] == {"slow-model": 0.25}  # what the chat page's bar shows
    assert alive.status_code == 200


async def test_readyz_is_503_when_the_database_does_not_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with serving(tmp_path) as served:

        async def broken(*args: Any, **kwargs: Any) -> Any:
            raise OSError("connection refused")

        monkeypatch.setattr(served.state.store.inner, "get_response", broken)  # type: ignore[attr-defined]  # the observed store's wrapped store
        reply = await served.client.get("/readyz")
    assert reply.status_code == 503
    assert reply.json()["checks"]["database"] == "error: OSError"


async def test_readyz_does_not_wait_for_a_model_that_loads_on_first_use(tmp_path: Path) -> None:
    # the terminal chat's server preloads only the chat's model
    body = await _readyz(tmp_path, {"local": "ready", "local-small": "on_first_use"})
    assert body == {
        "status": "ready",
        "checks": {"database": "ok", "models": {"local": "ready", "local-small": "on_first_use"}},
    }


async def test_readyz_is_503_for_a_model_whose_load_failed(tmp_path: Path) -> None:
    body = await _readyz(tmp_path, {"local": "failed", "local-small": "on_first_use"}, status=503)
    assert body["checks"]["models"] == {"local": "failed", "local-small": "on_first_use"}
    assert body["error"]["code"] == "not_ready"
    assert "load_progress" not in body, "no model is loading"


async def _readyz(
    tmp_path: Path, states: dict[str, ModelLoadState], status: int = 200
) -> dict[str, Any]:
    import httpx

    app = create_app(
        Settings(db_path=tmp_path / "r.db", enable_local_model=False),
        providers=[StatedProvider(states)],
    )
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://r") as client,
    ):
        reply = await client.get("/readyz")
    assert reply.status_code == status, reply.text
    body: dict[str, Any] = reply.json()
    return body
