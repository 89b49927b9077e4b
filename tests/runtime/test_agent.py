"""The agent loop's behaviours, against the real server (see `conftest.py`).

`test_against_server.py` holds issue 4's acceptance list; this module pins the rest:
how tools are scheduled, what a failed or incomplete response does to a run, and
how cancellation leaves the conversation. Races are made with events and gates,
never with sleeps.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import openai
import pytest

from tests.livesrv import LiveServer
from turnstream.engine.deltas import FinishDelta, ItemEndDelta, ToolCallDelta
from turnstream.engine.deltas import OutputTextDelta as ModelText
from turnstream.providers.base import GenerationRequest, ProviderError
from turnstream.providers.scripted import Raise, ScriptedProvider
from turnstream.runtime import (
    Agent,
    ConversationRegistry,
    ErrorReceived,
    ResponseFailedError,
    RunCompleted,
    RunEvent,
    TextDelta,
    ToolContext,
    ToolProgress,
    ToolResult,
    TurnCompleted,
    TurnStarted,
    tool,
)

from .helpers import (
    add,
    assert_paired,
    call_script,
    collect,
    conversation_items,
    input_items,
    make_agent,
    shape,
)


def calls_script(*names: str) -> list[Any]:
    """A scripted response that calls each named tool, with no arguments."""
    steps: list[Any] = []
    for index, name in enumerate(names):
        steps += [ToolCallDelta(index=index, name=name, arguments="{}"), ItemEndDelta()]
    return [*steps, FinishDelta()]


def wait_for(flag: threading.Event) -> Callable[[GenerationRequest], Awaitable[None]]:
    """A script step that holds the stream until `flag` is set (or 10 s pass)."""

    async def wait(_: GenerationRequest) -> None:
        assert await asyncio.to_thread(flag.wait, 10), "the flag was never set"

    return wait


async def test_a_run_without_tools_offers_none_and_counts_the_usage(
    server_client: openai.AsyncOpenAI, scripted: ScriptedProvider
) -> None:
    result = await make_agent(server_client, model="scripted", tools=[]).run("hello there")
    assert result.final_output == "hello there"
    assert result.usage.output_tokens > 0
    assert result.usage.total_tokens == result.usage.input_tokens + result.usage.output_tokens
    assert scripted.requests[0].tools == []


async def test_a_follow_up_resends_instructions_and_tools(
    server_client: openai.AsyncOpenAI, scripted: ScriptedProvider
) -> None:
    cid = (await server_client.conversations.create()).id
    await make_agent(server_client, model="scripted").run('add {"a": 2, "b": 3}', conversation=cid)
    follow_up = scripted.requests[1]
    assert follow_up.instructions == "Be brief."
    assert [t["name"] for t in follow_up.tools] == ["add"]


async def test_a_sync_tool_runs_in_a_thread_and_does_not_block_the_loop(
    server_client: openai.AsyncOpenAI,
) -> None:
    tool_running = threading.Event()
    loop_turned = threading.Event()

    @tool
    def blocking() -> str:
        """Blocks until the event loop has shown it is still running."""
        tool_running.set()
        return "loop ran" if loop_turned.wait(60) else "loop blocked"

    async def prove_the_loop_runs() -> None:
        await asyncio.to_thread(tool_running.wait, 60)
        loop_turned.set()

    prover = asyncio.create_task(prove_the_loop_runs())
    result = await make_agent(server_client, tools=[blocking]).run("blocking")
    await prover
    assert result.final_output == "Tool results: loop ran"


async def test_error_formatter_redacts_what_the_model_sees(
    server_client: openai.AsyncOpenAI,
) -> None:
    @tool
    def leaky() -> str:
        """Fails with a secret."""
        raise RuntimeError("password=hunter2")

    agent = make_agent(
        server_client, tools=[leaky], error_formatter=lambda exc, call: f"{call.name} failed"
    )
    assert (await agent.run("leaky")).final_output == "Tool results: leaky failed"


async def test_arguments_that_are_not_json_are_explained_to_the_model(
    server_client: openai.AsyncOpenAI, scripted: ScriptedProvider
) -> None:
    scripted.push(call_script("add", "{not json"))
    events = await collect(make_agent(server_client, model="scripted"), "go")
    output = next(e for e in events if isinstance(e, ToolResult)).output
    assert "invalid arguments for tool 'add'" in output
    assert "not valid JSON" in output


async def test_progress_is_reported_as_events(
    server_client: openai.AsyncOpenAI, scripted: ScriptedProvider
) -> None:
    @tool
    async def worker(ctx: ToolContext) -> str:
        """Reports progress."""
        await ctx.progress("half way")
        return "ok"

    @tool
    def sync_worker(ctx: ToolContext) -> str:
        """Reports progress from a thread."""
        ctx.progress_nowait("from a thread")
        return "ok"

    assert "ctx" not in worker.parameters["properties"]
    scripted.push(calls_script("worker", "sync_worker"))
    agent = make_agent(server_client, model="scripted", tools=[worker, sync_worker])
    events = await collect(agent, "go")
    assert {e.message for e in events if isinstance(e, ToolProgress)} == {
        "half way",
        "from a thread",
    }


async def test_an_independent_tool_starts_while_the_response_still_streams(
    server_client: openai.AsyncOpenAI, scripted: ScriptedProvider
) -> None:
    started = threading.Event()

    @tool(independent=True)
    async def early() -> str:
        """Starts early."""
        started.set()
        return "ok"

    # the response cannot end before the tool has started
    scripted.push(
        [
            ToolCallDelta(index=0, name="early", arguments="{}"),
            ItemEndDelta(),
            wait_for(started),
            *call_script("add", '{"a": 1, "b": 2}'),
        ]
    )
    result = await make_agent(server_client, model="scripted", tools=[early, add]).run("go")
    assert result.final_output == "Tool results: ok; 3.0"


async def test_a_sequential_tool_runs_alone(
    server_client: openai.AsyncOpenAI, scripted: ScriptedProvider
) -> None:
    running = 0
    overlaps: list[tuple[str, int]] = []

    def make(name: str, sequential: bool) -> Any:
        async def fn() -> str:
            nonlocal running
            running += 1
            overlaps.append((name, running))
            await asyncio.sleep(0)  # give any other started call its turn
            running -= 1
            return name

        return tool(name=name, description=name, sequential=sequential)(fn)

    tools = [make("p1", False), make("barrier", True), make("p2", False)]
    scripted.push(calls_script("p1", "barrier", "p2"))
    await make_agent(server_client, model="scripted", tools=tools).run("go")
    assert overlaps == [("p1", 1), ("barrier", 1), ("p2", 1)]


async def test_max_concurrent_tools_caps_parallelism(
    server_client: openai.AsyncOpenAI, scripted: ScriptedProvider
) -> None:
    running = peak = 0

    @tool
    async def work() -> str:
        """Work."""
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        for _ in range(5):
            await asyncio.sleep(0)
        running -= 1
        return "ok"

    scripted.push(calls_script(*["work"] * 6))
    await make_agent(server_client, model="scripted", tools=[work], max_concurrent_tools=2).run(
        "go"
    )
    assert peak == 2


async def test_a_failed_response_is_surfaced_as_events_and_an_exception(
    server_client: openai.AsyncOpenAI, scripted: ScriptedProvider
) -> None:
    scripted.push([ModelText("partial"), Raise(ProviderError("boom", code="server_error"))])
    seen: list[RunEvent] = []

    async def consume() -> None:
        async for event in make_agent(server_client, model="scripted").stream("go"):
            seen.append(event)

    with pytest.raises(ResponseFailedError, match="boom") as info:
        await consume()
    assert info.value.code == "server_error"
    assert any(isinstance(e, TurnCompleted) and e.status == "failed" for e in seen)
    assert ErrorReceived("server_error", "boom", None) in seen


async def test_a_failed_follow_up_leaves_the_outputs_owed(
    server_client: openai.AsyncOpenAI, scripted: ScriptedProvider
) -> None:
    registry = ConversationRegistry()
    cid = (await server_client.conversations.create()).id
    scripted.push(
        call_script("add", '{"a": 1, "b": 2}'), [Raise(ProviderError("down", status=400))]
    )
    agent = make_agent(server_client, model="scripted", registry=registry)
    with pytest.raises(openai.BadRequestError):
        await agent.run("go", conversation=cid)
    [owed] = registry.owed(f"conv:{cid}")
    assert owed["output"] == "3.0"
    talker = make_agent(server_client, tools=[], registry=registry)
    result = await talker.run("again", conversation=cid)
    assert result.final_output == "again"
    items = await conversation_items(server_client, cid)
    assert shape(items) == ["user", "call:add", "output", "user", "assistant"]
    assert_paired(items)


async def test_an_incomplete_response_ends_the_run_with_status_incomplete(
    server_client: openai.AsyncOpenAI, scripted: ScriptedProvider
) -> None:
    scripted.push([ModelText("cut"), FinishDelta("length")])
    result = await make_agent(server_client, model="scripted").run("go")
    assert (result.status, result.final_output) == ("incomplete", "cut")


async def test_run_sync_works_from_synchronous_code(live_server: LiveServer) -> None:
    def sync_part() -> str:
        client = openai.AsyncOpenAI(base_url=live_server.base_url, api_key="k")
        agent = Agent(client=client, model="echo", tools=[add], registry=ConversationRegistry())
        return agent.run_sync('add {"a": 2, "b": 3}').final_output

    assert await asyncio.to_thread(sync_part) == "Tool results: 5.0"


# -- cancellation -----------------------------------------------------------------------


async def test_cancelling_the_consuming_task_mid_tool_owes_every_output(
    server_client: openai.AsyncOpenAI,
) -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()
    added = asyncio.Event()

    @tool
    async def forever() -> str:
        """Never finishes."""
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    cid = (await server_client.conversations.create()).id
    registry = ConversationRegistry()
    agent = make_agent(server_client, tools=[forever, add], registry=registry)

    async def consume() -> None:
        async for event in agent.stream('forever add {"a": 1, "b": 2}', conversation=cid):
            if isinstance(event, ToolResult) and event.name == "add":
                added.set()

    task = asyncio.create_task(consume())
    await started.wait()
    await added.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cancelled.is_set()
    # the next run first sends the owed outputs, then the new message
    talker = make_agent(server_client, tools=[], registry=registry)
    result = await talker.run("next", conversation=cid)
    assert result.final_output == "next"
    sent = await input_items(server_client, str(result.last_response_id))
    assert shape(sent) == ["output", "output", "user"]
    assert "cancelled" in sent[0]["output"]
    assert sent[1]["output"] == "3.0"
    assert_paired(await conversation_items(server_client, cid))


async def test_cancelling_a_chained_run_owes_outputs_to_that_response(
    server_client: openai.AsyncOpenAI,
) -> None:
    registry = ConversationRegistry()
    gate = asyncio.Event()

    @tool
    async def wait() -> str:
        """Waits."""
        gate.set()
        await asyncio.Event().wait()
        return "never"

    agent = make_agent(server_client, tools=[wait], registry=registry)
    stream = agent.stream("wait")

    async def cancel_when_the_tool_runs() -> None:
        await gate.wait()
        stream.cancel()  # from another task, while the stream waits on the tool

    canceller = asyncio.create_task(cancel_when_the_tool_runs())
    events = [event async for event in stream]
    await canceller
    assert stream.cancelled
    assert not any(isinstance(e, RunCompleted) for e in events)
    assert stream.last_response_id is not None
    assert len(registry.owed(f"resp:{stream.last_response_id}")) == 1
    talker = make_agent(server_client, tools=[], registry=registry)
    chained = await talker.run("next", previous_response_id=stream.last_response_id)
    assert chained.final_output == "next"
    assert registry.owed(f"resp:{stream.last_response_id}") == []


async def test_closing_the_stream_early_cancels_the_response_on_the_server(
    server_client: openai.AsyncOpenAI,
) -> None:
    agent = make_agent(server_client, model="echo-slow", tools=[])
    # 2,000 slow words would take minutes: the answer cannot finish on its own first
    async with agent.stream(" ".join(["word"] * 2000)) as events:
        async for event in events:
            if isinstance(event, TurnStarted):
                response_id = event.response_id
            if isinstance(event, TextDelta):
                break
    # the server notices the closed connection and records the response cancelled
    deadline = time.monotonic() + 60  # a ceiling for a hang on a loaded machine
    while (status := (await server_client.responses.retrieve(response_id)).status) in (
        "queued",
        "in_progress",
    ):
        assert time.monotonic() < deadline, "the server never noticed the closed stream"
        await asyncio.sleep(0.02)
    assert status == "cancelled"


async def test_stopping_at_the_end_of_a_turn_with_calls_owes_those_calls(
    server_client: openai.AsyncOpenAI,
) -> None:
    """A caller may stop reading at `TurnCompleted`, before the tools run."""
    registry = ConversationRegistry()
    cid = (await server_client.conversations.create()).id
    agent = make_agent(server_client, registry=registry)
    async with agent.stream('add {"a": 1, "b": 2}', conversation=cid) as events:
        async for event in events:
            if isinstance(event, TurnCompleted):
                break
    [owed] = registry.owed(f"conv:{cid}")
    assert "cancelled" in owed["output"]
    talker = make_agent(server_client, tools=[], registry=registry)
    assert (await talker.run("next", conversation=cid)).final_output == "next"
    assert_paired(await conversation_items(server_client, cid))
