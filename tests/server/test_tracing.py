"""The server's spans, exported to an in-memory exporter: FastAPI's request span with
admission, the provider call and the store writes under it, named and attributed
after the OpenTelemetry GenAI and database conventions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk", reason="the otel extra is not installed")

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from turnstream._tracing import Tracing
from turnstream.engine.deltas import OutputTextDelta, UsageDelta
from turnstream.providers.base import ProviderError
from turnstream.providers.scripted import Raise

from .inprocess import serving


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    return tracer_provider


def by_name(spans: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    (found,) = [s for s in spans if s.name == name]
    return found


def ancestors(span: ReadableSpan, spans: tuple[ReadableSpan, ...]) -> list[str]:
    """The names of a span's ancestors, nearest first."""
    by_id = {s.context.span_id: s for s in spans}
    names = []
    parent = span.parent
    while parent is not None and parent.span_id in by_id:
        found = by_id[parent.span_id]
        names.append(found.name)
        parent = found.parent
    return names


async def test_a_conversation_turn_exports_the_expected_span_tree(
    tmp_path: Path, exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    async with serving(tmp_path, tracer_provider=provider) as served:
        conv = (await served.client.post("/v1/conversations", json={})).json()["id"]
        exporter.clear()
        served.scripted.push(
            [OutputTextDelta(text="hi"), UsageDelta(input_tokens=4, output_tokens=1)]
        )
        reply = await served.client.post(
            "/v1/responses", json={"model": "scripted", "input": "hello", "conversation": conv}
        )
    assert reply.status_code == 200
    response_id = reply.json()["id"]
    spans = exporter.get_finished_spans()
    (request,) = [s for s in spans if s.parent is None]
    assert request.name == "POST /v1/responses"
    assert all(s.context.trace_id == request.context.trace_id for s in spans)

    admit = by_name(spans, "admit")
    chat = by_name(spans, "chat scripted")
    insert = by_name(spans, "insert_response sqlite")
    acquire = by_name(spans, "acquire_lock sqlite")
    finish = by_name(spans, "finish_turn sqlite")
    assert request.name in ancestors(admit, spans)
    assert ancestors(insert, spans)[0] == "admit"
    assert ancestors(acquire, spans)[0] == "admit"
    # the provider call and the turn's commit are siblings, both under the request
    assert "admit" not in ancestors(chat, spans)
    assert request.name in ancestors(chat, spans)
    assert chat.name not in ancestors(finish, spans)
    assert request.name in ancestors(finish, spans)

    attributes: dict[str, Any] = dict(chat.attributes or {})
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.request.model"] == "scripted"
    assert attributes["gen_ai.response.id"] == response_id
    assert attributes["gen_ai.conversation.id"] == conv
    assert attributes["gen_ai.usage.input_tokens"] == 4
    assert attributes["gen_ai.usage.output_tokens"] == 1
    assert tuple(attributes["gen_ai.response.finish_reasons"]) == ("completed",)
    assert dict(finish.attributes or {})["db.operation.name"] == "finish_turn"
    assert dict(finish.attributes or {})["db.system.name"] == "sqlite"


async def test_a_failed_provider_call_is_an_error_span_with_its_kind(
    tmp_path: Path, exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    async with serving(tmp_path, tracer_provider=provider) as served:
        served.scripted.push(
            [OutputTextDelta(text="x"), Raise(ProviderError("gone", code="upstream_gone"))]
        )
        reply = await served.client.post("/v1/responses", json={"model": "scripted", "input": "a"})
    assert reply.json()["status"] == "failed"
    chat = by_name(exporter.get_finished_spans(), "chat scripted")
    assert dict(chat.attributes or {})["error.type"] == "upstream_gone"
    assert not chat.status.is_ok


def test_without_a_configured_provider_spans_are_the_shared_no_op() -> None:
    # the API's default provider records nothing; skipping it costs nothing
    tracing = Tracing(name="turnstream.test")
    assert not tracing.enabled
    assert tracing.span("a") is tracing.span("b")
