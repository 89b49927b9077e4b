"""The runtime against the real turnstream server over loopback (issue 4's acceptance).

Everything here goes through the runtime's public API and a real uvicorn on a
loopback port (`tests/livesrv.py`): the `echo` model answers by rule, the `scripted`
model plays exactly what a test queues (and falls back to echo), `echo-slow` streams
a word every 20 ms. What the server stored is read back through the SDK, so each
test checks both what the caller saw and what the conversation holds.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import openai
import pytest

from tests.livesrv import LiveServer, spawn_server
from turnstream.engine.deltas import FinishDelta, ItemEndDelta, OutputTextDelta, ToolCallDelta
from turnstream.providers.base import GenerationRequest
from turnstream.runtime import (
    ConversationRegistry,
    RunCompleted,
    RunEvent,
    ToolCallReady,
    ToolCallStarted,
    ToolResult,
    TurnCompleted,
    TurnStarted,
    tool,
)
from turnstream.runtime import TextDelta as RuntimeTextDelta

from .helpers import (
    add,
    assert_paired,
    call_script,
    collect,
    conversation_items,
    make_agent,
    result_of,
    shape,
)
from .server_taps import StatusCounter, tap

EXAMPLE = Path(__file__).parents[2] / "examples" / "minimal_responder.py"

pytestmark = pytest.mark.usefixtures("over_each_transport")
"""Every test here runs over HTTP and over WebSocket (issue 11's acceptance)."""


# -- tools -----------------------------------------------------------------------------

ALL_THREE = threading.Barrier(3, timeout=60)  # a ceiling: tools run one by one never meet
"""The slow tools meet here before sleeping: one that ran alone would break it."""


@tool
def slow_a() -> str:
    """Sleep 200 ms in a worker thread (a blocking sync tool)."""
    ALL_THREE.wait()
    time.sleep(0.2)
    return "a done"


@tool
def slow_b() -> str:
    """Sleep 200 ms in a worker thread."""
    ALL_THREE.wait()
    time.sleep(0.2)
    return "b done"


@tool
async def slow_c() -> str:
    """Sleep 200 ms on the loop (an async tool)."""
    await asyncio.to_thread(ALL_THREE.wait)
    await asyncio.sleep(0.2)
    return "c done"


@tool
def explode() -> str:
    """Always fails."""
    raise ValueError("boom")


@tool(timeout=0.1)
async def dawdle() -> str:
    """Never finishes on its own."""
    await asyncio.Event().wait()
    return "too late"


# -- the acceptance list ---------------------------------------------------------------


async def test_a_run_without_tools_streams_the_echo_and_stores_one_exchange(
    server_client: openai.AsyncOpenAI,
) -> None:
    cid = (await server_client.conversations.create()).id
    events = await collect(make_agent(server_client, tools=[]), "hello there", conversation=cid)
    result = result_of(events)
    assert "".join(e.text for e in events if isinstance(e, RuntimeTextDelta)) == "hello there"
    assert result.final_output == "hello there"
    assert result.turns == 1
    assert result.usage.output_tokens > 0
    assert shape(await conversation_items(server_client, cid)) == ["user", "assistant"]


async def test_one_tool_round_trip_feeds_the_result_back(
    server_client: openai.AsyncOpenAI,
) -> None:
    cid = (await server_client.conversations.create()).id
    events = await collect(make_agent(server_client), 'add {"a": 2, "b": 3}', conversation=cid)
    ready = next(e for e in events if isinstance(e, ToolCallReady))
    assert (ready.name, ready.arguments) == ("add", {"a": 2, "b": 3})
    tool_result = next(e for e in events if isinstance(e, ToolResult))
    assert (tool_result.output, tool_result.is_error) == ("5.0", False)
    result = result_of(events)
    assert result.final_output == "Tool results: 5.0"
    assert result.turns == 2
    items = await conversation_items(server_client, cid)
    assert shape(items) == ["user", "call:add", "output", "assistant"]
    assert items[2] == {**items[2], "call_id": ready.call_id, "output": "5.0"}


async def test_three_parallel_200ms_tools_run_at_once_not_one_after_another(
    server_client: openai.AsyncOpenAI,
) -> None:
    agent = make_agent(server_client, tools=[slow_a, slow_b, slow_c])
    cid = (await server_client.conversations.create()).id
    stamps: list[tuple[float, RunEvent]] = []
    async for event in agent.stream("slow_a slow_b slow_c", conversation=cid):
        stamps.append((time.monotonic(), event))
    events = [e for _, e in stamps]
    assert [e.name for e in events if isinstance(e, ToolCallReady)] == [
        "slow_a",
        "slow_b",
        "slow_c",
    ]
    first_end = next(t for t, e in stamps if isinstance(e, TurnCompleted))
    results = [(t, e) for t, e in stamps if isinstance(e, ToolResult)]
    assert sorted(e.output for _, e in results) == ["a done", "b done", "c done"]
    # all three met at the barrier, so the phase took one 200 ms sleep, not three
    tool_phase = max(t for t, _ in results) - first_end
    assert tool_phase >= 0.19, f"tool phase took {tool_phase:.3f} s"
    assert result_of(events).final_output == "Tool results: a done; b done; c done"
    items = await conversation_items(server_client, cid)
    assert shape(items) == [
        "user",
        "call:slow_a",
        "call:slow_b",
        "call:slow_c",
        "output",
        "output",
        "output",
        "assistant",
    ]
    assert_paired(items)


async def test_a_tool_that_raises_answers_its_call_with_the_error(
    server_client: openai.AsyncOpenAI,
) -> None:
    cid = (await server_client.conversations.create()).id
    events = await collect(make_agent(server_client, tools=[explode]), "explode", conversation=cid)
    tool_result = next(e for e in events if isinstance(e, ToolResult))
    assert tool_result.is_error
    assert tool_result.output == "Error: tool 'explode' raised ValueError: boom"
    assert result_of(events).final_output == f"Tool results: {tool_result.output}"
    assert_paired(await conversation_items(server_client, cid))


async def test_an_unknown_tool_gets_an_output_naming_the_available_tools(
    live_server: LiveServer, server_client: openai.AsyncOpenAI
) -> None:
    assert live_server.scripted is not None
    live_server.scripted.push(call_script("teleport", '{"to": "mars"}'))
    cid = (await server_client.conversations.create()).id
    events = await collect(
        make_agent(server_client, model="scripted"), "go to mars", conversation=cid
    )
    tool_result = next(e for e in events if isinstance(e, ToolResult))
    assert tool_result.is_error
    assert tool_result.output == "Error: unknown tool 'teleport'; available tools: add"
    assert result_of(events).final_output == f"Tool results: {tool_result.output}"
    items = await conversation_items(server_client, cid)
    assert shape(items) == ["user", "call:teleport", "output", "assistant"]
    assert_paired(items)


async def test_invalid_arguments_are_explained_and_the_corrected_call_succeeds(
    live_server: LiveServer, server_client: openai.AsyncOpenAI
) -> None:
    assert live_server.scripted is not None
    live_server.scripted.push(
        call_script("add", '{"a": "two", "b": 3}'), call_script("add", '{"a": 2, "b": 3}')
    )
    cid = (await server_client.conversations.create()).id
    events = await collect(make_agent(server_client, model="scripted"), "2 + 3?", conversation=cid)
    first, second = [e for e in events if isinstance(e, ToolResult)]
    assert first.is_error
    assert "invalid arguments for tool 'add'" in first.output
    assert "- a: Input should be a valid number" in first.output
    assert "'two'" in first.output
    assert (second.output, second.is_error) == ("5.0", False)
    result = result_of(events)
    assert (result.turns, result.final_output) == (3, "Tool results: 5.0")
    # the model saw the validation details before it corrected itself
    retry_context = live_server.scripted.requests[1].items
    assert retry_context[-1]["type"] == "function_call_output"
    assert "valid number" in retry_context[-1]["output"]
    items = await conversation_items(server_client, cid)
    assert shape(items) == ["user", "call:add", "output", "call:add", "output", "assistant"]
    assert_paired(items)


async def test_a_tool_timeout_answers_the_call_with_a_timeout(
    server_client: openai.AsyncOpenAI,
) -> None:
    cid = (await server_client.conversations.create()).id
    events = await collect(make_agent(server_client, tools=[dawdle]), "dawdle", conversation=cid)
    tool_result = next(e for e in events if isinstance(e, ToolResult))
    assert tool_result.is_error
    assert tool_result.output == "Error: tool 'dawdle' timed out after 0.1 s"
    assert result_of(events).final_output == f"Tool results: {tool_result.output}"
    assert_paired(await conversation_items(server_client, cid))


async def test_cancelling_mid_stream_then_the_next_turn_on_the_conversation_succeeds(
    live_server: LiveServer, server_client: openai.AsyncOpenAI
) -> None:
    counter = tap(live_server, StatusCounter)
    registry = ConversationRegistry()
    cid = (await server_client.conversations.create()).id
    slow = make_agent(server_client, model="echo-slow", tools=[], registry=registry)
    seen: list[RunEvent] = []
    three_deltas = asyncio.Event()

    async def consume() -> None:
        async for event in slow.stream(" ".join(["word"] * 200), conversation=cid):
            seen.append(event)
            if sum(isinstance(e, RuntimeTextDelta) for e in seen) == 3:
                three_deltas.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(three_deltas.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    started = next(e for e in seen if isinstance(e, TurnStarted))
    assert not any(isinstance(e, RunCompleted) for e in seen)

    # the same conversation takes the next turn at once (a lock still held by the
    # cancelled response is retried, never surfaced)
    result = await make_agent(server_client, registry=registry).run(
        'add {"a": 1, "b": 2}', conversation=cid
    )
    assert result.final_output == "Tool results: 3.0"
    cancelled = await server_client.responses.retrieve(started.response_id)
    assert cancelled.status == "cancelled"
    items = await conversation_items(server_client, cid)
    assert shape(items) == ["user", "call:add", "output", "assistant"]
    assert counter.unexpected() == {}, counter.counts
    assert counter.counts["400"] == counter.counts["400:conversation_locked"]


async def test_cancelling_mid_tool_owes_the_output_and_the_next_turn_sends_it_first(
    server_client: openai.AsyncOpenAI, live_server: LiveServer
) -> None:
    counter = tap(live_server, StatusCounter)
    registry = ConversationRegistry()
    tool_started = asyncio.Event()
    tool_cancelled = asyncio.Event()

    @tool
    async def wait_forever() -> str:
        """Never finishes on its own."""
        tool_started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            tool_cancelled.set()
            raise
        return "unreachable"

    agent = make_agent(server_client, tools=[wait_forever, add], registry=registry)
    cid = (await server_client.conversations.create()).id
    run = agent.stream("wait_forever", conversation=cid)
    seen: list[RunEvent] = []

    async def cancel_when_the_tool_runs() -> None:
        await tool_started.wait()
        run.cancel()

    canceller = asyncio.create_task(cancel_when_the_tool_runs())
    async with run:
        async for event in run:
            seen.append(event)
    await canceller
    assert run.cancelled
    assert tool_cancelled.is_set()
    call = next(e for e in seen if isinstance(e, ToolCallReady))
    owed = registry.owed(f"conv:{cid}")
    assert [o["call_id"] for o in owed] == [call.call_id]
    assert "cancelled" in owed[0]["output"]

    result = await agent.run('add {"a": 1, "b": 2}', conversation=cid)
    assert result.final_output == "Tool results: 3.0"
    assert registry.owed(f"conv:{cid}") == []
    items = await conversation_items(server_client, cid)
    assert shape(items) == [
        "user",
        "call:wait_forever",
        "output",
        "user",
        "call:add",
        "output",
        "assistant",
    ]
    assert items[2]["call_id"] == call.call_id
    assert_paired(items)
    assert counter.unexpected() == {}, counter.counts
    assert counter.counts["400"] == 0


async def test_the_turn_limit_asks_for_a_final_answer_without_tools(
    live_server: LiveServer, server_client: openai.AsyncOpenAI
) -> None:
    scripted = live_server.scripted
    assert scripted is not None
    scripted.push(call_script("add", '{"a": 1, "b": 1}'), call_script("add", '{"a": 2, "b": 2}'))
    cid = (await server_client.conversations.create()).id
    agent = make_agent(server_client, model="scripted", max_turns=3)
    result = await agent.run("keep adding", conversation=cid)
    assert (result.status, result.turns) == ("completed", 3)
    assert result.final_output == "Tool results: 4.0"
    assert [r.tool_choice for r in scripted.requests] == ["auto", "auto", "none"]
    assert [t["name"] for t in scripted.requests[-1].tools] == ["add"]
    assert_paired(await conversation_items(server_client, cid))


async def test_a_model_that_calls_tools_at_the_turn_limit_anyway_leaves_a_usable_conversation(
    live_server: LiveServer, server_client: openai.AsyncOpenAI
) -> None:
    scripted = live_server.scripted
    assert scripted is not None
    scripted.push(*(call_script("add", f'{{"a": {n}, "b": 1}}') for n in range(2)))
    cid = (await server_client.conversations.create()).id
    registry = ConversationRegistry()
    agent = make_agent(server_client, model="scripted", max_turns=2, registry=registry)
    result = await agent.run("keep adding", conversation=cid)
    assert (result.status, result.turns) == ("incomplete", 2)
    assert scripted.requests[-1].tool_choice == "none"
    owed = registry.owed(f"conv:{cid}")
    assert [o["output"] for o in owed] == [
        "Error: the tool was not run: the turn limit was reached."
    ]
    # the next run pays what is owed first, so the server accepts it
    follow_up = await agent.run("just say hi", conversation=cid)
    assert follow_up.status == "completed"
    assert_paired(await conversation_items(server_client, cid))


async def test_conversation_mode_sends_only_new_items_and_the_server_holds_the_rest(
    live_server: LiveServer, server_client: openai.AsyncOpenAI
) -> None:
    scripted = live_server.scripted
    assert scripted is not None
    cid = (await server_client.conversations.create()).id
    agent = make_agent(server_client, model="scripted")  # echo rules, requests recorded
    first = await collect(agent, 'add {"a": 1, "b": 2}', conversation=cid)
    second = await collect(agent, 'add {"a": 3, "b": 4}', conversation=cid)
    assert result_of(second).final_output == "Tool results: 7.0"
    ids = [e.response_id for e in [*first, *second] if isinstance(e, TurnStarted)]
    sent = [
        [
            shape([i.model_dump(mode="json")])[0]
            for i in (await server_client.responses.input_items.list(rid, order="asc")).data
        ]
        for rid in ids
    ]
    assert sent == [["user"], ["output"], ["user"], ["output"]]
    items = await conversation_items(server_client, cid)
    assert shape(items) == ["user", "call:add", "output", "assistant"] * 2
    assert_paired(items)
    # the model saw each item exactly once
    last_context = scripted.requests[-1].items
    assert shape(list(last_context)) == [
        "user",
        "call:add",
        "output",
        "assistant",
        "user",
        "call:add",
        "output",
    ]


async def test_previous_response_id_mode_chains_and_sends_only_new_items(
    server_client: openai.AsyncOpenAI, live_server: LiveServer
) -> None:
    scripted = live_server.scripted
    assert scripted is not None
    agent = make_agent(server_client, model="scripted")
    first = await collect(agent, 'add {"a": 1, "b": 2}')
    chained = result_of(first).last_response_id
    second = await collect(agent, 'add {"a": 3, "b": 4}', previous_response_id=chained)
    assert result_of(second).final_output == "Tool results: 7.0"
    ids = [e.response_id for e in [*first, *second] if isinstance(e, TurnStarted)]
    previous = [(await server_client.responses.retrieve(rid)).previous_response_id for rid in ids]
    assert previous == [None, ids[0], ids[1], ids[2]]
    for rid, expected in zip(ids, [["user"], ["output"], ["user"], ["output"]], strict=True):
        page = await server_client.responses.input_items.list(rid, order="asc")
        assert shape([i.model_dump(mode="json") for i in page.data]) == expected
    assert shape(list(scripted.requests[-1].items)) == [
        "user",
        "call:add",
        "output",
        "assistant",
        "user",
        "call:add",
        "output",
    ]
    assert scripted.requests[-1].instructions == "Be brief."


async def test_local_replay_resends_history_and_the_server_stores_nothing(
    server_client: openai.AsyncOpenAI, live_server: LiveServer
) -> None:
    scripted = live_server.scripted
    assert scripted is not None
    agent = make_agent(server_client, model="scripted", store=False)
    first = await collect(agent, 'add {"a": 1, "b": 2}')
    history = result_of(first).history
    assert shape(history) == ["user", "call:add", "output", "assistant"]
    second = await collect(agent, 'add {"a": 3, "b": 4}', history=history)
    result = result_of(second)
    assert result.final_output == "Tool results: 7.0"
    assert shape(result.history) == ["user", "call:add", "output", "assistant"] * 2
    assert_paired(result.history)
    for rid in [e.response_id for e in [*first, *second] if isinstance(e, TurnStarted)]:
        with pytest.raises(openai.NotFoundError):
            await server_client.responses.retrieve(rid)
    contexts = [shape(list(r.items)) for r in scripted.requests]
    assert contexts == [
        ["user"],
        ["user", "call:add", "output"],
        ["user", "call:add", "output", "assistant", "user"],
        ["user", "call:add", "output", "assistant", "user", "call:add", "output"],
    ]


async def test_two_concurrent_streams_on_one_conversation_take_turns(
    live_server: LiveServer, server_client: openai.AsyncOpenAI
) -> None:
    counter = tap(live_server, StatusCounter)
    cid = (await server_client.conversations.create()).id
    registry = ConversationRegistry()
    agents = [make_agent(server_client, model="echo-slow", tools=[], registry=registry)] * 2
    spans: dict[str, list[float]] = {}

    async def one(text: str) -> str:
        async for event in agents[0].stream(text, conversation=cid):
            if isinstance(event, TurnStarted | TurnCompleted):
                spans.setdefault(text, []).append(time.monotonic())
            if isinstance(event, RunCompleted):
                return event.result.final_output
        raise AssertionError("no RunCompleted")

    outs = await asyncio.gather(one("first run here"), one("second run here"))
    assert outs == ["first run here", "second run here"]
    (_, first_end), (second_start, _) = sorted(spans.values())
    assert first_end <= second_start, spans
    items = await conversation_items(server_client, cid)
    assert shape(items) == ["user", "assistant", "user", "assistant"]
    assert counter.counts["400"] == 0, counter.counts


async def test_events_reach_the_caller_while_the_model_is_still_streaming(
    live_server: LiveServer, server_client: openai.AsyncOpenAI
) -> None:
    """The script blocks until the test has seen the event: no buffering can pass."""
    scripted = live_server.scripted
    assert scripted is not None
    text_seen = threading.Event()
    call_seen = threading.Event()
    released: list[bool] = []

    def gate(flag: threading.Event) -> Callable[[GenerationRequest], Awaitable[None]]:
        async def wait(_: GenerationRequest) -> None:
            released.append(await asyncio.to_thread(flag.wait, 5))

        return wait

    scripted.push(
        [
            OutputTextDelta("thinking "),
            gate(text_seen),
            ItemEndDelta(),
            ToolCallDelta(index=1, name="add"),
            gate(call_seen),
            ToolCallDelta(index=1, arguments='{"a": 1, "b": 2}'),
            ItemEndDelta(),
            FinishDelta(),
        ]
    )
    cid = (await server_client.conversations.create()).id
    kinds: list[type] = []
    async for event in make_agent(server_client, model="scripted").stream("go", conversation=cid):
        kinds.append(type(event))
        if isinstance(event, RuntimeTextDelta):
            text_seen.set()
        if isinstance(event, ToolCallStarted):
            call_seen.set()
    assert released == [True, True], "an event arrived only after the model had finished"
    assert kinds.index(RuntimeTextDelta) < kinds.index(ToolCallStarted) < kinds.index(TurnCompleted)
    assert kinds[-1] is RunCompleted


# -- the example -----------------------------------------------------------------------


def test_the_minimal_responder_example_runs_against_turnstream_serve(tmp_path: Path) -> None:
    """`examples/minimal_responder.py` as a user runs it, against `turnstream serve`."""
    server = spawn_server(tmp_path / "example.db")
    try:
        done = subprocess.run(
            [sys.executable, str(EXAMPLE), "--base-url", server.base_url, 'add {"a": 2, "b": 3}'],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert '[calling add({"a":2,"b":3})]' in lines
    assert "[add -> 5.0]" in lines  # the tool ran
    assert "Tool results: 5.0" in lines  # its result went back; the answer streamed as deltas
    assert lines[-1].startswith("[done in 2 turn(s), conversation conv_")
