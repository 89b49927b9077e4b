"""The served app: the API and the chat page side by side, composed by the CLI."""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi import FastAPI

from turnstream.cli._apps import create_serving_app
from turnstream.server.app import create_app
from turnstream.server.settings import PromptWarmup, Settings
from turnstream.web import chat_warmup


def settings(tmp_path: Path) -> Settings:
    return Settings(db_path=tmp_path / "t.db", enable_local_model=False)


async def get(app: FastAPI, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    # the lifespan opens the store, which the key check at the edge reads
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://test") as client,
    ):
        return await client.get(path)


async def test_the_serving_app_has_the_chat_page_beside_the_api(tmp_path: Path) -> None:
    app = create_serving_app(settings(tmp_path))
    page = await get(app, "/")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    models = await get(app, "/v1/models")
    assert "echo" in [m["id"] for m in models.json()["data"]]


async def test_the_api_alone_serves_no_chat_page(tmp_path: Path) -> None:
    page = await get(create_app(settings(tmp_path)), "/")
    assert page.status_code == 404
    assert page.json()["error"]["type"] == "invalid_request_error"


def test_the_serving_app_warms_the_local_model_with_the_chat_prefix(tmp_path: Path) -> None:
    app = create_serving_app(settings(tmp_path))
    warmup = app.state.turnstream.settings.local_warmup
    instructions, tools = chat_warmup()
    assert warmup == PromptWarmup(instructions=instructions, tools=tools)
