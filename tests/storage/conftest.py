from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from turnstream.storage import SQLiteStore


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


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "turnstream.db"


@pytest.fixture
async def store(db_path: Path, clock: FakeClock) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(db_path, clock=clock)
    await store.open()
    try:
        yield store
    finally:
        await store.close()
