"""The local provider on the real Qwen2.5-Coder models (skipped without `turnstream[local]`).

Kept short on purpose: one model load per size (conftest.py), small `max_output_tokens`.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from turnstream.engine.deltas import FinishDelta, OutputTextDelta, ToolCallDelta
from turnstream.providers.base import GenerationRequest
from turnstream.providers.local import LocalProvider

# one xdist worker runs every real-model test, and the models (`small`, `default`, in
# conftest.py) load once per session there.
# model inference is CPU-bound: the timeout is a ceiling for a hang on a loaded machine
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("real-model"), pytest.mark.timeout(300)]


WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Get the current weather for a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def user(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


async def test_small_model_answers_briefly_and_reports_length(small: LocalProvider) -> None:
    request = GenerationRequest("local", [user("Who are you?")], max_output_tokens=6)
    deltas = [d async for d in small.stream(request)]
    text = "".join(d.text for d in deltas if isinstance(d, OutputTextDelta))
    assert text.strip()
    assert deltas[-1] == FinishDelta("length")


async def test_default_model_does_a_tool_round_trip_and_answers_in_prose(
    default: LocalProvider,
) -> None:
    items: list[dict[str, Any]] = [user("What's the weather in Paris right now?")]
    first = [d async for d in default.stream(GenerationRequest("local", items, tools=[WEATHER]))]
    calls = [d for d in first if isinstance(d, ToolCallDelta)]
    assert len(calls) == 1
    assert calls[0].name == "get_weather"
    assert json.loads(calls[0].arguments)["city"].lower() == "paris"
    items += [
        {
            "type": "function_call",
            "call_id": calls[0].call_id,
            "name": "get_weather",
            "arguments": calls[0].arguments,
        },
        {
            "type": "function_call_output",
            "call_id": calls[0].call_id,
            "output": '{"temp_c": 18, "sky": "cloudy"}',
        },
    ]
    request = GenerationRequest("local", items, tools=[WEATHER], max_output_tokens=40)
    second = [d async for d in default.stream(request)]
    assert not any(isinstance(d, ToolCallDelta) for d in second)
    answer = "".join(d.text for d in second if isinstance(d, OutputTextDelta))
    assert "18" in answer
    assert not answer.lstrip().startswith(("{", "<", "`"))


async def test_closing_the_stream_stops_generation_promptly(small: LocalProvider) -> None:
    request = GenerationRequest("local", [user("Count from 1 to 500.")], max_output_tokens=400)
    stream = small.stream(request)
    async for _ in stream:
        break
    await stream.aclose()  # type: ignore[attr-defined]
    workers = list(small._active)
    # generation stops at its next token; the join's limit only catches a worker that
    # never stops (400 tokens would take far longer), not a slow machine
    for worker in workers:
        await asyncio.to_thread(worker.join, 10.0)
    assert not any(t.is_alive() for t in workers), "generation went on after the consumer left"


CITY_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
    "required": ["city", "country"],
    "additionalProperties": False,
}


@pytest.mark.slow
async def test_text_format_json_schema_makes_the_model_answer_json_that_validates(
    small: LocalProvider,
) -> None:
    import jsonschema

    text_format = {"type": "json_schema", "name": "city", "schema": CITY_SCHEMA, "strict": True}
    request = GenerationRequest(
        "local",
        [user("Name the capital of Italy.")],
        max_output_tokens=60,
        text_format=text_format,
    )
    deltas = [d async for d in small.stream(request)]
    answer = "".join(d.text for d in deltas if isinstance(d, OutputTextDelta))
    jsonschema.validate(json.loads(answer), CITY_SCHEMA)


LAMP = {
    "type": "function",
    "name": "set_lamp",
    "description": "Set the lamp's colour.",
    "parameters": {
        "type": "object",
        "properties": {"colour": {"type": "string", "enum": ["red", "green", "blue"]}},
        "required": ["colour"],
        "additionalProperties": False,
    },
}


async def test_a_call_written_as_text_is_decoded_under_its_tool_s_schema(
    small: LocalProvider,
) -> None:
    # Without the call grammar the model passes the user's "purple", which the enum
    # does not allow; under it, a call can only carry one of the enum's values.
    request = GenerationRequest(
        "local", [user("Set the lamp to purple.")], tools=[LAMP], max_output_tokens=30
    )
    deltas = [d async for d in small.stream(request)]
    calls = [d for d in deltas if isinstance(d, ToolCallDelta) and d.name]
    assert [c.name for c in calls] == ["set_lamp"]
    arguments = "".join(d.arguments for d in deltas if isinstance(d, ToolCallDelta))
    assert json.loads(arguments) in ({"colour": c} for c in ("red", "green", "blue"))
