from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import openai
import pytest

from turnstream.runtime import ConversationRegistry, RetryPolicy

from .fake_responses_server import FakeResponsesServer


async def _no_sleep(seconds: float) -> None:
    """Backoff without wall-clock time; a real await keeps the loop fair."""
    import asyncio

    await asyncio.sleep(0)


FAST_RETRY = RetryPolicy(max_attempts=50, base=0.001, cap=0.01, sleep=_no_sleep)


@pytest.fixture
def fake() -> Iterator[FakeResponsesServer]:
    with FakeResponsesServer() as server:
        yield server


@pytest.fixture
async def client(fake: FakeResponsesServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=fake.base_url, api_key="test-key", timeout=10) as c:
        yield c


@pytest.fixture
def registry() -> ConversationRegistry:
    return ConversationRegistry()
