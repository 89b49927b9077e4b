"""What `turnstream serve` and `turnstream chat` serve: the API and the chat page.

The two halves meet only at the wire (DESIGN.md): `create_app` is the API alone, the
chat page (`turnstream.web`) runs the client loop. This is where they are put side by
side in one ASGI app, so neither half imports the other.
"""

from __future__ import annotations

import dataclasses

from fastapi import FastAPI

from turnstream.server.app import create_app
from turnstream.server.settings import PromptWarmup, Settings
from turnstream.web import chat_index_path, chat_warmup, create_chat_router

__all__ = ["create_serving_app"]


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
