"""Shared by the runtime's tests against the real server: agents, readers, schedules."""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator, Sequence
from typing import Any

import openai

from turnstream.engine.deltas import FinishDelta, ItemEndDelta, ToolCallDelta
from turnstream.runtime import (
    Agent,
    ConversationRegistry,
    RetryPolicy,
    RunCompleted,
    RunEvent,
    RunResult,
    tool,
)

QUICK_RETRY = RetryPolicy(max_attempts=200, base=0.001, cap=0.02)
"""Honours the server's retry hints; its own backoff is tiny so tests stay quick. The
attempts are many on purpose: a test that needs a retry gets one however slow the
machine is, and only a request that can never succeed runs out."""

EAGER_RETRY = RetryPolicy(max_attempts=1000, base=0.001, cap=0.01, max_retry_after=0)
"""Ignores the server's hints (they only say "later") and retries every few ms, for
tests that provoke hundreds of refusals."""


@tool
def add(a: float, b: float) -> float:
    """Add two numbers.

    Args:
        a: The first addend.
        b: The second addend.
    """
    return a + b


TRANSPORT: list[str] = ["http"]
"""The transport `make_agent` gives its agents; `over_each_transport` switches it."""

OPEN_AGENTS: list[Agent] = []
"""Agents made by `make_agent`, closed by `over_each_transport` after the test."""


@contextlib.asynccontextmanager
async def agents_over(transport: str) -> AsyncIterator[str]:
    """`make_agent` gives agents on `transport` inside; they are closed on exit."""
    TRANSPORT[0] = transport
    try:
        yield transport
    finally:
        TRANSPORT[0] = "http"
        agents, OPEN_AGENTS[:] = list(OPEN_AGENTS), []
        for agent in agents:
            await agent.aclose()


def make_agent(client: openai.AsyncOpenAI, **kw: Any) -> Agent:
    kw.setdefault("transport", TRANSPORT[0])
    kw.setdefault("model", "echo")
    kw.setdefault("tools", [add])
    kw.setdefault("registry", ConversationRegistry())
    kw.setdefault("retry", QUICK_RETRY)
    kw.setdefault("instructions", "Be brief.")
    agent = Agent(client=client, **kw)
    OPEN_AGENTS.append(agent)
    return agent


async def collect(agent: Agent, text: str, **kw: Any) -> list[RunEvent]:
    return [event async for event in agent.stream(text, **kw)]


def result_of(events: list[RunEvent]) -> RunResult:
    last = events[-1]
    assert isinstance(last, RunCompleted), events[-3:]
    return last.result


async def conversation_items(client: openai.AsyncOpenAI, cid: str) -> list[dict[str, Any]]:
    items = []
    async for item in client.conversations.items.list(cid, order="asc", limit=100):
        items.append(item.model_dump(mode="json", exclude_none=True))
    return items


async def input_items(client: openai.AsyncOpenAI, response_id: str) -> list[dict[str, Any]]:
    page = await client.responses.input_items.list(response_id, order="asc")
    return [item.model_dump(mode="json", exclude_none=True) for item in page.data]


def shape(items: Sequence[dict[str, Any]]) -> list[str]:
    """`user`, `assistant`, `call:<name>`, `output` per item, for readable asserts."""
    out = []
    for item in items:
        kind = item.get("type")
        if kind == "function_call":
            out.append(f"call:{item['name']}")
        elif kind == "function_call_output":
            out.append("output")
        else:
            out.append(str(item.get("role")))
    return out


def assert_paired(items: Sequence[dict[str, Any]]) -> None:
    """Every call has exactly one output after it, and no output lacks a call."""
    calls = [i["call_id"] for i in items if i.get("type") == "function_call"]
    outputs = [i["call_id"] for i in items if i.get("type") == "function_call_output"]
    assert len(calls) == len(set(calls)), f"duplicate calls: {calls}"
    assert sorted(calls) == sorted(outputs), f"calls {calls} vs outputs {outputs}"
    for call_id in calls:
        at_call = next(n for n, i in enumerate(items) if i.get("call_id") == call_id)
        at_output = next(
            n
            for n, i in enumerate(items)
            if i.get("type") == "function_call_output" and i["call_id"] == call_id
        )
        assert at_call < at_output


def call_script(name: str, arguments: str) -> list[Any]:
    """A scripted response that calls one tool."""
    return [ToolCallDelta(index=0, name=name, arguments=arguments), ItemEndDelta(), FinishDelta()]


def seed_for(pattern: Sequence[bool], rate: float) -> int:
    """A seed whose first draws hit (`random() < rate`) exactly as `pattern` says.

    The server's fault injection and `FaultProxy` draw once per request from a
    seeded `random.Random`, so this makes "fail twice, then succeed" a schedule
    rather than a chance.
    """
    for seed in range(100_000):
        rng = random.Random(seed)
        if [rng.random() < rate for _ in pattern] == list(pattern):
            return seed
    raise AssertionError(f"no seed gives {pattern}")
