"""The server, in-process: the API and chat page (`create_serving_app(settings)`) under
uvicorn on a free loopback port.

It runs in a `ServerThread` (a daemon thread with its own event loop), so the chat's
event loop (and the terminal) never waits on it; the chat then talks to it over HTTP
like any client.
"""

from __future__ import annotations

from turnstream.providers.base import Provider
from turnstream.server.appstate import ServerState
from turnstream.server.settings import Settings

from ._apps import create_serving_app
from ._server_thread import ServerThread

__all__ = ["EmbeddedServer"]


class EmbeddedServer:
    """A running server; `stop()` shuts it down (lifespan included)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = create_serving_app(settings)
        self._thread = ServerThread(self.app, name="turnstream-embedded")

    def start(self, timeout: float = 30.0) -> None:
        """Start serving; raises `RuntimeError` when the server does not come up."""
        try:
            self._thread.start(timeout)
        except RuntimeError as exc:
            raise RuntimeError("the embedded server did not start (see the log above)") from exc

    @property
    def port(self) -> int:
        return self._thread.port

    @property
    def base_url(self) -> str:
        return f"{self._thread.base_url}/v1"

    def provider_for(self, model: str) -> Provider | None:
        """The provider object serving `model`, or `None` (to read its loading state)."""
        state: ServerState = self.app.state.turnstream
        if model not in state.models.names():
            return None
        return state.models.get(model)

    def begin_load(self, model: str) -> None:
        """Begin loading `model` if it waits for its first request (`on_first_use`), so
        that the chat can show the load's progress before it asks its question."""
        provider = self.provider_for(model)
        loop = self._thread.loop
        if provider is not None and loop is not None:
            loop.call_soon_threadsafe(provider.start, model)

    def stop(self) -> None:
        self._thread.stop()
