"""Clients on the live test server, shared by the server's end-to-end tests.

Tool and item builders live in `tests/builders.py`, so tests import data from one
module and take clients as fixtures; no test module imports another.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from openai import AsyncOpenAI, OpenAI

from tests.databases import BACKENDS
from tests.livesrv import LiveServer, backend_server


@pytest.fixture(params=BACKENDS)
def each_backend_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveServer]:
    """A live server on each store in turn, SQLite and PostgreSQL: a module that wants
    its endpoint tests run on both overrides `live_server` with this one."""
    with backend_server(request.param, tmp_path) as live:
        yield live


@pytest.fixture
def client(live_server: LiveServer) -> OpenAI:
    """The official sync SDK on the live server, without retries (closed with it)."""
    return live_server.openai()


@pytest.fixture
async def async_client(live_server: LiveServer) -> AsyncIterator[AsyncOpenAI]:
    """The official async SDK on the live server, opened and closed on the test's loop."""
    async with AsyncOpenAI(base_url=live_server.base_url, api_key="test", max_retries=0) as sdk:
        yield sdk
