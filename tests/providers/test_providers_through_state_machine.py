"""Provider deltas run through the engine's state machine give valid, ordered events."""

from __future__ import annotations

import json

from tests.providers.fake_chat_upstream import (
    FakeChatUpstream,
    FakeReply,
    finish_chunk,
    reasoning_chunk,
    text_chunk,
    tool_call_chunk,
    usage_chunk,
)
from tests.providers.helpers import request, run_machine, tool
from turnstream.providers.echo import EchoProvider
from turnstream.providers.openai_chat import OpenAIChatProvider


async def test_echo_parallel_tool_calls_become_two_completed_function_call_items() -> None:
    tools = [tool("get_time"), tool("get_weather")]
    wire, response = await run_machine(
        "echo", EchoProvider().stream(request("get_weather then get_time", tools=tools))
    )
    assert wire[-1]["type"] == "response.completed"
    calls = response.model_dump(mode="json")["output"]
    assert [(c["type"], c["name"], json.loads(c["arguments"])) for c in calls] == [
        ("function_call", "get_weather", {}),
        ("function_call", "get_time", {}),
    ]
    assert len({c["call_id"] for c in calls}) == 2


async def test_echo_truncated_by_max_output_tokens_ends_incomplete() -> None:
    wire, response = await run_machine(
        "echo", EchoProvider().stream(request("a b c d", max_output_tokens=2))
    )
    assert wire[-1]["type"] == "response.incomplete"
    assert response.incomplete_details.reason == "max_output_tokens"


async def test_an_interleaved_chat_stream_becomes_ordered_wire_events(
    fake_upstream: FakeChatUpstream,
) -> None:
    fake_upstream.queue(
        FakeReply(
            chunks=[
                reasoning_chunk("hmm"),
                text_chunk("Calling."),
                tool_call_chunk(0, call_id="call_a", name="a"),
                tool_call_chunk(1, call_id="call_b", name="b"),
                tool_call_chunk(1, arguments='{"y":'),
                tool_call_chunk(0, arguments='{"x":'),
                tool_call_chunk(0, arguments="1}"),
                tool_call_chunk(1, arguments="2}"),
                finish_chunk("tool_calls"),
                usage_chunk(10, 7),
            ]
        )
    )
    chat = OpenAIChatProvider(fake_upstream.base_url, models={"gpt": "up"})
    try:
        wire, response = await run_machine("gpt", chat.stream(request("go", model="gpt")))
    finally:
        await chat.aclose()
    output = response.model_dump(mode="json")["output"]
    assert [item["type"] for item in output] == [
        "reasoning",
        "message",
        "function_call",
        "function_call",
    ]
    assert [(item["call_id"], item["arguments"]) for item in output[2:]] == [
        ("call_a", '{"x":1}'),
        ("call_b", '{"y":2}'),
    ]
    assert response.usage.total_tokens == 17
    assert wire[-1]["type"] == "response.completed"
