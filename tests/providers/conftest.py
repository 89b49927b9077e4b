"""Fixtures for provider tests: one fake Chat Completions upstream per session, and
the real embedded models, each loaded once per session (the real-model tests share
one xdist worker)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.providers.fake_chat_upstream import FakeChatUpstream
from tests.providers.real_model import TEST_THREADS, LoadedModel, listeners, missing
from turnstream.providers._local_model import ensure_model
from turnstream.providers.local import LocalProvider


@pytest.fixture(scope="session")
def _fake_upstream_server() -> Iterator[FakeChatUpstream]:
    with FakeChatUpstream() as upstream:
        yield upstream


@pytest.fixture
def fake_upstream(_fake_upstream_server: FakeChatUpstream) -> Iterator[FakeChatUpstream]:
    """The shared fake upstream, with no queued replies and no recorded requests."""
    _fake_upstream_server.reset()
    yield _fake_upstream_server
    _fake_upstream_server.reset()


def _load(size: str) -> Iterator[LoadedModel]:
    reason = missing(size)
    if reason:
        pytest.skip(reason)
    ensure_model(size)  # type: ignore[arg-type]
    linux = Path("/proc/net/tcp").exists()
    before = listeners() if linux else set()
    provider = LocalProvider({"local": size}, threads=TEST_THREADS)  # type: ignore[dict-item]

    async def start() -> None:
        provider.start()
        await provider.ready()

    asyncio.run(start())
    gained = frozenset(listeners() - before) if linux else frozenset()
    yield LoadedModel(provider, gained)
    asyncio.run(provider.aclose())


@pytest.fixture(scope="session")
def small_model() -> Iterator[LoadedModel]:
    """The 0.5B model, loaded once for every test that needs it."""
    yield from _load("0.5b")


@pytest.fixture(scope="session")
def default_model() -> Iterator[LoadedModel]:
    """The 1.5B model (the default), loaded once for every test that needs it."""
    yield from _load("1.5b")


@pytest.fixture
def small(small_model: LoadedModel) -> LocalProvider:
    return small_model.provider


@pytest.fixture
def default(default_model: LoadedModel) -> LocalProvider:
    return default_model.provider
