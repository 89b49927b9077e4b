"""Any ASGI app under uvicorn on a free loopback port, in a daemon thread.

The thread has its own event loop, so whoever started the server (the chat's event
loop and terminal, or a test's own loop) never waits on it and talks to it over HTTP
like any client. `turnstream chat` runs its embedded server this way; the tests run
the real server and their fake upstreams the same way, so there is one copy of the
start, port discovery and shutdown logic.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

import uvicorn

__all__ = ["ServerThread"]

T = TypeVar("T")

LOOPBACK = "127.0.0.1"


class ServerThread:
    """Serve `app` on `127.0.0.1` and a port the OS picks, until `stop()`.

    Args:
        app: Any ASGI 3 application.
        name: The thread's name (it shows in thread dumps and hanging-test reports).
        lifespan: uvicorn's lifespan mode: `"on"` runs the app's startup and shutdown.
        **config: Further `uvicorn.Config` options (e.g. `timeout_graceful_shutdown`).

    Use as a context manager, or call `start()` and `stop()`.
    """

    def __init__(
        self,
        app: Any,
        *,
        name: str = "turnstream-server",
        lifespan: Literal["auto", "on", "off"] = "on",
        **config: Any,
    ) -> None:
        options: dict[str, Any] = {
            # uvicorn's own logging set-up would reconfigure the host process's loggers
            "log_config": None,
            "log_level": "warning",
            "access_log": False,
            **config,
        }
        self.app = app
        self._server = uvicorn.Server(
            uvicorn.Config(app, host=LOOPBACK, port=0, lifespan=lifespan, **options)
        )
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._error: BaseException | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        """The server's event loop, once `start()` has returned."""
        self.port = 0
        """The bound port, once `start()` has returned."""

    def _run(self) -> None:
        try:
            with asyncio.Runner() as runner:
                self.loop = runner.get_loop()
                runner.run(self._server.serve())
        except BaseException as exc:
            # uvicorn reports a failed start-up as SystemExit; keep it for start() to
            # report instead of letting it end the thread silently
            self._error = exc

    def start(self, timeout: float = 30.0) -> Self:
        """Start serving and wait until the socket accepts connections.

        Raises:
            RuntimeError: The server stopped or did not come up within `timeout` seconds.
        """
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the server stopped during start-up") from self._error
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server did not start within {timeout} s")
            time.sleep(0.005)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    @property
    def base_url(self) -> str:
        """The server's origin, `http://127.0.0.1:<port>` (no trailing slash)."""
        return f"http://{LOOPBACK}:{self.port}"

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        """Run `coro` on the server's event loop and return its result.

        For objects bound to that loop, e.g. a store's connection pool.
        """
        if self.loop is None:
            coro.close()
            raise RuntimeError("the server is not running")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self, timeout: float = 20.0) -> None:
        """Shut down (the app's lifespan shutdown included) and join the thread."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
