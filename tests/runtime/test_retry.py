"""Retries: which failures are resent, how long to wait, and the lock race under faults.

Faults come from the real server's fault settings on a seeded schedule (`seed_for`),
from `FaultProxy` for dropped connections, and from `WireFaults` for what no server
of ours produces (a stream that breaks, ends early, or carries garbage).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.livesrv import LiveServer, running_server
from turnstream.providers.base import GenerationRequest
from turnstream.runtime import (
    ConversationRegistry,
    RetryPolicy,
    StreamInterruptedError,
    TextDelta,
)
from turnstream.runtime.retry import retry_after
from turnstream.server.settings import FaultSettings

from .fault_proxy import FaultProxy
from .helpers import (
    EAGER_RETRY,
    assert_paired,
    conversation_items,
    make_agent,
    seed_for,
    shape,
)
from .server_taps import StatusCounter, holding_locks, tap
from .wire_faults import BREAK, WireFaults, call, completed, created, text

TWICE_THEN_OK = [True, True, False]


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


def faulty(tmp_path: Path, **faults: Any) -> Any:
    return running_server(tmp_path / "faults.db", faults=FaultSettings(**faults))


@pytest.mark.parametrize(
    ("fault", "answer"),
    [("rate_limit", "429"), ("unavailable", "503"), ("conversation_locked", "400")],
)
async def test_a_fault_before_the_first_event_is_retried(
    tmp_path: Path, fault: str, answer: str
) -> None:
    seed = seed_for(TWICE_THEN_OK, 0.5)
    with faulty(tmp_path, **{fault: 0.5}, seed=seed) as live:
        counter = tap(live, StatusCounter)
        async with openai.AsyncOpenAI(base_url=live.base_url, api_key="k") as client:
            result = await make_agent(client, tools=[]).run("hi")
    assert result.final_output == "hi"
    assert (counter.counts[answer], counter.counts["200"]) == (2, 1)


async def test_a_connection_dropped_before_the_first_byte_is_retried(
    live_server: LiveServer,
) -> None:
    seed = seed_for(TWICE_THEN_OK, 0.5)
    async with (
        FaultProxy(live_server.port, drop_rate=0.5, seed=seed) as proxy,
        openai.AsyncOpenAI(base_url=proxy.base_url, api_key="k") as client,
    ):
        result = await make_agent(client, tools=[]).run("hi")
    assert result.final_output == "hi"
    assert (proxy.requests, proxy.drops) == (3, 2)


async def test_the_servers_retry_after_is_honoured(tmp_path: Path) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    seed = seed_for([True, False], 0.5)
    with faulty(tmp_path, rate_limit=0.5, retry_after_ms=1234, seed=seed) as live:
        async with openai.AsyncOpenAI(base_url=live.base_url, api_key="k") as client:
            await make_agent(client, retry=RetryPolicy(sleep=sleep)).run("hi")
    assert waits == [1.234]


async def test_our_retries_are_the_only_retries(tmp_path: Path) -> None:
    with faulty(tmp_path, unavailable=1.0) as live:
        counter = tap(live, StatusCounter)
        async with openai.AsyncOpenAI(base_url=live.base_url, api_key="k") as client:
            policy = RetryPolicy(max_attempts=2, base=0.001, cap=0.001)
            with pytest.raises(openai.InternalServerError):
                await make_agent(client, retry=policy).run("hi")
    assert counter.counts["503"] == 2


async def test_a_400_other_than_conversation_locked_is_not_retried(
    live_server: LiveServer,
) -> None:
    counter = tap(live_server, StatusCounter)
    async with openai.AsyncOpenAI(base_url=live_server.base_url, api_key="k") as client:
        with pytest.raises(openai.BadRequestError) as info:
            await make_agent(client).run("hi", previous_response_id="resp_unknown")
    assert info.value.code == "previous_response_not_found"
    assert counter.counts["400"] == 1


async def test_a_timeout_before_the_first_byte_is_retried(tmp_path: Path) -> None:
    # headers wait for the first delta (first_delta_wait), and the first response
    # stalls until its retry has arrived: the client must time out to get an answer
    with running_server(tmp_path / "stall.db", first_delta_wait=60) as live:
        assert live.scripted is not None
        retried = asyncio.Event()

        async def stall(_: GenerationRequest) -> None:
            await retried.wait()

        def arrive(_: GenerationRequest) -> None:
            retried.set()

        live.scripted.push([stall], [arrive, *call_free_echo()])
        async with openai.AsyncOpenAI(base_url=live.base_url, api_key="k", timeout=1.0) as client:
            result = await make_agent(client, model="scripted", tools=[]).run("hi")
    assert result.final_output == "hi"
    # the stalled request was retried; on a loaded machine a retry may time out as
    # well and be retried in turn (the scripted provider echoes any further one)
    assert len(live.scripted.requests) >= 2
    assert {str(r.items[-1]["content"]) for r in live.scripted.requests} == {
        str([{"type": "input_text", "text": "hi"}])
    }


def call_free_echo() -> list[Any]:
    from turnstream.engine.deltas import FinishDelta, ItemEndDelta
    from turnstream.engine.deltas import OutputTextDelta as ModelText

    return [ModelText("hi"), ItemEndDelta(), FinishDelta()]


# -- wire faults no server of ours produces ---------------------------------------------


async def test_a_break_after_events_were_shown_is_surfaced_not_retried() -> None:
    wire = WireFaults([created(), text("half an "), text("answer"), BREAK])
    shown: list[str] = []

    async def consume(client: openai.AsyncOpenAI) -> None:
        async for event in make_agent(client).stream("hi"):
            if isinstance(event, TextDelta):
                shown.append(event.text)

    async with wire.client() as client:
        with pytest.raises(StreamInterruptedError, match="broke off"):
            await consume(client)
    assert "".join(shown) == "half an answer"
    assert len(wire.requests) == 1


async def test_a_body_that_ends_without_a_terminal_event_is_surfaced() -> None:
    wire = WireFaults([created(), text("cut")])
    async with wire.client() as client:
        with pytest.raises(StreamInterruptedError, match="without a terminal event"):
            await make_agent(client).run("hi")
    assert len(wire.requests) == 1


async def test_a_body_that_ends_before_its_first_event_is_resent() -> None:
    wire = WireFaults([], [b": keep-alive\n\n", BREAK], [created(), text("ok"), completed()])
    async with wire.client() as client:
        result = await make_agent(client).run("hi")
    assert result.last_response_id == "resp_1"
    assert len(wire.requests) == 3


async def test_frames_that_are_not_json_objects_are_skipped() -> None:
    garbage = [b"data: <html>502 Bad Gateway</html>\n\n", b"data: [1, 2]\n\n", b"data: [DONE]\n\n"]
    wire = WireFaults([created(), garbage[0], text("fine"), *garbage[1:], completed()])
    async with wire.client() as client:
        events = [event async for event in make_agent(client).stream("hi")]
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["fine"]


async def test_a_follow_up_that_breaks_leaves_the_outputs_it_carried_in_doubt() -> None:
    """The server may have kept the broken turn: the next run asks before it owes them."""
    registry = ConversationRegistry()
    asked = [created("resp_1"), call("call_1"), completed("resp_1")]
    wire = WireFaults(asked, [created("resp_2"), text("Tool"), BREAK])
    async with wire.client() as client:
        agent = make_agent(client, registry=registry)
        with pytest.raises(StreamInterruptedError):
            await agent.run("add", conversation="conv_1")
    assert registry.owed("conv:conv_1") == []
    doubt = registry.take_doubt("conv:conv_1")
    assert doubt is not None
    assert doubt.response_id == "resp_2"
    sent = [{"type": "function_call_output", "call_id": "call_1", "output": "3.0"}]
    assert list(doubt.sent) == sent
    assert wire.requests[1]["input"] == sent


# -- the lock race ------------------------------------------------------------------------


@pytest.fixture
def after_body_server(tmp_path: Path) -> Iterator[LiveServer]:
    faults = FaultSettings(
        rate_limit=0.05, unavailable=0.05, conversation_locked=0.05, retry_after_ms=1, seed=11
    )
    with running_server(
        tmp_path / "race.db", lock_release="after_body", lock_release_delay=0, faults=faults
    ) as live:
        yield live


async def test_hundreds_of_tool_rounds_with_faults_and_the_lock_race_surface_no_error(
    after_body_server: LiveServer,
) -> None:
    """Every follow-up meets a held lock (`LockHold`), and the seeded fault schedule
    adds 429s, 503s and injected lock refusals: nothing reaches the caller, every call
    is answered once, and the conversation holds each round exactly once."""
    rounds = 100
    counter = tap(after_body_server, StatusCounter)
    with holding_locks(after_body_server) as hold:
        async with openai.AsyncOpenAI(base_url=after_body_server.base_url, api_key="k") as c:
            agent = make_agent(c, retry=EAGER_RETRY)
            cid = (await c.conversations.create()).id
            for n in range(rounds):
                result = await agent.run(f'add {{"a": {n}, "b": 2}}', conversation=cid)
                assert result.final_output == f"Tool results: {float(n + 2)}"
            items = await conversation_items(c, cid)
    assert shape(items) == ["user", "call:add", "output", "assistant"] * rounds
    assert_paired(items)
    assert counter.unexpected("429", "503") == {}, counter.counts
    assert hold.released_by_refusal > 0  # the hold was in place: the race was forced
