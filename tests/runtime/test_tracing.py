"""The runtime's spans: one per run, a `chat` span per turn and an `execute_tool` span
per tool call, exported to an in-memory exporter (against the real server)."""

from __future__ import annotations

from typing import Any

import openai
import pytest

pytest.importorskip("opentelemetry.sdk", reason="the otel extra is not installed")

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from turnstream.engine.deltas import OutputTextDelta, UsageDelta
from turnstream.providers.scripted import ScriptedProvider
from turnstream.runtime import tool

from .helpers import call_script, make_agent


@tool
def explode() -> str:
    """Always fails."""
    raise RuntimeError("boom")


def attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


async def test_a_run_with_a_tool_round_exports_run_turn_and_tool_spans(
    server_client: openai.AsyncOpenAI, scripted: ScriptedProvider
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    conversation = await server_client.conversations.create()
    scripted.push(
        call_script("add", '{"a": 2, "b": 3}'),
        [OutputTextDelta(text="5"), UsageDelta(input_tokens=9, output_tokens=1)],
    )
    agent = make_agent(server_client, model="scripted", tracer_provider=provider)
    result = await agent.run("add 2 and 3", conversation=conversation.id)
    assert result.final_output == "5"

    spans = exporter.get_finished_spans()
    (run,) = [s for s in spans if s.parent is None]
    assert run.name == "invoke_agent"
    assert attributes(run)["gen_ai.conversation.id"] == conversation.id
    turns = [s for s in spans if s.name == "chat scripted"]
    (tool_span,) = [s for s in spans if s.name == "execute_tool add"]
    assert len(turns) == 2
    for child in (*turns, tool_span):
        assert child.parent is not None
        assert child.parent.span_id == run.context.span_id
        assert child.context.trace_id == run.context.trace_id
    first, second = sorted(turns, key=lambda s: s.start_time or 0)
    assert attributes(first)["gen_ai.response.finish_reasons"] == ("completed",)
    assert attributes(second)["gen_ai.usage.input_tokens"] == 9
    assert attributes(second)["gen_ai.response.id"] == result.last_response_id
    # the tool ran between the two turns
    assert (first.end_time or 0) <= (tool_span.start_time or 0)
    assert (tool_span.end_time or 0) <= (second.start_time or 0)
    assert attributes(tool_span)["gen_ai.tool.name"] == "add"
    assert attributes(tool_span)["gen_ai.operation.name"] == "execute_tool"
    assert tool_span.status.is_ok


async def test_a_tool_that_raises_is_an_error_span(
    server_client: openai.AsyncOpenAI, scripted: ScriptedProvider
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    scripted.push(call_script("explode", "{}"), [OutputTextDelta(text="sorry")])
    agent = make_agent(server_client, model="scripted", tools=[explode], tracer_provider=provider)
    await agent.run("go")
    (span,) = [s for s in exporter.get_finished_spans() if s.name == "execute_tool explode"]
    assert attributes(span)["error.type"] == "RuntimeError"
    assert not span.status.is_ok
