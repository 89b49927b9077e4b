"""`text.format` reaches Chat models as `response_format`; reasoning goes back where taken."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from openai import OpenAI

from tests.livesrv import running_server
from tests.providers.fake_chat_upstream import FakeChatUpstream, FakeReply, finish_chunk, text_chunk
from turnstream.providers._chat_request import build_chat_body
from turnstream.providers._local_chat import build_chat_request
from turnstream.providers.base import GenerationRequest, ProviderError
from turnstream.providers.echo import EchoProvider
from turnstream.providers.openai_chat import OpenAIChatProvider

CITY = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city", "population"],
    "additionalProperties": False,
}
JSON_SCHEMA_FORMAT = {"type": "json_schema", "name": "city", "schema": CITY, "strict": True}
WEATHER = {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}


def user(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def test_json_schema_and_json_object_become_response_format() -> None:
    request = GenerationRequest("m", [user("x")], text_format=JSON_SCHEMA_FORMAT)
    assert build_chat_body(request, "up")["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "city", "schema": CITY, "strict": True},
    }
    request = GenerationRequest("m", [user("x")], text_format={"type": "json_object"})
    assert build_chat_body(request, "up")["response_format"] == {"type": "json_object"}
    assert "response_format" not in build_chat_body(GenerationRequest("m", [user("x")]), "up")


def test_the_embedded_model_decodes_under_the_schema_except_while_tools_may_be_called() -> None:
    plain = build_chat_request(
        GenerationRequest("local", [user("x")], text_format=JSON_SCHEMA_FORMAT)
    )
    assert plain.body["response_format"]["json_schema"]["schema"] == CITY
    assert not plain.sniff_calls
    with_tools = build_chat_request(
        GenerationRequest("local", [user("x")], tools=[WEATHER], text_format=JSON_SCHEMA_FORMAT)
    )
    assert "response_format" not in with_tools.body  # a grammar would leave no room for a call
    answer_turn = build_chat_request(
        GenerationRequest(
            "local",
            [
                user("x"),
                {"type": "function_call", "call_id": "c", "name": "get_weather", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c", "output": "sunny"},
            ],
            tools=[WEATHER],
            text_format=JSON_SCHEMA_FORMAT,
        )
    )
    assert answer_turn.body["response_format"]["json_schema"]["schema"] == CITY


async def test_an_upstream_without_structured_output_refuses_it_with_a_400(
    fake_upstream: FakeChatUpstream,
) -> None:
    provider = OpenAIChatProvider(
        fake_upstream.base_url, models={"m": "up"}, structured_output=False
    )
    try:
        stream = provider.stream(
            GenerationRequest("m", [user("x")], text_format=JSON_SCHEMA_FORMAT)
        )
        with pytest.raises(ProviderError) as raised:
            await anext(aiter(stream))
    finally:
        await provider.aclose()
    assert raised.value.status == 400
    assert "text.format" in raised.value.message
    assert fake_upstream.requests == []


def test_reasoning_goes_back_as_reasoning_content_only_to_upstreams_that_take_it() -> None:
    items = [
        user("Weather?"),
        {
            "type": "reasoning",
            "summary": [],
            "content": [{"type": "reasoning_text", "text": "Hmm."}],
        },
        {"type": "function_call", "call_id": "c", "name": "get_weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c", "output": "sunny"},
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "Easy."}]},
        {"type": "message", "role": "assistant", "content": "It is sunny."},
    ]
    request = GenerationRequest("m", items, tools=[WEATHER])
    taking = build_chat_body(request, "up", reasoning_content=True)["messages"]
    assert taking[1]["reasoning_content"] == "Hmm."
    assert taking[1]["tool_calls"][0]["id"] == "c"
    assert taking[3] == {
        "role": "assistant",
        "content": "It is sunny.",
        "reasoning_content": "Easy.",
    }
    plain = build_chat_body(request, "up")["messages"]
    assert all("reasoning_content" not in message for message in plain)


def test_json_schema_through_the_bridge_answers_json_that_validates(
    fake_upstream: FakeChatUpstream, tmp_path: Path
) -> None:
    answer = json.dumps({"city": "Paris", "population": 2102650})
    fake_upstream.queue(
        FakeReply(chunks=[text_chunk(answer[:10]), text_chunk(answer[10:]), finish_chunk()])
    )
    provider = OpenAIChatProvider(fake_upstream.base_url, models={"bridged": "up"})
    with running_server(tmp_path / "b.db", providers=[provider, EchoProvider()]) as live:
        client = OpenAI(base_url=live.base_url, api_key="t", max_retries=0)
        live.clients.append(client)
        response = client.responses.create(
            model="bridged",
            input="The largest city of France, as JSON.",
            text={"format": JSON_SCHEMA_FORMAT},  # type: ignore[typeddict-item]  # the SDK's union narrows by literal
        )
    jsonschema.validate(json.loads(response.output_text), CITY)
    assert response.text.format.type == "json_schema"
    sent = fake_upstream.requests[0].body["response_format"]
    assert sent["json_schema"]["schema"] == CITY
    assert sent["json_schema"]["strict"] is True
