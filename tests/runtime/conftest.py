"""The runtime's behaviour tests run against the real server (`tests/livesrv.py`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import openai
import pytest

from tests.livesrv import LiveServer, running_server
from turnstream.providers.scripted import ScriptedProvider

from . import helpers


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    """A real turnstream server: `echo`, `echo-slow` (a word per 20 ms), `scripted`."""
    with running_server(tmp_path / "turnstream.db") as live:
        yield live


@pytest.fixture
def scripted(live_server: LiveServer) -> ScriptedProvider:
    assert live_server.scripted is not None
    return live_server.scripted


@pytest.fixture
async def server_client(live_server: LiveServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=live_server.base_url, api_key="test", timeout=20
    ) as client:
        yield client


@pytest.fixture(params=["http", "websocket"])
async def over_each_transport(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """Runs a test once per runtime transport: `make_agent` uses `param`."""
    async with helpers.agents_over(request.param) as transport:
        yield transport
