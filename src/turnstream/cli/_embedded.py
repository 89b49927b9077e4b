"""The server, in-process: the API and chat page (`create_serving_app(settings)`) under
uvicorn on a free loopback port.

It runs in a daemon thread with its own event loop, so the chat's event loop (and the
terminal) never waits on it; the chat then talks to it over HTTP like any client.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time

import uvicorn

from turnstream.providers.base import Provider
from turnstream.server.appstate import ServerState
from turnstream.server.settings import Settings

from ._apps import create_serving_app

__all__ = ["EmbeddedServer"]


class EmbeddedServer:
    """A running server; `stop()` shuts it down (lifespan included)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = create_serving_app(settings)
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=0,
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="on",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="turnstream-embedded", daemon=True)
        self.port = 0

    def _run(self) -> None:
        with contextlib.suppress(Exception):
            asyncio.run(self._server.serve())

    def start(self, timeout: float = 30.0) -> None:
        """Start serving; raises `RuntimeError` when the server does not come up."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the embedded server did not start (see the log above)")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def provider_for(self, model: str) -> Provider | None:
        """The provider object serving `model`, or `None` (to read its loading state)."""
        state: ServerState = self.app.state.turnstream
        if model not in state.models.names():
            return None
        return state.models.get(model)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(20)
