"""`/v1/responses` driven by the official `openai` SDK against a real uvicorn."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest
from openai import AsyncOpenAI, OpenAI

from tests.builders import TIME, WEATHER
from tests.livesrv import LiveServer
from turnstream.engine.deltas import (
    FinishDelta,
    ItemEndDelta,
    OutputTextDelta,
    ToolCallDelta,
    UsageDelta,
)
from turnstream.providers.base import ProviderError
from turnstream.providers.scripted import Raise


@pytest.fixture
def live_server(each_backend_server: LiveServer) -> LiveServer:
    """These endpoint tests run against both stores, SQLite and PostgreSQL."""
    return each_backend_server


def test_sync_sdk_creates_retrieves_lists_and_deletes_a_response(client: OpenAI) -> None:
    created = client.responses.create(model="echo", input="hello there world")
    assert created.status == "completed"
    assert created.output_text == "hello there world"
    assert created.usage is not None
    assert created.usage.total_tokens == created.usage.input_tokens + created.usage.output_tokens

    fetched = client.responses.retrieve(created.id, include=["message.output_text.logprobs"])
    assert fetched.model_dump() == created.model_dump()

    items = list(client.responses.input_items.list(created.id))
    assert [item.type for item in items] == ["message"]
    assert items[0].id

    client.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError) as info:
        client.responses.retrieve(created.id)
    assert info.value.body == {
        "message": f"Response with id '{created.id}' not found.",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }


async def test_async_stream_helper_yields_text_in_protocol_order(
    async_client: AsyncOpenAI,
) -> None:
    async with async_client.responses.stream(model="echo", input="one two three four") as stream:
        types = [event.type async for event in stream]
        final = await stream.get_final_response()
    stored = await async_client.responses.retrieve(final.id)
    assert final.output_text == "one two three four"
    assert types[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert types.count("response.output_text.delta") == 4
    assert types[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert stored.output_text == final.output_text


def test_stream_helper_returns_one_function_call(client: OpenAI) -> None:
    with client.responses.stream(
        model="echo", input='get_weather {"city": "Paris"}', tools=[WEATHER]
    ) as stream:
        arg_deltas = [e for e in stream if e.type == "response.function_call_arguments.delta"]
        final = stream.get_final_response()
    assert len(arg_deltas) > 1, "arguments should stream in pieces"
    [call] = final.output
    assert call.type == "function_call"
    assert call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Paris"}
    assert call.call_id.startswith("call_")


def test_stream_helper_returns_two_parallel_calls_in_index_order(client: OpenAI) -> None:
    with client.responses.stream(
        model="echo", input="get_weather and get_time for Oslo", tools=[WEATHER, TIME]
    ) as stream:
        final = stream.get_final_response()
    assert [(item.type, getattr(item, "name", None)) for item in final.output] == [
        ("function_call", "get_weather"),
        ("function_call", "get_time"),
    ]
    call_ids = [item.call_id for item in final.output if item.type == "function_call"]
    assert len(set(call_ids)) == 2


def test_stream_helper_returns_text_then_a_call(live_server: LiveServer, client: OpenAI) -> None:
    assert live_server.scripted is not None
    live_server.scripted.push(
        [
            OutputTextDelta("Let me "),
            OutputTextDelta("check."),
            ItemEndDelta(),
            ToolCallDelta(0, name="get_weather", arguments='{"ci'),
            ToolCallDelta(0, arguments='ty": "Rome"}'),
            UsageDelta(input_tokens=7, output_tokens=9),
            FinishDelta(),
        ]
    )
    with client.responses.stream(
        model="scripted", input="weather in Rome?", tools=[WEATHER]
    ) as stream:
        final = stream.get_final_response()
    message, call = final.output
    assert message.type == "message"
    assert final.output_text == "Let me check."
    assert call.type == "function_call"
    assert json.loads(call.arguments) == {"city": "Rome"}
    assert final.usage is not None
    assert (final.usage.input_tokens, final.usage.output_tokens, final.usage.total_tokens) == (
        7,
        9,
        16,
    )


def test_max_output_tokens_ends_incomplete_and_the_sdk_sees_it(client: OpenAI) -> None:
    words = [f"w{i}" for i in range(20)]
    # OpenAI's minimum for max_output_tokens is 16; the echo model counts a word a token
    with client.responses.stream(
        model="echo", input=" ".join(words), max_output_tokens=16
    ) as stream:
        events = list(stream)
        with pytest.raises(RuntimeError, match=r"response\.completed"):
            stream.get_final_response()
    terminal = events[-1]
    assert terminal.type == "response.incomplete"
    assert terminal.response.incomplete_details is not None
    assert terminal.response.incomplete_details.reason == "max_output_tokens"
    stored = client.responses.retrieve(terminal.response.id)
    assert stored.status == "incomplete"
    assert stored.output_text.split() == words[:16]


def test_a_provider_failure_mid_stream_ends_with_error_then_failed(
    live_server: LiveServer, client: OpenAI
) -> None:
    assert live_server.scripted is not None
    live_server.scripted.push(
        [
            OutputTextDelta("partial "),
            Raise(ProviderError("the model crashed", code="server_error")),
        ]
    )
    with client.responses.stream(model="scripted", input="hi") as stream:
        events = list(stream)
        with pytest.raises(RuntimeError):
            stream.get_final_response()
    assert [e.type for e in events[-2:]] == ["error", "response.failed"]
    error, failed = events[-2:]
    assert error.message == "the model crashed"
    assert failed.response.error is not None
    assert failed.response.error.code == "server_error"
    assert client.responses.retrieve(failed.response.id).status == "failed"


def test_a_provider_failure_after_output_returns_a_failed_response_without_stream(
    live_server: LiveServer,
) -> None:
    assert live_server.scripted is not None
    live_server.scripted.push(
        [OutputTextDelta("partial"), Raise(ProviderError("lost the upstream"))]
    )
    created = live_server.openai().responses.create(model="scripted", input="hi")
    assert created.status == "failed"
    assert created.error is not None
    assert created.error.message == "lost the upstream"


@pytest.mark.parametrize("stream", [True, False])
def test_a_provider_rate_limit_before_any_output_is_an_http_429(
    live_server: LiveServer, stream: bool
) -> None:
    assert live_server.scripted is not None
    live_server.scripted.push(
        [Raise(ProviderError("slow down", code="rate_limit_exceeded", status=429, retry_after=1.5))]
    )
    with pytest.raises(openai.RateLimitError) as info:
        live_server.openai().responses.create(model="scripted", input="hi", stream=stream)
    assert info.value.code == "rate_limit_exceeded"
    assert info.value.response.headers["retry-after-ms"] == "1500"


def test_tool_round_trip_over_previous_response_id(client: OpenAI) -> None:
    first = client.responses.create(
        model="echo", input='get_weather {"city": "Paris"}', tools=[WEATHER]
    )
    [call] = first.output
    assert call.type == "function_call"
    second = client.responses.create(
        model="echo",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": '{"temp": 18}'}],
        tools=[WEATHER],
    )
    assert second.status == "completed"
    assert '{"temp": 18}' in second.output_text
    assert second.previous_response_id == first.id
    # the chain grows: a third turn sees the whole history and needs no outputs
    third = client.responses.create(model="echo", previous_response_id=second.id, input="thanks")
    assert third.output_text == "thanks"


def test_store_false_is_never_retrievable_nor_chainable(client: OpenAI) -> None:
    ephemeral = client.responses.create(model="echo", input="forget me", store=False)
    assert ephemeral.output_text == "forget me"
    assert ephemeral.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(ephemeral.id)
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model="echo", input="again", previous_response_id=ephemeral.id)
    assert info.value.code == "previous_response_not_found"


def test_a_deleted_response_breaks_its_chain(client: OpenAI) -> None:
    first = client.responses.create(model="echo", input="one")
    second = client.responses.create(model="echo", input="two", previous_response_id=first.id)
    client.responses.delete(first.id)
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model="echo", input="three", previous_response_id=second.id)
    assert info.value.code == "previous_response_not_found"


def test_input_items_paginate_with_cursor_and_order(client: OpenAI) -> None:
    texts = [f"message {i}" for i in range(5)]
    created = client.responses.create(
        model="echo", input=[{"role": "user", "content": t} for t in texts]
    )
    page = client.responses.input_items.list(created.id, limit=2, order="asc")
    assert page.has_more is True
    assert [item.content[0].text for item in page.data] == texts[:2]  # type: ignore[union-attr]  # the SDK's item union; the test knows which member this is
    everything = list(client.responses.input_items.list(created.id, limit=2, order="asc"))
    assert [item.content[0].text for item in everything] == texts  # type: ignore[union-attr]  # the SDK's item union; the test knows which member this is
    newest_first = list(client.responses.input_items.list(created.id))
    assert [item.content[0].text for item in newest_first] == texts[::-1]  # type: ignore[union-attr]  # the SDK's item union; the test knows which member this is


def test_models_endpoint_lists_the_served_models(live_server: LiveServer) -> None:
    ids = {model.id for model in live_server.openai().models.list()}
    assert {"echo", "scripted"} <= ids


def test_docs_and_openapi_are_served(live_server: LiveServer) -> None:
    root = live_server.base_url.removesuffix("/v1")
    docs = httpx.get(f"{root}/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
    spec = httpx.get(f"{root}/openapi.json").json()
    assert "/v1/responses" in spec["paths"]


def test_a_client_disconnect_mid_stream_cancels_generation_and_records_cancelled(
    live_server: LiveServer, client: OpenAI
) -> None:
    # the model never finishes on its own: only the disconnect can end this response
    assert live_server.scripted is not None
    live_server.scripted.push([OutputTextDelta("partial"), live_server.gate()])
    response_id = None
    with (
        httpx.Client(timeout=10) as http,
        http.stream(
            "POST",
            f"{live_server.base_url}/responses",
            json={"model": "scripted", "input": "go", "stream": True},
        ) as resp,
    ):
        for line in resp.iter_lines():
            if line.startswith("data:") and '"response.output_text.delta"' in line:
                break
            if line.startswith("data:") and response_id is None:
                response_id = json.loads(line[5:])["response"]["id"]
    assert response_id is not None
    deadline = time.monotonic() + 30  # a ceiling for a broken server, not a speed test
    while (status := client.responses.retrieve(response_id).status) == "in_progress":
        assert time.monotonic() < deadline, "generation did not stop after the client went away"
        time.sleep(0.02)
    stored = client.responses.retrieve(response_id)
    assert status == "cancelled"
    assert stored.output_text == "partial"
