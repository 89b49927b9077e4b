"""Retries: which failures are resent, how long to wait, and the race under load."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest

from turnstream.runtime import (
    Agent,
    ConversationRegistry,
    RetryPolicy,
    StreamInterruptedError,
    TextDelta,
    tool,
)
from turnstream.runtime.retry import retry_after

from .conftest import FAST_RETRY
from .fake_responses_server import Break, Call, FakeResponsesServer, Fault, Text, call_then_answer


@tool
def add(a: float, b: float) -> float:
    """Add two numbers."""
    return a + b


def make_agent(client: openai.AsyncOpenAI, registry: ConversationRegistry, **kw: Any) -> Agent:
    kw.setdefault("retry", FAST_RETRY)
    return Agent(client=client, model="echo", tools=[add], registry=registry, **kw)


def test_retry_after_ms_wins_over_retry_after() -> None:
    assert retry_after({"retry-after-ms": "250", "retry-after": "3"}) == 0.25
    assert retry_after({"retry-after": "3"}) == 3.0
    assert retry_after({}) is None


def test_computed_delay_grows_exponentially_up_to_the_cap() -> None:
    policy = RetryPolicy(base=1.0, cap=5.0, jitter=0)
    assert [policy.delay(n) for n in range(4)] == [1.0, 2.0, 4.0, 5.0]


def test_a_server_delay_is_used_exactly_unless_it_is_too_long() -> None:
    policy = RetryPolicy(base=1.0, jitter=0, max_retry_after=10)
    assert policy.delay(0, {"retry-after-ms": "1500"}) == 1.5
    assert policy.delay(0, {"retry-after": "600"}) == 1.0


def test_max_attempts_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)


@pytest.mark.parametrize("kind", ["429", "503", "locked", "drop"])
async def test_a_fault_before_the_first_event_is_retried(
    fake: FakeResponsesServer,
    client: openai.AsyncOpenAI,
    registry: ConversationRegistry,
    kind: Any,
) -> None:
    fake.faults.extend([Fault(kind), Fault(kind)])
    result = await make_agent(client, registry).run("hi")
    assert result.final_output == "echo: hi"
    assert len(fake.requests) == 3


async def test_the_servers_retry_after_is_honoured(
    fake: FakeResponsesServer, client: openai.AsyncOpenAI, registry: ConversationRegistry
) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    fake.faults.append(Fault("429", retry_after_ms=1234))
    await make_agent(client, registry, retry=RetryPolicy(sleep=sleep)).run("hi")
    assert waits == [1.234]


async def test_our_retries_are_the_only_retries(
    fake: FakeResponsesServer, client: openai.AsyncOpenAI, registry: ConversationRegistry
) -> None:
    fake.faults.extend([Fault("503")] * 3)
    policy = RetryPolicy(max_attempts=2, base=0.001, cap=0.001)
    with pytest.raises(openai.InternalServerError):
        await make_agent(client, registry, retry=policy).run("hi")
    assert len(fake.requests) == 2


async def test_a_400_other_than_conversation_locked_is_not_retried(
    fake: FakeResponsesServer, client: openai.AsyncOpenAI, registry: ConversationRegistry
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await make_agent(client, registry).run("hi", previous_response_id="resp_unknown")
    assert info.value.code == "previous_response_not_found"
    assert len(fake.requests) == 1


async def test_a_timeout_before_the_first_byte_is_retried(
    fake: FakeResponsesServer, registry: ConversationRegistry
) -> None:
    fake.faults.append(Fault("stall"))
    async with openai.AsyncOpenAI(base_url=fake.base_url, api_key="k", timeout=0.3) as client:
        result = await make_agent(client, registry).run("hi")
    assert result.final_output == "echo: hi"


async def test_a_break_after_events_were_shown_is_surfaced_not_retried(
    fake: FakeResponsesServer, client: openai.AsyncOpenAI, registry: ConversationRegistry
) -> None:
    fake.model = lambda request: [Text("half an answer"), Break()]
    shown: list[str] = []

    async def consume() -> None:
        async for event in make_agent(client, registry).stream("hi"):
            if isinstance(event, TextDelta):
                shown.append(event.text)

    with pytest.raises(StreamInterruptedError):
        await consume()
    assert "".join(shown) == "half an answer"
    assert len(fake.requests) == 1


async def test_hundreds_of_tool_rounds_with_faults_and_the_lock_race_surface_no_error(
    client: openai.AsyncOpenAI, registry: ConversationRegistry
) -> None:
    model = call_then_answer(Call("add", {"a": 1, "b": 2}))
    with FakeResponsesServer(model, lock_release="after_body", release_delay=0.003) as fake:
        async with openai.AsyncOpenAI(base_url=fake.base_url, api_key="k") as c:
            agent = make_agent(c, registry)
            cid = fake.create_conversation()
            kinds: list[Any] = ["429", "503", "locked", "drop"]
            for round_ in range(150):
                if round_ % 3 == 0:
                    fake.faults.append(Fault(kinds[round_ % 4]))
                result = await agent.run(f"round {round_}", conversation=cid)
                assert result.final_output == "Results: 3.0"
            await asyncio.sleep(0.02)
            assert fake.violations == []
            assert fake.unanswered_calls(cid) == []
            assert fake.max_in_flight == 1
            # the race is real: the server did turn follow-ups away, and we retried them
            assert fake.locked_rejections > 50
