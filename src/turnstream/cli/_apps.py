"""What `turnstream serve` and `turnstream chat` serve: the API and the chat page.

The two halves meet only at the wire (DESIGN.md): `create_app` is the API alone, the
chat page (`turnstream.web`) runs the client loop. This is where they are put side by
side in one ASGI app, so neither half imports the other.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from turnstream.server.app import create_app
from turnstream.server.limits import Limits
from turnstream.server.settings import FaultSettings, PromptWarmup, Settings
from turnstream.web import chat_index_path, chat_warmup, create_chat_router

__all__ = [
    "SETTINGS_ENV",
    "create_serving_app",
    "create_serving_app_from_environment",
    "freeze_startup_heap",
    "settings_from_json",
    "settings_to_json",
]

SETTINGS_ENV = "TURNSTREAM_SERVE_SETTINGS"
"""How `turnstream serve --workers N` hands its settings to each worker process:
uvicorn starts workers from an import string, so the settings travel as JSON."""


def create_serving_app(settings: Settings) -> FastAPI:
    """The API at `/v1` with the chat page at `/` beside it.

    The embedded model warms its prompt cache with the chat page's instructions and
    tools unless `settings` names another warm-up.
    """
    if settings.local_warmup is None:
        instructions, tools = chat_warmup()
        settings = dataclasses.replace(
            settings, local_warmup=PromptWarmup(instructions=instructions, tools=tools)
        )
    app = create_app(settings)
    app.include_router(create_chat_router(chat_index_path(settings.db_path)))
    return app


def freeze_startup_heap() -> None:
    """Keep what exists at start-up (modules, schemas, the app) out of every later
    garbage collection.

    The server imports ~175k long-lived objects (FastAPI, pydantic models, the
    OpenAI types), and CPython's full collections walk all of them: at 50 paced
    streams one took 330 ms, and every stream stalls for it (docs/performance.md,
    `bench/gc_pauses.py`). `gc.freeze()` moves them
    to the permanent generation; a collection first so that no garbage is frozen
    with them.
    """
    gc.collect()
    gc.freeze()


def settings_to_json(settings: Settings) -> str:
    """`settings` as JSON for `settings_from_json` (paths as strings)."""
    return json.dumps(dataclasses.asdict(settings), default=str)


def settings_from_json(text: str) -> Settings:
    """The inverse of `settings_to_json`."""
    data: dict[str, Any] = json.loads(text)
    data["db_path"] = Path(data["db_path"])
    if data.get("config_path") is not None:
        data["config_path"] = Path(data["config_path"])
    data["faults"] = FaultSettings(**data["faults"])
    data["limits"] = Limits(**data["limits"])
    if data.get("local_warmup") is not None:
        data["local_warmup"] = PromptWarmup(**data["local_warmup"])
    if data.get("local_preload") is not None:
        data["local_preload"] = tuple(data["local_preload"])
    return Settings(**data)


def create_serving_app_from_environment() -> FastAPI:
    """What each worker of `turnstream serve --workers N` serves: the app built from
    the settings the parent put in `$TURNSTREAM_SERVE_SETTINGS` (a uvicorn factory)."""
    app = create_serving_app(settings_from_json(os.environ[SETTINGS_ENV]))
    freeze_startup_heap()
    return app
