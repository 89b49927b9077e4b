"""The runtime against the real turnstream server over loopback (issue 4's acceptance).

Everything here goes through the runtime's public API and a real uvicorn on a
loopback port (`tests/livesrv.py`): the `echo` model answers by rule, the `scripted`
model plays exactly what a test queues (and falls back to echo), `echo-slow` streams
a word every 20 ms. What the server stored is read back through the SDK, so each
test checks both what the caller saw and what the conversation holds.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.livesrv import LiveServer, running_server, spawn_server
from turnstream.engine.deltas import FinishDelta, ItemEndDelta, TextDelta, ToolCallDelta
from turnstream.providers.base import GenerationRequest
from turnstream.runtime import (
    Agent,
    ConversationRegistry,
    RetryPolicy,
    RunCompleted,
    RunEvent,
    RunResult,
    ToolCallReady,
    ToolCallStarted,
    ToolResult,
    TurnCompleted,
    TurnStarted,
    tool,
)
from turnstream.runtime import TextDelta as RuntimeTextDelta
from turnstream.server.settings import FaultSettings

from .fault_proxy import FaultProxy

EXAMPLE = Path(__file__).parents[2] / "examples" / "minimal_responder.py"

# Honours the server's retry hints; its own backoff is tiny so tests stay quick.
QUICK_RETRY = RetryPolicy(max_attempts=30, base=0.001, cap=0.01)


# -- tools -----------------------------------------------------------------------------


@tool
def add(a: float, b: float) -> float:
    """Add two numbers.

    Args:
        a: The first addend.
        b: The second addend.
    """
    return a + b


@tool
def slow_a() -> str:
    """Sleep 200 ms in a worker thread (a blocking sync tool)."""
    time.sleep(0.2)
    return "a done"


@tool
def slow_b() -> str:
    """Sleep 200 ms in a worker thread."""
    time.sleep(0.2)
    return "b done"


@tool
async def slow_c() -> str:
    """Sleep 200 ms on the loop (an async tool)."""
    await asyncio.sleep(0.2)
    return "c done"


@tool
def explode() -> str:
    """Always fails."""
    raise ValueError("boom")


@tool(timeout=0.1)
async def dawdle() -> str:
    """Takes far longer than its timeout."""
    await asyncio.sleep(5)
    return "too late"


# -- harness ---------------------------------------------------------------------------


class StatusCounter:
    """ASGI wrapper counting how `POST /v1/responses` was answered.

    Keys: the status as a string, `"400:<code>"` for 400s, and for
    `conversation_locked` whether the server sent `x-should-retry` (the injected
    fault does; the raw `after_body` race does not, like OpenAI).
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != "/v1/responses":
            await self.app(scope, receive, send)
            return
        seen: dict[str, Any] = {"status": 0, "headers": {}, "body": b""}

        async def tee(message: Any) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                seen["headers"] = dict(message.get("headers", []))
            elif message["type"] == "http.response.body" and seen["status"] >= 400:
                seen["body"] += message.get("body", b"")
            await send(message)

        try:
            await self.app(scope, receive, tee)
        finally:
            self._count(seen)

    def _count(self, seen: dict[str, Any]) -> None:
        keys = [str(seen["status"])]
        if seen["status"] == 400:
            try:
                code = json.loads(seen["body"])["error"]["code"]
            except (ValueError, KeyError, TypeError):
                code = None
            keys.append(f"400:{code}")
            if code == "conversation_locked":
                hinted = seen["headers"].get(b"x-should-retry") == b"true"
                keys.append("locked:injected" if hinted else "locked:race")
        with self.lock:
            self.counts.update(keys)

    def unexpected(self, *allowed: str) -> dict[str, int]:
        """Error answers other than `conversation_locked` and the `allowed` statuses."""
        with self.lock:
            counts = Counter(self.counts)
        counts["400"] -= counts["400:conversation_locked"]
        return {
            key: n
            for key, n in counts.items()
            if n and key[:1] in "45" and ":" not in key and key not in allowed
        }


def count_statuses(live: LiveServer) -> StatusCounter:
    """Wrap the running server's app (the recorder looks its inner app up per request)."""
    counter = StatusCounter(live.recorder.app)
    live.recorder.app = counter
    return counter


@pytest.fixture
async def server_client(live_server: LiveServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=live_server.base_url, api_key="test", timeout=20
    ) as client:
        yield client


def make_agent(client: openai.AsyncOpenAI, **kw: Any) -> Agent:
    kw.setdefault("model", "echo")
    kw.setdefault("tools", [add])
    kw.setdefault("registry", ConversationRegistry())
    kw.setdefault("retry", QUICK_RETRY)
    return Agent(client=client, instructions="Be brief.", **kw)


async def collect(agent: Agent, text: str, **kw: Any) -> list[RunEvent]:
    return [event async for event in agent.stream(text, **kw)]


def result_of(events: list[RunEvent]) -> RunResult:
    last = events[-1]
    assert isinstance(last, RunCompleted), events[-3:]
    return last.result


async def conversation_items(client: openai.AsyncOpenAI, cid: str) -> list[dict[str, Any]]:
    page = await client.conversations.items.list(cid, order="asc", limit=100)
    return [item.model_dump(mode="json", exclude_none=True) for item in page.data]


def shape(items: list[dict[str, Any]]) -> list[str]:
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


def assert_paired(items: list[dict[str, Any]]) -> None:
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
    return [ToolCallDelta(index=0, name=name, arguments=arguments), ItemEndDelta(), FinishDelta()]


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


async def test_three_parallel_200ms_tools_take_about_200ms_not_600(
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
    tool_phase = max(t for t, _ in results) - first_end
    assert 0.19 <= tool_phase < 0.45, f"tool phase took {tool_phase:.3f} s"
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
    started = time.monotonic()
    events = await collect(make_agent(server_client, tools=[dawdle]), "dawdle", conversation=cid)
    assert time.monotonic() - started < 2
    tool_result = next(e for e in events if isinstance(e, ToolResult))
    assert tool_result.is_error
    assert tool_result.output == "Error: tool 'dawdle' timed out after 0.1 s"
    assert result_of(events).final_output == f"Tool results: {tool_result.output}"
    assert_paired(await conversation_items(server_client, cid))


async def test_cancelling_mid_stream_then_the_next_turn_on_the_conversation_succeeds(
    live_server: LiveServer, server_client: openai.AsyncOpenAI
) -> None:
    counter = count_statuses(live_server)
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
    counter = count_statuses(live_server)
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
    counter = count_statuses(live_server)
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
            TextDelta("thinking "),
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


# -- resilience ------------------------------------------------------------------------


async def _tool_rounds(
    base_url: str, conversations: int, rounds: int, *, retry: RetryPolicy = QUICK_RETRY
) -> tuple[int, float]:
    """`conversations` conversations in parallel, `rounds` tool rounds each, in order.

    Returns (rounds completed, seconds). Any error surfaced to the caller fails.
    """
    async with openai.AsyncOpenAI(base_url=base_url, api_key="test", timeout=20) as client:
        agent = make_agent(client, retry=retry)

        async def conversation(number: int) -> int:
            # conversations.create is not the runtime's call: retry it by hand
            for _ in range(50):
                try:
                    cid = (await client.conversations.create()).id
                    break
                except openai.APIConnectionError:
                    await asyncio.sleep(0.001)
            else:
                raise AssertionError("could not create a conversation")
            done = 0
            for n in range(rounds):
                result = await agent.run(f'add {{"a": {n}, "b": {number}}}', conversation=cid)
                assert result.final_output == f"Tool results: {float(n + number)}"
                assert result.turns == 2
                done += 1
            items = await conversation_items_all(client, cid)
            assert shape(items) == ["user", "call:add", "output", "assistant"] * rounds
            assert_paired(items)
            return done

        started = time.monotonic()
        counts = await asyncio.gather(*(conversation(n) for n in range(conversations)))
        return sum(counts), time.monotonic() - started


async def conversation_items_all(client: openai.AsyncOpenAI, cid: str) -> list[dict[str, Any]]:
    items = []
    async for item in client.conversations.items.list(cid, order="asc", limit=100):
        items.append(item.model_dump(mode="json", exclude_none=True))
    return items


@pytest.fixture
def after_body_server(tmp_path: Path) -> Iterator[LiveServer]:
    with running_server(
        tmp_path / "after_body.db", lock_release="after_body", lock_release_delay=0.05
    ) as live:
        yield live


async def test_after_body_lock_release_races_and_the_runtime_retries_it(
    after_body_server: LiveServer,
) -> None:
    """OpenAI's hosted behaviour: the lock outlives the body. The raw race must
    really happen here (counted server-side), and never reach the caller."""
    counter = count_statuses(after_body_server)
    done, _ = await _tool_rounds(after_body_server.base_url, conversations=2, rounds=5)
    assert done == 10
    assert counter.counts["locked:race"] > 0, counter.counts
    assert counter.unexpected() == {}, counter.counts


@pytest.fixture
def faulty_server(tmp_path: Path) -> Iterator[LiveServer]:
    faults = FaultSettings(
        rate_limit=0.03, unavailable=0.03, conversation_locked=0.03, retry_after_ms=2, seed=4
    )
    with running_server(
        tmp_path / "faulty.db", lock_release="after_body", lock_release_delay=0.05, faults=faults
    ) as live:
        yield live


@pytest.mark.timeout(300)
async def test_a_thousand_tool_rounds_through_every_fault_surface_no_error(
    faulty_server: LiveServer,
) -> None:
    """429 + retry-after-ms, 503, injected and raw `conversation_locked`, and
    connections dropped before the first byte: 1,000 rounds, nothing surfaces."""
    counter = count_statuses(faulty_server)
    async with FaultProxy(faulty_server.port, drop_rate=0.03, seed=7) as proxy:
        done, seconds = await _tool_rounds(proxy.base_url, conversations=20, rounds=50)
    print(f"\n1000 tool rounds in {seconds:.1f} s; proxy drops {proxy.drops}/{proxy.requests}")
    print(f"server answers: {dict(sorted(counter.counts.items()))}")
    assert done == 1000
    assert counter.counts["429"] > 0
    assert counter.counts["503"] > 0
    assert counter.counts["locked:injected"] > 0
    assert counter.counts["locked:race"] > 0
    assert proxy.drops > 0
    # every other answer is a 200 or a lock refusal: no 500s from the store under load
    assert counter.unexpected("429", "503") == {}, counter.counts
