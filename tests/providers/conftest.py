"""Fixtures for provider tests: one fake Chat Completions upstream per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.providers.fake_chat_upstream import FakeChatUpstream


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
