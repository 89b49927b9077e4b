"""`Agent(compact_at_tokens=N)` against the real server: a long history is compacted
and a new chain starts from the window, and the run goes on correctly."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.livesrv import LiveServer
from turnstream.engine.deltas import FinishDelta, ItemEndDelta, OutputTextDelta, UsageDelta

from .helpers import assert_paired, call_script, make_agent


def a_call_then_a_summary(live: LiveServer) -> None:
    """The next turn calls `add`; the compaction after it gets this summary."""
    assert live.scripted is not None
    live.scripted.push(
        # a scripted turn reports the usage the limit is checked against
        [*call_script("add", '{"a": 1, "b": 2}')[:-1], UsageDelta(50, 5), FinishDelta()],
        [OutputTextDelta("They talked about the weather in Paris."), ItemEndDelta(), FinishDelta()],
    )


def summaries(live: LiveServer) -> list[dict[str, Any]]:
    assert live.scripted is not None
    return [item for item in live.scripted.requests[-1].items if item.get("role") == "developer"]


async def test_a_chain_past_the_limit_is_compacted_and_the_tool_round_completes(
    live_server: LiveServer, server_client: openai.AsyncOpenAI
) -> None:
    agent = make_agent(server_client, model="scripted", compact_at_tokens=8)
    first = await agent.run("tell me about the weather in Paris today please")
    a_call_then_a_summary(live_server)
    result = await agent.run('add {"a": 1, "b": 2}', previous_response_id=first.last_response_id)
    assert result.final_output == "Tool results: 3.0"
    # the answer's request started a new chain: the compacted window, then the output
    last = await server_client.responses.retrieve(result.last_response_id or "")
    assert last.previous_response_id is None
    inputs = await server_client.responses.input_items.list(last.id, order="asc")
    kinds = [item.type for item in inputs.data]
    assert kinds == ["message", "function_call", "compaction", "function_call_output"]
    # the model saw the older turn as the server's summary
    [summary] = summaries(live_server)
    assert "weather in Paris" in summary["content"][0]["text"]
    assert_paired([i.model_dump(mode="json") for i in inputs.data])


async def test_store_false_history_is_replaced_by_the_compacted_window(
    live_server: LiveServer, server_client: openai.AsyncOpenAI
) -> None:
    agent = make_agent(server_client, model="scripted", store=False, compact_at_tokens=8)
    first = await agent.run("tell me about the weather in Paris today please")
    a_call_then_a_summary(live_server)
    result = await agent.run('add {"a": 1, "b": 2}', history=first.history)
    assert result.final_output == "Tool results: 3.0"
    kinds = [item.get("type", "message") for item in result.history]
    assert kinds == ["message", "function_call", "compaction", "function_call_output", "message"]
    assert "weather in Paris" in summaries(live_server)[0]["content"][0]["text"]


async def test_under_the_limit_nothing_is_compacted(
    live_server: LiveServer, server_client: openai.AsyncOpenAI
) -> None:
    agent = make_agent(server_client, model="scripted", compact_at_tokens=10_000)
    first = await agent.run("hello")
    result = await agent.run('add {"a": 1, "b": 2}', previous_response_id=first.last_response_id)
    last = await server_client.responses.retrieve(result.last_response_id or "")
    assert last.previous_response_id is not None
    assert summaries(live_server) == []


pytestmark = pytest.mark.usefixtures("live_server")
