from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.providers.helpers import (
    assistant,
    calls_of,
    collect,
    function_call,
    function_output,
    request,
    text_of,
    tool,
)
from turnstream.engine.deltas import (
    FinishDelta,
    ItemEndDelta,
    OutputTextDelta,
    ToolCallDelta,
    UsageDelta,
)
from turnstream.providers.base import Provider
from turnstream.providers.echo import EchoProvider

WEATHER = tool(
    "get_weather",
    {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        "required": ["city", "unit"],
        "additionalProperties": False,
    },
)
TIME = tool(
    "get_time",
    {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]},
)


async def run(*items: Any, **fields: Any) -> list[Any]:
    return await collect(EchoProvider().stream(request(*items, **fields)))


def test_echo_provider_satisfies_the_provider_protocol_and_serves_echo() -> None:
    provider = EchoProvider()
    assert isinstance(provider, Provider)
    assert list(provider.models()) == ["echo"]
    assert list(EchoProvider(models=("echo-slow",)).models()) == ["echo-slow"]


async def test_echoes_the_last_user_message_a_word_at_a_time_keeping_whitespace() -> None:
    text = "  Hello,   wide\nworld!\t "
    deltas = await run("ignored earlier message", assistant("ok"), text)
    texts = [d.text for d in deltas if isinstance(d, OutputTextDelta)]
    assert "".join(texts) == text
    assert texts[1:4] == ["Hello,   ", "wide\n", "world!\t "]
    assert deltas[-3:] == [
        ItemEndDelta(),
        UsageDelta(input_tokens=7, output_tokens=3),
        FinishDelta(),
    ]


async def test_echo_of_an_empty_message_yields_no_item_but_still_finishes() -> None:
    deltas = await run("")
    assert [type(d) for d in deltas] == [UsageDelta, FinishDelta]


async def test_trailing_function_outputs_are_answered_with_text_quoting_each_verbatim() -> None:
    deltas = await run(
        "weather and time?",
        function_call("call_1", "get_weather", "{}"),
        function_call("call_2", "get_time", "{}"),
        function_output("call_1", '{"temp": 18,  "sky": "clear"}'),
        function_output("call_2", [{"type": "input_text", "text": "12:00 UTC"}]),
        tools=[WEATHER, TIME],
    )
    assert text_of(deltas) == 'Tool results: {"temp": 18,  "sky": "clear"}; 12:00 UTC'
    assert not calls_of(deltas)
    assert deltas[-1] == FinishDelta("stop")


async def test_calls_the_tool_named_in_the_message_with_the_json_object_that_fits() -> None:
    deltas = await run(
        'use get_weather with {"city": "Paris", "unit": "celsius"} please', tools=[TIME, WEATHER]
    )
    assert calls_of(deltas) == {
        0: {
            "name": "get_weather",
            "call_id": None,
            "arguments": '{"city":"Paris","unit":"celsius"}',
        }
    }
    assert not text_of(deltas)


async def test_json_that_does_not_fit_the_schema_falls_back_to_a_minimal_valid_object() -> None:
    deltas = await run('get_weather {"city": 3, "unit": "kelvin"}', tools=[WEATHER])
    assert json.loads(calls_of(deltas)[0]["arguments"]) == {"city": "", "unit": "celsius"}


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        (
            {
                "type": "object",
                "properties": {
                    "s": {"type": "string"},
                    "i": {"type": "integer"},
                    "n": {"type": "number"},
                    "b": {"type": "boolean"},
                    "a": {"type": "array", "items": {"type": "string"}},
                    "o": {
                        "type": "object",
                        "properties": {"x": {"type": "integer"}},
                        "required": ["x"],
                    },
                    "e": {"type": "string", "enum": ["red", "blue"]},
                    "nullable": {"type": ["string", "null"]},
                    "optional": {"type": "string"},
                },
                "required": ["s", "i", "n", "b", "a", "o", "e", "nullable"],
            },
            {
                "s": "",
                "i": 0,
                "n": 0,
                "b": False,
                "a": [],
                "o": {"x": 0},
                "e": "red",
                "nullable": "",
            },
        ),
        ({"type": "object", "properties": {}}, {}),
        ({}, {}),
    ],
)
async def test_minimal_arguments_give_required_keys_zero_values_of_their_type(
    schema: dict[str, Any], expected: dict[str, Any]
) -> None:
    deltas = await run("do it", tools=[tool("do", schema)])
    assert json.loads(calls_of(deltas)[0]["arguments"]) == expected


@pytest.mark.parametrize(
    ("arguments", "fits"),
    [
        ({"city": "Oslo", "unit": "celsius"}, True),
        ({"city": "Oslo"}, False),  # missing required key
        ({"city": "Oslo", "unit": "celsius", "extra": 1}, False),  # additionalProperties
        ({"city": ["Oslo"], "unit": "celsius"}, False),  # wrong type
        ({"city": "Oslo", "unit": "kelvin"}, False),  # not in enum
    ],
)
async def test_json_arguments_are_checked_against_required_types_enum_and_extras(
    arguments: dict[str, Any], fits: bool
) -> None:
    deltas = await run(f"get_weather {json.dumps(arguments)}", tools=[WEATHER])
    sent = json.loads(calls_of(deltas)[0]["arguments"])
    assert (sent == arguments) is fits


async def test_integer_and_boolean_types_are_not_confused() -> None:
    count = tool(
        "count", {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    )
    assert json.loads(calls_of(await run('count {"n": true}', tools=[count]))[0]["arguments"]) == {
        "n": 0
    }
    assert json.loads(calls_of(await run('count {"n": 2.5}', tools=[count]))[0]["arguments"]) == {
        "n": 0
    }
    assert json.loads(calls_of(await run('count {"n": 7}', tools=[count]))[0]["arguments"]) == {
        "n": 7
    }


async def test_without_a_named_tool_the_first_offered_tool_is_called() -> None:
    deltas = await run('what is {"tz": "UTC"}', tools=[TIME, WEATHER])
    assert calls_of(deltas)[0]["name"] == "get_time"
    assert json.loads(calls_of(deltas)[0]["arguments"]) == {"tz": "UTC"}


async def test_a_tool_name_inside_a_longer_word_does_not_count_as_a_mention() -> None:
    deltas = await run("call get_weathers or xget_time", tools=[TIME, WEATHER])
    assert calls_of(deltas)[0]["name"] == "get_time"  # fell back to the first tool


async def test_tool_choice_none_echoes_instead_of_calling() -> None:
    deltas = await run("get_weather now", tools=[WEATHER], tool_choice="none")
    assert text_of(deltas) == "get_weather now"
    assert not calls_of(deltas)


async def test_tool_choice_required_forces_a_call() -> None:
    deltas = await run("just talk", tools=[WEATHER], tool_choice="required")
    assert calls_of(deltas)[0]["name"] == "get_weather"


async def test_tool_choice_naming_a_function_forces_that_function() -> None:
    deltas = await run(
        "get_weather please",
        tools=[WEATHER, TIME],
        tool_choice={"type": "function", "name": "get_time"},
    )
    assert [call["name"] for call in calls_of(deltas).values()] == ["get_time"]


async def test_allowed_tools_restricts_which_tools_may_be_called() -> None:
    deltas = await run(
        "get_weather and get_time",
        tools=[WEATHER, TIME],
        tool_choice={
            "type": "allowed_tools",
            "mode": "required",
            "tools": [{"type": "function", "name": "get_time"}],
        },
    )
    assert [call["name"] for call in calls_of(deltas).values()] == ["get_time"]


async def test_allowed_tools_with_no_offered_tool_left_echoes() -> None:
    deltas = await run(
        "hello",
        tools=[WEATHER],
        tool_choice={
            "type": "allowed_tools",
            "mode": "auto",
            "tools": [{"type": "function", "name": "nope"}],
        },
    )
    assert text_of(deltas) == "hello"


async def test_non_function_tools_are_ignored() -> None:
    deltas = await run("hello", tools=[{"type": "web_search"}])
    assert text_of(deltas) == "hello"


async def test_parallel_calls_each_named_tool_in_order_with_its_own_arguments() -> None:
    deltas = await run(
        'first get_time {"tz": "CET"} then get_weather {"city": "Rome", "unit": "celsius"}',
        tools=[WEATHER, TIME],
    )
    calls = calls_of(deltas)
    assert [calls[i]["name"] for i in sorted(calls)] == ["get_time", "get_weather"]
    assert json.loads(calls[0]["arguments"]) == {"tz": "CET"}
    assert json.loads(calls[1]["arguments"]) == {"city": "Rome", "unit": "celsius"}
    ends = [i for i, d in enumerate(deltas) if isinstance(d, ItemEndDelta)]
    assert len(ends) == 2
    assert all(isinstance(d, ToolCallDelta) and d.index == 0 for d in deltas[: ends[0]])


async def test_without_parallel_tool_calls_only_the_first_named_tool_is_called() -> None:
    deltas = await run(
        "get_weather then get_time", tools=[WEATHER, TIME], parallel_tool_calls=False
    )
    assert [call["name"] for call in calls_of(deltas).values()] == ["get_weather"]


async def test_arguments_stream_in_small_pieces_that_concatenate_to_the_whole() -> None:
    deltas = await run(
        'get_weather {"city": "San Francisco", "unit": "fahrenheit"}', tools=[WEATHER]
    )
    pieces = [d.arguments for d in deltas if isinstance(d, ToolCallDelta) and d.arguments]
    assert len(pieces) > 5
    assert all(len(piece) <= 4 for piece in pieces)
    assert "".join(pieces) == '{"city":"San Francisco","unit":"fahrenheit"}'
    first = deltas[0]
    assert isinstance(first, ToolCallDelta)
    assert first.name == "get_weather"
    assert first.call_id is None


async def test_max_output_tokens_truncates_text_and_finishes_with_length() -> None:
    deltas = await run("one two three four five", max_output_tokens=3)
    assert text_of(deltas) == "one two three "
    assert ItemEndDelta() not in deltas
    assert deltas[-2:] == [UsageDelta(input_tokens=5, output_tokens=3), FinishDelta("length")]


async def test_max_output_tokens_equal_to_the_answer_length_is_not_truncated() -> None:
    deltas = await run("one two three", max_output_tokens=3)
    assert text_of(deltas) == "one two three"
    assert deltas[-1] == FinishDelta("stop")


async def test_max_output_tokens_truncates_tool_arguments_with_length() -> None:
    deltas = await run('get_time {"tz": "Europe/Amsterdam"}', tools=[TIME], max_output_tokens=2)
    assert calls_of(deltas)[0]["arguments"] == '{"tz":"E'
    assert deltas[-1] == FinishDelta("length")


async def test_delay_spaces_out_deltas_so_a_consumer_can_stop_midway(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # record the pauses instead of timing them: a busy machine stretches wall time
    pauses: list[float] = []
    real_sleep = asyncio.sleep

    async def recorded_sleep(seconds: float) -> None:
        pauses.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", recorded_sleep)
    stream = EchoProvider(delay=0.05).stream(request("a b c d e f g h"))
    assert await anext(stream) == OutputTextDelta("a ")
    assert pauses == []  # the first delta is not held back
    assert await anext(stream) == OutputTextDelta("b ")
    assert pauses == [0.05]
    await stream.aclose()


async def test_cancelling_a_delayed_echo_stream_stops_it_promptly() -> None:
    async def consume() -> None:
        async for _ in EchoProvider(delay=10).stream(request("a b c")):
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        # each word waits 10 s: ending within 5 s means the cancel cut the wait short
        await asyncio.wait_for(task, 5)


async def test_hold_after_stops_the_stream_midway_until_it_is_cancelled() -> None:
    stream = EchoProvider(hold_after=2).stream(request("a b c"))
    assert [await anext(stream), await anext(stream)] == [
        OutputTextDelta("a "),
        OutputTextDelta("b "),
    ]
    third = asyncio.ensure_future(anext(stream))
    # without the hold the third word is ready at once: nothing here waits on a clock
    done, _ = await asyncio.wait([third], timeout=0.05)
    assert not done
    third.cancel()
    with pytest.raises(asyncio.CancelledError):
        await third


async def test_hold_after_counts_words_of_text_and_lets_a_tool_call_through() -> None:
    held = EchoProvider(hold_after=0)
    deltas = await collect(held.stream(request('get_time {"tz": "UTC"}', tools=[TIME])))
    assert json.loads(calls_of(deltas)[0]["arguments"]) == {"tz": "UTC"}
    assert deltas[-1] == FinishDelta()
