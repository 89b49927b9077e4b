"""The agent loop end to end, against the fake Responses server over a real socket."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import openai
import pytest

from turnstream.runtime import (
    Agent,
    ConversationRegistry,
    ErrorReceived,
    ResponseFailedError,
    RunCompleted,
    RunEvent,
    TextDelta,
    ToolCallReady,
    ToolCallStarted,
    ToolContext,
    ToolProgress,
    ToolResult,
    TurnCompleted,
    TurnStarted,
    tool,
)

from .conftest import FAST_RETRY
from .fake_responses_server import (
    Call,
    Fail,
    FakeResponsesServer,
    Incomplete,
    ModelRequest,
    Output,
    Reasoning,
    Text,
    call_then_answer,
)


@tool
def add(a: float, b: float) -> float:
    """Add two numbers.

    Args:
        a: The first addend.
        b: The second addend.
    """
    return a + b


def make_agent(client: openai.AsyncOpenAI, registry: ConversationRegistry, **kw: Any) -> Agent:
    kw.setdefault("tools", [add])
    return Agent(
        client=client,
        model="echo",
        instructions="Be brief.",
        registry=registry,
        retry=FAST_RETRY,
        **kw,
    )


async def collect(agent: Agent, text: str, **kw: Any) -> list[RunEvent]:
    return [event async for event in agent.stream(text, **kw)]


def outputs_sent(fake: FakeResponsesServer) -> list[dict[str, Any]]:
    return [
        item
        for body in fake.requests
        for item in body.get("input", [])
        if isinstance(item, dict) and item.get("type") == "function_call_output"
    ]


async def test_a_run_without_tools_streams_text_and_completes(
    fake: FakeResponsesServer, client: openai.AsyncOpenAI, registry: ConversationRegistry
) -> None:
    agent = make_agent(client, registry, tools=[])
    events = await collect(agent, "hello there")
    deltas = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert deltas == "echo: hello there"
    assert isinstance(events[0], TurnStarted)
    assert isinstance(events[-1], RunCompleted)
    result = events[-1].result
    assert result.final_output == "echo: hello there"
    assert result.turns == 1
    assert result.usage.total_tokens == 15
    assert "tools" not in fake.requests[0]


async def test_one_tool_call_is_answered_and_the_model_sees_the_result(
    fake: FakeResponsesServer, client: openai.AsyncOpenAI, registry: ConversationRegistry
) -> None:
    fake.model = call_then_answer(Call("add", {"a": 2, "b": 3}))
    cid = fake.create_conversation()
    events = await collect(make_agent(client, registry), "What is 2 + 3?", conversation=cid)
    kinds = [type(e) for e in events]
    assert kinds.index(ToolCallStarted) < kinds.index(ToolCallReady) < kinds.index(ToolResult)
    ready = next(e for e in events if isinstance(e, ToolCallReady))
    assert ready.arguments == {"a": 2, "b": 3}
    result = next(e for e in events if isinstance(e, RunCompleted)).result
    assert result.final_output == "Results: 5.0"
    # the follow-up carried only the output: the server holds the rest
    assert fake.requests[1]["input"] == [
        {"type": "function_call_output", "call_id": ready.call_id, "output": "5.0"}
    ]
    assert fake.requests[1]["instructions"] == "Be brief."
    assert fake.requests[1]["tools"][0]["name"] == "add"
    assert fake.unanswered_calls(cid) == []
    assert fake.violations == []


async def test_three_parallel_tools_run_concurrently_and_go_back_in_one_request(
    fake: FakeResponsesServer, client: openai.AsyncOpenAI, registry: ConversationRegistry
) -> None:
    @tool
    async def slow(n: int) -> int:
        """Sleep, then echo n."""
        await asyncio.sleep(0.2)
        return n

    fake.model = call_then_answer(*(Call("slow", {"n": n}) for n in range(3)))
    agent = make_agent(client, registry, tools=[slow])
    started = time.monotonic()
    result = await agent.run("go")
    elapsed = time.monotonic() - started
    assert elapsed < 0.5
    assert len(fake.requests) == 2
    assert [o["output"] for o in fake.requests[1]["input"]] == ["0", "1", "2"]
    assert result.final_output == "Results: 0; 1; 2"


async def test_a_sync_tool_runs_in_a_thread_and_does_not_block_the_loop(
    fake: FakeResponsesServer, client: openai.AsyncOpenAI, registry: ConversationRegistry
) -> None:
    threads: list[int] = []

    @tool
    def blocking() -> str:
        """Block for a while."""
        threads.append(threading.get_ident())
        time.sleep(0.3)
        return "done"

    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    fake.model = call_then_answer(Call("blocking"))
    task = asyncio.create_task(ticker())
    try:
        await make_agent(client, registry, tools=[blocking]).run("go")
    finally:
        task.cancel()
    assert threads
    assert threads[0] != threading.get_ident()
    assert ticks >= 10


async def test_a_tool_that_raises_still_answers_its_call(
    fake: FakeResponsesServer, client: openai.AsyncOpenAI, registry: ConversationRegistry
) -> None:
    @tool
    def broken() -> str:
        """Always fails."""
        raise RuntimeError("disk on fire")

    fake.model = call_then_answer(Call("broken"))
    events = await collect(make_agent(client, registry, tools=[broken]), "go")
    result = next(e for e in events if isinstance(e, ToolResult))
    assert result.is_error
    assert "RuntimeError: disk on fire" in result.output
    assert outputs_sent(fake)[0]["output"] == result.output
    assert fake.violations == []


async def test_error_formatter_redacts_what_the_model_sees(
    fake: FakeResponsesServer, client: openai.AsyncOpenAI, registry: ConversationRegistry
) -> None:
    @tool
    def leaky() -> str:
        """Fails with a secret."""
        raise RuntimeError("password=hunter2")

    fake.model = call_then_answer(Call("leaky"))
    agent = make_agent(
        client, registry, tools=[leaky], error_formatter=lambda exc, call: f"{call.name} failed"
    )
    await agent.run("go")
    assert outputs_sent(fake)[0]["output"] == "leaky failed"


async def test_an_unknown_tool_gets_an_output_naming_the_available_tools(
    fake: FakeResponsesServer, client: openai.AsyncOpenAI, registry: ConversationRegistry
) -> None:
    fake.model = call_then_answer(Call("nope", {}))
    cid = fake.create_conversation()
    await make_agent(client, registry).run("go", conversation=cid)
    output = outputs_sent(fake)[0]["output"]
    assert "unknown tool 'nope'" in output
    assert "add" in output
    assert fake.unanswered_calls(cid) == []


async def test_invalid_arguments_are_explained_and_a_corrected_call_succeeds(
    fake: FakeResponsesServer, client: openai.AsyncOpenAI, registry: ConversationRegistry
) -> None:
    def model(request: ModelRequest) -> list[Output]:
        if not request.tool_outputs:
            return [Call("add", {"a": "two", "b": 3}), Call("add", "{not json")]
        if any("invalid arguments" in o for o in request.tool_outputs):
            return [Call("add", {"a": 2, "b": 3})]
        return [Text("Results: " + "; ".join(request.tool_outputs))]

    fake.model = model
    result = await make_agent(client, registry).run("go")
    first = outputs_sent(fake)[:2]
    assert "a: Input should be a valid number" in first[0]["output"]
    assert "not valid JSON" in first[1]["output"]
    assert result.final_output == "Results: 5.0"
    assert result.turns == 3


async def test_a_tool_timeout_produces_a_timeout_output(
    fake: FakeResponsesServer, client: openai.AsyncOpenAI, registry: ConversationRegistry
) -> None:
    @tool(timeout=0.05)
    async def sleepy() -> str:
        """Takes too long."""
        await asyncio.sleep(5)
        return "never"

    fake.model = call_then_answer(Call("sleepy"))
    started = time.monotonic()
    await make_agent(client, registry, tools=[sleepy]).run("go")
    assert time.monotonic() - started < 1
    assert "timed out after 0.05 s" in outputs_sent(fake)[0]["output"]


async def test_progress_is_reported_as_events(
    fake: FakeResponsesServer, client: openai.AsyncOpenAI, registry: ConversationRegistry
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
    fake.model = call_then_answer(Call("worker"), Call("sync_worker"))
    events = await collect(make_agent(client, registry, tools=[worker, sync_worker]), "go")
    messages = {e.message for e in events if isinstance(e, ToolProgress)}
    assert messages == {"half way", "from a thread"}


async def test_the_turn_limit_asks_for_a_final_answer_without_tools(
    fake: FakeResponsesServer, client: openai.AsyncOpenAI, registry: ConversationRegistry
) -> None:
    def model(request: ModelRequest) -> list[Output]:
        if request.tools_allowed:
            return [Call("add", {"a": 1, "b": 1})]
        return [Text("final answer")]

    fake.model = model
    result = await make_agent(client, registry, max_turns=3).run("loop forever")
    assert result.final_output == "final answer"
    assert result.turns == 3
    assert fake.requests[2]["tool_choice"] == "none"
    assert "tool_choice" not in fake.requests[1]
    assert fake.violations == []


async def test_the_turn_limit_owes_outputs_if_the_model_calls_tools_anyway(
    fake: FakeResponsesServer, client: openai.AsyncOpenAI, registry: ConversationRegistry
) -> None:
    fake.model = lambda request: [Call("add", {"a": 1, "b": 1})]
    cid = fake.create_conversation()
    agent = make_agent(client, registry, max_turns=1)
    result = await agent.run("go", conversation=cid)
    assert result.status == "incomplete"
    fake.model = call_then_answer()
    await agent.run("next", conversation=cid)
    assert "turn limit" in fake.requests[-1]["input"][0]["output"]
    assert fake.violations == []
    assert fake.unanswered_calls(cid) == []


async def test_an_independent_tool_starts_while_the_response_still_streams(
    client: openai.AsyncOpenAI, fake: FakeResponsesServer, registry: ConversationRegistry
) -> None:
    order: list[str] = []

    @tool(independent=True)
    async def early() -> str:
        """Starts early."""
        order.append("tool started")
        return "ok"

    fake.event_delay = 0.01
    fake.model = call_then_answer(Call("early"), Call("add", {"a": 1, "b": 2}))
    async for event in make_agent(client, registry, tools=[early, add]).stream("go"):
        if isinstance(event, TurnCompleted) and event.status == "completed":
            order.append("turn completed")
    assert order[0] == "tool started"


async def test_a_sequential_tool_runs_alone(
    fake: FakeResponsesServer, client: openai.AsyncOpenAI, registry: ConversationRegistry
) -> None:
    running = 0
    overlaps: list[tuple[str, int]] = []

    def make(name: str, sequential: bool) -> Any:
        async def fn() -> str:
            nonlocal running
            running += 1
            overlaps.append((name, running))
            await asyncio.sleep(0.02)
            running -= 1
            return name

        return tool(name=name, description=name, sequential=sequential)(fn)

    tools = [make("p1", False), make("barrier", True), make("p2", False)]
    fake.model = call_then_answer(Call("p1"), Call("barrier"), Call("p2"))
    await make_agent(client, registry, tools=tools).run("go")
    assert ("barrier", 1) in overlaps
    assert [name for name, _ in overlaps] == ["p1", "barrier", "p2"]


async def test_max_concurrent_tools_caps_parallelism(
    fake: FakeResponsesServer, client: openai.AsyncOpenAI, registry: ConversationRegistry
) -> None:
    running = peak = 0

    @tool
    async def work() -> str:
        """Work."""
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02)
        running -= 1
        return "ok"

    fake.model = call_then_answer(*(Call("work") for _ in range(6)))
    await make_agent(client, registry, tools=[work], max_concurrent_tools=2).run("go")
    assert peak == 2


async def test_a_failed_response_is_surfaced_as_events_and_an_exception(
    fake: FakeResponsesServer, client: openai.AsyncOpenAI, registry: ConversationRegistry
) -> None:
    fake.model = lambda request: [Text("partial"), Fail("server_error", "boom")]
    seen: list[RunEvent] = []

    async def consume() -> None:
        async for event in make_agent(client, registry).stream("go"):
            seen.append(event)

    with pytest.raises(ResponseFailedError, match="boom") as info:
        await consume()
    assert info.value.code == "server_error"
    assert any(isinstance(e, ErrorReceived) and e.message == "boom" for e in seen)
    assert any(isinstance(e, TurnCompleted) and e.status == "failed" for e in seen)


async def test_an_incomplete_response_ends_the_run_with_status_incomplete(
    fake: FakeResponsesServer, client: openai.AsyncOpenAI, registry: ConversationRegistry
) -> None:
    fake.model = lambda request: [Text("cut"), Incomplete()]
    result = await make_agent(client, registry).run("go")
    assert result.status == "incomplete"
    assert result.final_output == "cut"


async def test_run_sync_works_from_synchronous_code(fake: FakeResponsesServer) -> None:
    fake.model = call_then_answer(Call("add", {"a": 2, "b": 3}))

    def sync_part() -> str:
        client = openai.AsyncOpenAI(base_url=fake.base_url, api_key="k")
        agent = Agent(client=client, model="echo", tools=[add], registry=ConversationRegistry())
        return agent.run_sync("What is 2 + 3?").final_output

    assert await asyncio.to_thread(sync_part) == "Results: 5.0"


# -- state modes ------------------------------------------------------------------------


async def test_previous_response_id_mode_chains_and_resends_instructions_and_tools(
    fake: FakeResponsesServer, client: openai.AsyncOpenAI, registry: ConversationRegistry
) -> None:
    fake.model = call_then_answer(Call("add", {"a": 2, "b": 3}))
    agent = make_agent(client, registry)
    first = await agent.run("What is 2 + 3?")
    assert fake.requests[1]["previous_response_id"] == fake.requests[1].get("previous_response_id")
    assert "conversation" not in fake.requests[1]
    assert fake.requests[1]["input"][0]["type"] == "function_call_output"
    assert len(fake.requests[1]["input"]) == 1
    assert fake.requests[1]["instructions"] == "Be brief."
    second = await agent.run("and again?", previous_response_id=first.last_response_id)
    assert fake.requests[2]["previous_response_id"] == first.last_response_id
    assert second.final_output
    assert fake.violations == []


async def test_local_replay_resends_everything_without_server_ids(
    fake: FakeResponsesServer, client: openai.AsyncOpenAI, registry: ConversationRegistry
) -> None:
    def model(request: ModelRequest) -> list[Output]:
        if request.input[-1].get("type") == "function_call_output":
            return [Reasoning("thinking"), Text("Results: " + "; ".join(request.tool_outputs))]
        if request.last_user_text == "What is 2 + 3?":
            return [Reasoning("plan"), Call("add", {"a": 2, "b": 3})]
        return [Text(f"{len(request.context)} items seen")]

    fake.model = model
    agent = make_agent(client, registry, store=False)
    first = await agent.run("What is 2 + 3?")
    assert fake.requests[0]["store"] is False
    replay = fake.requests[1]["input"]
    assert [i.get("type") or i.get("role") for i in replay] == [
        "user",
        "reasoning",
        "function_call",
        "function_call_output",
    ]
    assert "id" not in replay[2]
    assert replay[1]["encrypted_content"] == "enc-blob"
    second = await agent.run("how many?", history=first.history)
    assert second.final_output == "7 items seen"
    assert fake.violations == []
    assert fake.responses == {}


# -- concurrency and cancellation -------------------------------------------------------


async def test_two_streams_on_one_conversation_run_one_after_the_other(
    fake: FakeResponsesServer, client: openai.AsyncOpenAI, registry: ConversationRegistry
) -> None:
    fake.event_delay = 0.002
    fake.model = call_then_answer(Call("add", {"a": 2, "b": 3}))
    cid = fake.create_conversation()
    agent = make_agent(client, registry)
    other = make_agent(client, registry)
    results = await asyncio.gather(
        agent.run("one", conversation=cid), other.run("two", conversation=cid)
    )
    assert all(r.final_output == "Results: 5.0" for r in results)
    assert fake.max_in_flight == 1
    assert fake.locked_rejections == 0
    assert fake.unanswered_calls(cid) == []


async def test_cancelling_mid_stream_then_the_next_turn_succeeds(
    fake: FakeResponsesServer, client: openai.AsyncOpenAI, registry: ConversationRegistry
) -> None:
    fake.event_delay = 0.01
    fake.model = lambda request: [Text("a long answer " * 20)]
    cid = fake.create_conversation()
    agent = make_agent(client, registry)
    stream = agent.stream("talk", conversation=cid)
    async for event in stream:
        if isinstance(event, TextDelta):
            stream.cancel()
    assert stream.cancelled
    fake.event_delay = 0
    fake.model = call_then_answer(Call("add", {"a": 1, "b": 2}))
    result = await agent.run("again", conversation=cid)
    assert result.final_output == "Results: 3.0"
    assert fake.violations == []


async def test_cancelling_the_consuming_task_mid_tool_owes_the_outputs(
    fake: FakeResponsesServer, client: openai.AsyncOpenAI, registry: ConversationRegistry
) -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    @tool
    async def forever() -> str:
        """Never finishes."""
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    fake.model = call_then_answer(Call("forever"), Call("add", {"a": 1, "b": 2}))
    cid = fake.create_conversation()
    agent = make_agent(client, registry, tools=[forever, add])
    task = asyncio.create_task(agent.run("go", conversation=cid))
    await started.wait()
    await asyncio.sleep(0.1)  # let `add` finish; `forever` never does
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cancelled.is_set()
    assert len(fake.requests) == 1
    # the next run first sends the owed outputs, then the new message
    fake.model = call_then_answer()
    result = await agent.run("next", conversation=cid)
    sent = fake.requests[1]["input"]
    assert [i.get("type") for i in sent] == ["function_call_output", "function_call_output", None]
    assert "cancelled" in sent[0]["output"]
    assert sent[1]["output"] == "3.0"
    assert result.final_output.startswith("Results:")
    assert fake.unanswered_calls(cid) == []
    assert fake.violations == []


async def test_cancelling_a_chained_run_owes_outputs_to_that_response(
    fake: FakeResponsesServer, client: openai.AsyncOpenAI, registry: ConversationRegistry
) -> None:
    gate = asyncio.Event()

    @tool
    async def wait() -> str:
        """Waits."""
        gate.set()
        await asyncio.sleep(60)
        return "never"

    fake.model = call_then_answer(Call("wait"))
    agent = make_agent(client, registry, tools=[wait])
    stream = agent.stream("go")

    async def cancel_when_the_tool_runs() -> None:
        await gate.wait()
        stream.cancel()  # from another task, while the stream waits on the tool

    canceller = asyncio.create_task(cancel_when_the_tool_runs())
    events = [event async for event in stream]
    await canceller
    assert stream.cancelled
    assert not any(isinstance(e, RunCompleted) for e in events)
    assert stream.last_response_id is not None
    fake.model = call_then_answer()
    await agent.run("next", previous_response_id=stream.last_response_id)
    assert fake.violations == []


async def test_closing_the_stream_early_closes_the_connection(
    fake: FakeResponsesServer, client: openai.AsyncOpenAI, registry: ConversationRegistry
) -> None:
    fake.event_delay = 0.01
    fake.model = lambda request: [Text("word " * 100)]
    async with make_agent(client, registry).stream("go") as events:
        async for event in events:
            if isinstance(event, TextDelta):
                break
    for _ in range(100):
        if fake.disconnects:
            break
        await asyncio.sleep(0.01)
    assert fake.disconnects == 1
