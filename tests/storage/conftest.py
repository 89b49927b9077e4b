"""The store suite runs against every backend: `store` is parametrized over them.

Each test gets a fresh database (see `tests/databases.py`); `open_store` opens
further stores on the same database, as other processes or replicas would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.databases import BACKENDS, fresh_database_url
from turnstream.storage import create_store
from turnstream.storage.sql import SQLStore

OpenStore = Callable[..., Awaitable[SQLStore]]


class FakeClock:
    """A clock that moves only when told to (epoch seconds)."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(backend: str, tmp_path: Path) -> Iterator[str]:
    with fresh_database_url(backend, tmp_path) as url:
        yield url


@pytest.fixture
async def open_store(db_url: str, clock: FakeClock) -> AsyncIterator[OpenStore]:
    """`await open_store(**create_store_kwargs)`: an open store on this test's
    database (the test's fake clock unless given another); closed after the test."""
    opened: list[SQLStore] = []

    async def open_one(**kwargs: Any) -> SQLStore:
        kwargs.setdefault("clock", clock)
        store = create_store(db_url, **kwargs)
        await store.open()
        opened.append(store)
        return store

    try:
        yield open_one
    finally:
        for store in reversed(opened):
            await store.close()


@pytest.fixture
async def store(open_store: OpenStore) -> SQLStore:
    return await open_store()
