"""`ServerThread`: any ASGI app on a loopback port in a thread, for the chat and the tests."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from turnstream.cli._server_thread import ServerThread


async def hello(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": scope["path"].encode()})


async def fails_to_start(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "lifespan.startup.failed", "message": "no database"})


def test_it_serves_the_app_on_a_loopback_port_until_stopped() -> None:
    with ServerThread(hello) as server:
        assert server.base_url == f"http://127.0.0.1:{server.port}"
        assert httpx.get(f"{server.base_url}/ping").text == "/ping"
        assert server.call(asyncio.sleep(0, result="on its loop")) == "on its loop"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.base_url}/ping")


def test_two_servers_get_two_ports() -> None:
    with ServerThread(hello) as first, ServerThread(hello) as second:
        assert first.port != second.port


def test_a_failed_start_up_is_reported_not_swallowed() -> None:
    server = ServerThread(fails_to_start)
    with pytest.raises(RuntimeError, match="stopped during start-up") as info:
        server.start(timeout=10)
    assert isinstance(info.value.__cause__, SystemExit)
