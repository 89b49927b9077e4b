"""Request translation and chunk translation for the local model, without a model."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.providers.helpers import CALCULATOR, CLOCK, CURRENCY, UNITS
from turnstream.engine.deltas import (
    FinishDelta,
    ItemEndDelta,
    OutputTextDelta,
    ToolCallDelta,
    UsageDelta,
)
from turnstream.providers._local_chat import (
    _ECHOED_EARLIER,
    _ECHOED_MESSAGE,
    _LATER_TURN_NOTE,
    _PROSE_RE_SAMPLE,
    _REFUSED_RESULT,
    _UNFINISHED_CALL,
    ASSISTANT_NAME,
    DEFAULT_TEMPERATURE,
    ChunkTranslator,
    EchoGuard,
    answer_body,
    build_chat_request,
    chat_tools,
    confirm_body,
    failure_note,
    fit_arguments,
    result_note,
    retry_body,
    runaway,
    system_prompt,
    uncalled_reason,
)
from turnstream.providers._text_calls import ParsedCall
from turnstream.providers.base import GenerationRequest, ProviderError

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def user(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def call_item(call_id: str = "call_1") -> dict[str, Any]:
    return {
        "type": "function_call",
        "call_id": call_id,
        "name": "get_weather",
        "arguments": '{"city": "Paris"}',
    }


def output_item(call_id: str = "call_1") -> dict[str, Any]:
    return {"type": "function_call_output", "call_id": call_id, "output": '{"temp_c": 18}'}


def chunk(content: str | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    delta = {} if content is None else {"content": content}
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}


def test_chat_tools_nests_flat_function_tools_and_skips_others() -> None:
    nested = chat_tools([WEATHER, {"type": "web_search"}])
    assert nested == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": WEATHER["parameters"],
            },
        }
    ]


def test_system_prompt_names_the_assistant_and_is_byte_stable() -> None:
    first = system_prompt("Be brief.", [WEATHER])
    assert ASSISTANT_NAME in first
    assert first == system_prompt("Be brief.", [dict(WEATHER)])
    assert "get_weather" in first


def test_system_prompt_is_identical_on_the_call_turn_and_the_answer_turn() -> None:
    turn1 = build_chat_request(GenerationRequest("local", [user("Weather?")], tools=[WEATHER]))
    turn2 = build_chat_request(
        GenerationRequest("local", [user("Weather?"), call_item(), output_item()], tools=[WEATHER])
    )
    assert turn1.body["messages"][0] == turn2.body["messages"][0]
    assert turn1.body["messages"][1] == turn2.body["messages"][1]
    assert "tools" not in turn1.body
    assert "tools" not in turn2.body
    assert turn2.answer_turn
    assert turn2.sniff_calls


def test_prompted_history_replays_calls_as_the_model_writes_them_and_results_as_user_turns() -> (
    None
):
    plan = build_chat_request(
        GenerationRequest("local", [user("Weather?"), call_item(), output_item()], tools=[WEATHER])
    )
    _, _, assistant, result = plan.body["messages"]
    assert assistant == {
        "role": "assistant",
        "content": '{"name": "get_weather", "arguments": {"city": "Paris"}}',
    }
    assert result["role"] == "user"
    assert "get_weather" in result["content"]
    assert '{"temp_c": 18}' in result["content"]


def test_native_strategy_sends_tools_then_drops_them_on_the_answer_turn() -> None:
    turn1 = build_chat_request(
        GenerationRequest("local", [user("Weather?")], tools=[WEATHER]), strategy="native"
    )
    assert turn1.body["tools"] == chat_tools([WEATHER])
    assert turn1.sniff_calls
    turn2 = build_chat_request(
        GenerationRequest("local", [user("Weather?"), call_item(), output_item()], tools=[WEATHER]),
        strategy="native",
    )
    assert "tools" not in turn2.body
    assert not turn2.sniff_calls
    assistant, tool = turn2.body["messages"][2:]
    assert assistant["tool_calls"][0]["function"]["name"] == "get_weather"
    assert tool == {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": 18}'}


def test_consecutive_calls_share_one_assistant_turn() -> None:
    items = [user("Weather?"), call_item("a"), call_item("b"), output_item("a"), output_item("b")]
    prompted = build_chat_request(GenerationRequest("local", items, tools=[WEATHER]))
    assert prompted.body["messages"][2]["content"].count("get_weather") == 2
    native = build_chat_request(
        GenerationRequest("local", items, tools=[WEATHER]), strategy="native"
    )
    assert len(native.body["messages"][2]["tool_calls"]) == 2


def test_instructions_and_leading_system_messages_join_the_system_prompt() -> None:
    items = [
        {
            "type": "message",
            "role": "developer",
            "content": [{"type": "input_text", "text": "Rule"}],
        },
        user("Hi"),
    ]
    plan = build_chat_request(GenerationRequest("local", items, instructions="Be brief."))
    system = plan.body["messages"][0]["content"]
    assert "Be brief." in system
    assert "Rule" in system
    assert plan.body["messages"][1:] == [{"role": "user", "content": "Hi"}]


def test_sampling_and_limits_are_passed_through() -> None:
    plan = build_chat_request(
        GenerationRequest("local", [user("Hi")], max_output_tokens=7, temperature=0.9, top_p=0.5)
    )
    assert plan.body["max_tokens"] == 7
    assert plan.body["temperature"] == 0.9
    assert plan.body["top_p"] == 0.5
    assert plan.body["stream"] is True
    assert plan.body["stream_options"] == {"include_usage": True}


def test_tool_choice_none_offers_no_tools_and_required_constrains_the_reply() -> None:
    none = build_chat_request(
        GenerationRequest("local", [user("Hi")], tools=[WEATHER], tool_choice="none")
    )
    assert not none.sniff_calls
    assert "get_weather" not in none.body["messages"][0]["content"]
    forced = build_chat_request(
        GenerationRequest("local", [user("Hi")], tools=[WEATHER], tool_choice="required")
    )
    schema = forced.body["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["name"] == {"const": "get_weather"}


def test_images_become_a_placeholder_the_text_model_can_read() -> None:
    item = {
        "type": "message",
        "role": "user",
        "content": [
            {"type": "input_text", "text": "What is this?"},
            {"type": "input_image", "image_url": "x"},
        ],
    }
    plan = build_chat_request(GenerationRequest("local", [item]))
    assert "cannot see images" in plan.body["messages"][1]["content"]


def _translate(chunks: list[dict[str, Any]], *, tools: bool = True) -> list[Any]:
    request = GenerationRequest("local", [user("Weather?")], tools=[WEATHER] if tools else ())
    translator = ChunkTranslator(build_chat_request(request))
    out = [d for c in chunks for d in translator.feed(c)]
    return out + translator.finish()


def test_text_reply_streams_with_usage_and_stop() -> None:
    usage = {
        "prompt_tokens": 10,
        "completion_tokens": 2,
        "prompt_tokens_details": {"cached_tokens": 8},
    }
    deltas = _translate([chunk("Hi"), chunk(" there", "stop"), {"choices": [], "usage": usage}])
    assert deltas == [
        OutputTextDelta("Hi"),
        OutputTextDelta(" there"),
        ItemEndDelta(),
        UsageDelta(input_tokens=10, output_tokens=2, cached_tokens=8),
        FinishDelta("stop"),
    ]


def test_fallback_call_in_content_becomes_a_tool_call() -> None:
    pieces = ['{"', 'name": "get_weather", "argu', 'ments": {"city": "Paris"}}']
    deltas = _translate([chunk(p) for p in pieces] + [chunk(finish="stop")])
    call, end, finish = deltas
    assert isinstance(call, ToolCallDelta)
    assert (call.index, call.name, call.arguments) == (0, "get_weather", '{"city": "Paris"}')
    assert call.call_id
    assert call.call_id.startswith("call_")
    assert end == ItemEndDelta()
    assert finish == FinishDelta("stop")


def test_native_tool_call_chunks_pass_through() -> None:
    native = {
        "choices": [
            {
                "index": 0,
                "delta": {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "c1",
                            "function": {"name": "get_weather", "arguments": "{}"},
                        }
                    ]
                },
                "finish_reason": None,
            }
        ]
    }
    deltas = _translate([native, chunk(finish="tool_calls")])
    assert deltas[0] == ToolCallDelta(0, "get_weather", "c1", "{}")
    assert deltas[-1] == FinishDelta("stop")


def test_length_finish_makes_the_response_incomplete_and_keeps_a_truncated_call_as_text() -> None:
    deltas = _translate(
        [chunk('{"name": "get_weather", "arguments": {"ci'), chunk(finish="length")]
    )
    assert deltas[0] == OutputTextDelta('{"name": "get_weather", "arguments": {"ci')
    assert deltas[-1] == FinishDelta("length")


def test_without_tools_json_looking_text_is_just_text() -> None:
    deltas = _translate([chunk('{"name": "x"}'), chunk(finish="stop")], tools=False)
    assert deltas[0] == OutputTextDelta('{"name": "x"}')


@pytest.mark.parametrize(
    "bad",
    [{"error": {"code": 400, "message": "context too long"}}, {"code": 500, "message": "boom"}],
)
def test_error_chunks_raise_provider_error(bad: dict[str, Any]) -> None:
    translator = ChunkTranslator(build_chat_request(GenerationRequest("local", [user("x")])))
    with pytest.raises(ProviderError) as raised:
        translator.feed(bad)
    assert raised.value.code == "model_error"


def test_native_calls_without_index_and_with_repeated_names_read_as_the_bridge_reads_them() -> None:
    def piece(call: dict[str, Any]) -> dict[str, Any]:
        return {"choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}]}

    fn = {"name": "get_weather", "arguments": ""}
    deltas = _translate(
        [
            piece({"id": "a", "function": fn}),
            piece({"id": "a", "function": {"name": "get_weather", "arguments": '{"city":'}}),
            piece({"id": "b", "function": fn}),
            piece({"id": "b", "function": {"name": "get_weather", "arguments": "{}"}}),
            chunk(finish="tool_calls"),
        ]
    )
    calls = [d for d in deltas if isinstance(d, ToolCallDelta)]
    assert [(c.index, c.name, c.call_id) for c in calls if c.name] == [
        (0, "get_weather", "a"),
        (1, "get_weather", "b"),
    ]
    assert "".join(c.arguments for c in calls if c.index == 0) == '{"city":'


def test_prompted_and_native_histories_come_from_the_bridge_translator() -> None:
    from turnstream.providers._chat_request import build_chat_body

    items = [user("Weather?"), call_item(), output_item()]
    native = build_chat_request(
        GenerationRequest("local", items, tools=[WEATHER]), strategy="native"
    )
    bridge = build_chat_body(GenerationRequest("local", items, tools=[WEATHER]), "m")
    assert native.body["messages"][1:] == bridge["messages"]


def test_a_prompt_over_the_context_size_is_openai_s_context_length_exceeded() -> None:
    translator = ChunkTranslator(build_chat_request(GenerationRequest("local", [user("x")])))
    overflow = {
        "error": {
            "code": 400,
            "message": "request (8678 tokens) exceeds the available context size (8192 tokens)",
            "type": "exceed_context_size_error",
        }
    }
    with pytest.raises(ProviderError) as raised:
        translator.feed(overflow)
    assert (raised.value.code, raised.value.status) == ("context_length_exceeded", 400)


def test_tool_turns_decode_at_temperature_zero_unless_the_request_sets_one() -> None:
    with_tools = build_chat_request(GenerationRequest("local", [user("Hi")], tools=[WEATHER]))
    assert with_tools.body["temperature"] == 0.0
    answer = GenerationRequest(
        "local", [user("Weather?"), call_item(), output_item()], tools=[WEATHER]
    )
    assert build_chat_request(answer).body["temperature"] == 0.0
    chat = build_chat_request(GenerationRequest("local", [user("Hi")]))
    assert chat.body["temperature"] == DEFAULT_TEMPERATURE > 0
    set_by_request = GenerationRequest("local", [user("Hi")], tools=[WEATHER], temperature=0.7)
    assert build_chat_request(set_by_request).body["temperature"] == 0.7


def test_after_a_tool_result_the_tools_stay_on_offer_for_the_next_step_of_a_chain() -> None:
    request = GenerationRequest(
        "local", [user("Weather?"), call_item(), output_item()], tools=[WEATHER]
    )
    plan = build_chat_request(request)
    assert plan.sniff_calls
    assert "get_weather" in plan.body["messages"][0]["content"]
    result = plan.body["messages"][-1]["content"]
    assert '{"temp_c": 18}' in result
    assert "answer my request" in result


def test_a_tool_result_says_again_the_request_its_call_served() -> None:
    items = [
        user("Hello"),
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Hi"}],
        },
        user("Weather in Paris, then in Rome?"),
        call_item("c1"),
        output_item("c1"),
        call_item("c2"),
        output_item("c2"),
    ]
    messages = build_chat_request(GenerationRequest("local", items, tools=[WEATHER])).body[
        "messages"
    ]
    results = [m["content"] for m in messages if "returned:" in str(m["content"])]
    assert len(results) == 2
    for result in results:
        assert "My request was: Weather in Paris, then in Rome?" in result
        assert "Once every step is done" in result
    # a result with no user message before it says no request
    lone = build_chat_request(
        GenerationRequest("local", [call_item(), output_item()], tools=[WEATHER])
    )
    assert "My request was" not in lone.body["messages"][-1]["content"]


def _review_translator(items: list[dict[str, Any]]) -> ChunkTranslator:
    tool = {**WEATHER, "description": "Weather for a city, e.g. Lisbon"}
    return ChunkTranslator(
        build_chat_request(GenerationRequest("local", items, tools=[tool])), review=True
    )


def test_a_call_copying_a_description_example_is_held_back_with_the_reason() -> None:
    translator = _review_translator([user("Hello there!")])
    copied = '{"name": "get_weather", "arguments": {"city": "Lisbon"}}'
    deltas = translator.feed(chunk(copied)) + translator.finish()
    assert not any(isinstance(d, ToolCallDelta) for d in deltas)
    assert translator.rejected is not None
    calls, reason = translator.rejected
    assert [c.name for c in calls] == ["get_weather"]
    assert '"Lisbon"' in reason
    body = retry_body(translator._plan, calls, reason)
    assert body["messages"][-2] == {"role": "assistant", "content": copied}
    assert body["messages"][-1] == {"role": "user", "content": reason}
    assert body["messages"][:-2] == translator._plan.body["messages"]


def test_a_call_with_the_user_s_own_values_goes_out_under_review() -> None:
    translator = _review_translator([user("Weather in Lisbon?")])
    deltas = translator.feed(chunk('{"name": "get_weather", "arguments": {"city": "Lisbon"}}'))
    deltas += translator.finish()
    assert translator.rejected is None
    assert [d.name for d in deltas if isinstance(d, ToolCallDelta)] == ["get_weather"]


def test_a_text_call_to_an_unknown_tool_becomes_an_ordinary_call() -> None:
    story = '{"name": "write_long_story", "arguments": {"topic": "robots"}}'
    deltas = _translate([chunk(story), chunk(finish="stop")])
    assert not any(isinstance(d, OutputTextDelta) for d in deltas)
    (call,) = [d for d in deltas if isinstance(d, ToolCallDelta)]
    assert (call.name, call.arguments) == ("write_long_story", '{"topic": "robots"}')


def test_keys_a_closed_schema_does_not_declare_are_dropped_from_text_calls() -> None:
    closed = {
        "type": "object",
        "properties": {"expression": {"type": "string"}},
        "additionalProperties": False,
    }
    echoed = '{"expression": "17 + 25", "type": "string", "required": ["expression"]}'
    assert fit_arguments(echoed, closed) == '{"expression": "17 + 25"}'
    clean = '{"expression": "17 + 25"}'
    assert fit_arguments(clean, closed) is clean
    open_schema = {**closed, "additionalProperties": True}
    assert fit_arguments(echoed, open_schema) == echoed
    assert fit_arguments("not json", closed) == "not json"
    tool = {"type": "function", "name": "calculate", "parameters": closed}
    translator = ChunkTranslator(
        build_chat_request(GenerationRequest("local", [user("17 + 25?")], tools=[tool]))
    )
    reply = '{"name": "calculate", "arguments": ' + echoed + "}"
    deltas = translator.feed(chunk(reply)) + translator.finish()
    (call,) = [d for d in deltas if isinstance(d, ToolCallDelta)]
    assert call.arguments == '{"expression": "17 + 25"}'


def test_a_call_after_a_line_of_prose_goes_out_after_the_text() -> None:
    translator = ChunkTranslator(
        build_chat_request(GenerationRequest("local", [user("Weather in Paris?")], tools=[WEATHER]))
    )
    out = translator.feed(chunk("Let me check.\n"))
    out += translator.feed(chunk('{"name": "get_weather", "arguments": {"city": "Paris"}}'))
    out += translator.feed(chunk(finish="stop"))
    out += translator.finish()
    texts = [d.text for d in out if isinstance(d, OutputTextDelta)]
    calls = [d for d in out if isinstance(d, ToolCallDelta)]
    assert "".join(texts) == "Let me check.\n"
    assert [(c.name, c.arguments) for c in calls] == [("get_weather", '{"city": "Paris"}')]
    assert translator.decision == "call"


def test_a_rejected_call_after_prose_is_dropped_without_a_re_sample() -> None:
    translator = _review_translator([user("Hello there!")])
    out = translator.feed(chunk("Hi!\n"))
    out += translator.feed(chunk('{"name": "get_weather", "arguments": {"city": "Lisbon"}}'))
    out += translator.finish()
    assert "".join(d.text for d in out if isinstance(d, OutputTextDelta)) == "Hi!\n"
    assert not [d for d in out if isinstance(d, ToolCallDelta)]
    assert translator.rejected is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1+" * 90, True),
        ("(" + "2 * " * 45, True),
        (")" * 170, True),
        ("the same phrase, " * 11, True),
        ("1+" * 75, False),  # 150 characters: under the span
        ("# " + "=" * 77 + "\n" + "| --- " * 12 + "|", False),  # a banner, a table rule
        ("What is the weather like in Paris, Lisbon and Rome tomorrow morning?" * 1, False),
        ("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!@#$%^&*()", False),
        ("", False),
    ],
)
def test_runaway_is_a_short_unit_repeated_to_the_end(text: str, expected: bool) -> None:
    assert runaway(text) is expected


def test_a_call_that_runs_away_is_rejected_while_it_is_written() -> None:
    translator = _review_translator([user("What is 1 plus 1?")])
    out = translator.feed(chunk('{"name": "get_weather", "arguments": {"city": "1'))
    fed = 0
    while not translator.done and fed < 1_000:
        out += translator.feed(chunk("+1"))
        fed += 1
    assert translator.done
    assert fed < 100, "stopped at the first 160 repeated characters"
    assert translator.rejected == ([], _UNFINISHED_CALL)
    assert not [d for d in out if isinstance(d, OutputTextDelta | ToolCallDelta)]
    assert translator.finish() == []


def test_prose_that_runs_away_ends_while_it_is_written() -> None:
    # "You need to convert the cost of the bike ... 2300 / 85 * 0.85 = 2300 / 85 *
    # 0.85 = ..." went on to the token limit, 70 s
    translator = _review_translator([user("Hi! Tell me about bikes.")])
    opening = "Bikes are great. The sum is "
    out = translator.feed(chunk(opening))
    fed = 0
    while not translator.done and fed < 1_000:
        out += translator.feed(chunk("2300 / 85 * 0.85 = "))
        fed += 1
    assert translator.looped
    assert fed < 20, "stopped at the first 240 repeated characters"
    assert translator.rejected is None, "what was written is the reply"
    out += translator.finish()
    text = "".join(d.text for d in out if isinstance(d, OutputTextDelta))
    assert text.startswith(opening)
    assert len(text) < len(opening) + 20 * len("2300 / 85 * 0.85 = ")
    assert isinstance(out[-1], FinishDelta)


@pytest.mark.parametrize(
    "line",
    [
        "| 0 | 0 | 0 |\n",  # a table's rows: 14 characters, repeated 12 times
        "=" * 30 + "\n",  # banners
    ],
)
def test_prose_that_repeats_a_short_line_fewer_than_240_characters_goes_on(line: str) -> None:
    translator = _review_translator([user("Hi! Draw me a table.")])
    repeated = (line * 20)[:230]
    out = translator.feed(chunk("Here it is:\n" + repeated))
    assert not translator.looped
    assert not translator.done
    out += translator.feed(chunk("Done."))
    out += translator.feed(chunk(finish="stop")) + translator.finish()
    assert "".join(d.text for d in out if isinstance(d, OutputTextDelta)).endswith("Done.")


def test_a_long_call_that_does_not_repeat_itself_goes_out() -> None:
    city = "Llanfairpwllgwyngyllgogerychwyrndrobwllllantysiliogogogoch, Wales, United Kingdom"
    translator = _review_translator([user(f"What is the weather in {city}?")])
    call = json.dumps({"name": "get_weather", "arguments": {"city": city}})
    out: list[Any] = []
    for i in range(0, len(call), 3):
        out += translator.feed(chunk(call[i : i + 3]))
    out += translator.finish()
    assert translator.rejected is None
    assert [(d.name, json.loads(d.arguments)) for d in out if isinstance(d, ToolCallDelta)] == [
        ("get_weather", {"city": city})
    ]


def _grounded_translator(text: str) -> ChunkTranslator:
    tool = {**WEATHER, "description": "Weather for a city"}
    request = GenerationRequest("local", [user(text)], tools=[tool])
    return ChunkTranslator(build_chat_request(request), review=True, grounding=True)


def test_an_imagined_function_for_a_message_that_asks_for_no_tool_is_rejected_at_its_name() -> None:
    translator = _grounded_translator("Hi!")
    assert translator.feed(chunk('{"name": "gree')) == []
    assert not translator.done
    assert translator.feed(chunk('ting"')) == []
    assert translator.done, "rejected before its arguments are written"
    calls, reason = translator.rejected or ([], "")
    assert [(c.name, c.arguments) for c in calls] == [("greeting", "{}")]
    assert "There is no function named greeting" in reason
    assert translator.unasked, "so the answer is the plain-text pass"
    assert translator.finish() == []


@pytest.mark.parametrize(
    ("text", "head"),
    [
        # the message asks for the weather: the re-sample lists the real names
        ("What is the weather in Paris?", '{"name": "weather_now"'),
        # a real tool: its arguments decide
        ("Hi!", '{"name": "get_weather"'),
    ],
)
def test_a_call_is_not_rejected_at_its_name_when_its_arguments_could_matter(
    text: str, head: str
) -> None:
    translator = _grounded_translator(text)
    translator.feed(chunk(head))
    assert not translator.done


def test_a_reply_that_opened_as_a_call_and_broke_off_is_re_sampled_not_shown() -> None:
    cut = '{"name": "get_weather", "arguments": {"city": "2 + 3 * 100000000000'
    translator = _review_translator([user("Good morning!")])
    out = translator.feed(chunk(cut)) + translator.feed(chunk(finish="length"))
    out += translator.finish()
    assert not [d for d in out if isinstance(d, OutputTextDelta | ToolCallDelta)]
    assert translator.rejected is not None
    calls, reason = translator.rejected
    assert calls == []
    assert "did not finish" in reason
    retry = retry_body(translator._plan, calls, reason)["messages"]
    assert retry[-1] == {"role": "user", "content": reason}
    assert retry[-2]["role"] != "assistant"
    # without the review (as before) the text is what the model wrote
    plain = ChunkTranslator(
        build_chat_request(GenerationRequest("local", [user("Good morning!")], tools=[WEATHER]))
    )
    shown = plain.feed(chunk(cut)) + plain.finish()
    assert "".join(d.text for d in shown if isinstance(d, OutputTextDelta)) == cut


# -- a reply that repeats the tool-result message (EchoGuard) --------------------------

RESULT = (
    "The function calculate returned: 17 + 25 = 42\n"
    "My request was: What is 17 plus 25?\n"
    "If a step of my request is still not done, reply with only the JSON object."
)


def _fed(guard: EchoGuard, text: str, step: int = 4) -> str:
    return "".join(guard.feed(text[i : i + step]) for i in range(0, len(text), step))


@pytest.mark.parametrize(
    "reply",
    [
        # what the 1.5B wrote in the terminal chat for 4 of 5 one-call questions
        "The function calculate returned: 17 + 25 = 42\nMy request was: What is 17 plus 25?",
        "My request was: What is 17 plus 25?",
        "the  FUNCTION calculate\nreturned: 42",
    ],
)
def test_a_reply_that_repeats_a_line_of_the_message_is_an_echo(reply: str) -> None:
    guard = EchoGuard(RESULT, "17 + 25 = 42")
    assert _fed(guard, reply) == ""
    assert guard.echoed


@pytest.mark.parametrize(
    "reply",
    [
        "The sum of 17 and 25 is 42.",
        "17 + 25 = 42, so the answer is 42.",  # quoting the tool's output is an answer
        "17 + 25 = 42 is the result of the sum.",
        "42.",
        "Therefore the function of this is clear.",
    ],
)
def test_an_answer_goes_out_whole_once_it_differs_from_the_message(reply: str) -> None:
    guard = EchoGuard(RESULT, "17 + 25 = 42")
    shown = _fed(guard, reply) + (guard.release() if guard.holding else "")
    assert shown == reply
    assert not guard.echoed


@pytest.mark.parametrize(
    ("output", "reply", "echo"),
    [
        # what the 1.5B answered for a reminder and a word count: a line's later part
        ("Reminder set: 'take my medicine' at 07:45.", "do not work it out yourself.", True),
        ("9 words", "Once every step is done, answer my request.", True),
        # the tool's output after "returned: " is the answer's to quote
        ("100 EUR = 108.70 USD", "100 EUR = 108.70 USD.", False),
    ],
)
def test_a_reply_that_repeats_a_clause_inside_a_line_of_the_result_message_is_an_echo(
    output: str, reply: str, echo: bool
) -> None:
    message = (
        f"The function tool returned: {output}\nMy request was: Do it.\nIf a step of my "
        "request is still not done, reply with only the JSON object that calls the "
        "function for that step, using this result: do not work it out yourself. Once "
        "every step is done, answer my request in plain sentences with the results."
    )
    guard = EchoGuard(message, output)
    shown = _fed(guard, reply)
    assert guard.echoed is echo
    if not echo:
        shown += guard.release() if guard.holding else ""
    assert shown == ("" if echo else reply)


def test_an_answer_is_held_only_while_it_could_still_be_an_echo() -> None:
    guard = EchoGuard(RESULT, "17 + 25 = 42")
    assert guard.feed("The ") == ""
    assert guard.feed("sum") == "The sum", "released at the first difference"
    assert guard.feed(" is 42.") == " is 42."


def _answer_translator(
    output: str = "17 + 25 = 42", request: str = "What is 17 plus 25?"
) -> ChunkTranslator:
    items = [
        user(request),
        {
            "type": "function_call",
            "call_id": "call_1",
            "name": "calculate",
            "arguments": '{"expression": "17 + 25"}',
        },
        {"type": "function_call_output", "call_id": "call_1", "output": output},
    ]
    plan = build_chat_request(GenerationRequest("local", items, tools=[CALCULATOR]))
    return ChunkTranslator(plan, review=True, grounding=True)


def test_an_answer_turn_that_repeats_the_result_message_is_re_sampled_not_shown() -> None:
    translator = _answer_translator()
    out = translator.feed(chunk("The function calc"))
    out += translator.feed(chunk("ulate returned: 17 + 25 = 42\nMy request"))
    assert translator.done
    assert translator.rejected == ([], _ECHOED_MESSAGE)
    assert not [d for d in out if isinstance(d, OutputTextDelta)]
    assert translator.finish() == []
    retry = retry_body(translator._plan, [], _ECHOED_MESSAGE)["messages"]
    assert retry[-1] == {"role": "user", "content": _ECHOED_MESSAGE}


def test_an_answer_turn_that_repeats_the_users_request_is_re_sampled_not_shown() -> None:
    # the 1.5B, given the time in New York, answered with the question it was asked
    translator = _answer_translator(request="What is 17 plus 25, please?")
    out = translator.feed(chunk("What is 17 "))
    out += translator.feed(chunk("plus 25, please?"))
    out += translator.feed(chunk(finish="stop")) + translator.finish()
    assert translator.rejected == ([], _ECHOED_MESSAGE)
    assert not [d for d in out if isinstance(d, OutputTextDelta)]


def test_an_answer_may_open_with_a_short_request() -> None:
    translator = _answer_translator(request="Sum of 17 and 25?")
    out = translator.feed(chunk("Sum of 17 and 25? It is 42.")) + translator.feed(
        chunk(finish="stop")
    )
    out += translator.finish()
    assert "".join(d.text for d in out if isinstance(d, OutputTextDelta)) == (
        "Sum of 17 and 25? It is 42."
    )


def test_a_short_answer_that_only_began_like_the_message_is_shown_at_the_end() -> None:
    # a result with nothing an answer must show (`left_out`), so only the echo guard holds
    translator = _answer_translator(output="ok")
    out = translator.feed(chunk("The func")) + translator.feed(chunk(finish="stop"))
    out += translator.finish()
    assert "".join(d.text for d in out if isinstance(d, OutputTextDelta)) == "The func"
    assert translator.rejected is None


def test_without_the_review_an_echo_is_not_held() -> None:
    plan = _answer_translator()._plan
    translator = ChunkTranslator(plan)
    out = translator.feed(chunk("The function calculate returned: 42"))
    assert "".join(d.text for d in out if isinstance(d, OutputTextDelta)) == (
        "The function calculate returned: 42"
    )


def test_each_line_is_compared_and_an_echo_after_an_answer_ends_it() -> None:
    guard = EchoGuard(RESULT, "17 + 25 = 42")
    shown = _fed(guard, "17 + 25 = 42\nMy request was: What is 17 plus 25?\nMore.")
    assert shown == "17 + 25 = 42\n"
    assert guard.echoed


def test_a_multi_line_answer_goes_out_line_by_line() -> None:
    guard = EchoGuard(RESULT, "17 + 25 = 42")
    reply = "The sum is 42.\n\n- 17 plus 25\n- is 42\nThe function of addition is to combine."
    assert _fed(guard, reply) + guard.release() == reply
    assert not guard.echoed


def test_an_answer_followed_by_the_message_ends_at_the_answer() -> None:
    translator = _answer_translator()
    out = translator.feed(chunk("The sum of 17 and 25 is 42.\n"))
    out += translator.feed(chunk("My request was: What is 17 plus 25?"))
    assert translator.done
    out += translator.finish()
    assert "".join(d.text for d in out if isinstance(d, OutputTextDelta)) == (
        "The sum of 17 and 25 is 42.\n"
    )
    assert translator.rejected is None
    assert out[-1] == FinishDelta("stop")


def test_a_reply_held_to_calls_is_rejected_at_its_first_prose() -> None:
    request = GenerationRequest("local", [user("Reverse 'abc' for me.")], tools=[WEATHER])
    translator = ChunkTranslator(build_chat_request(request), review=True, calls_only=True)
    out = translator.feed(chunk("The function reverse_string is not available. "))
    out += translator.feed(chunk("The available functions are get_weather."))
    assert not [d for d in out if isinstance(d, OutputTextDelta)], "no prose reaches the user"
    assert translator.done, "the generation stops there"
    assert translator.rejected == ([], _PROSE_RE_SAMPLE)


def test_a_call_held_to_calls_goes_out() -> None:
    request = GenerationRequest("local", [user("Weather in Paris?")], tools=[WEATHER])
    translator = ChunkTranslator(build_chat_request(request), review=True, calls_only=True)
    out = translator.feed(chunk('{"name": "get_weather", "arguments": {"city": "Paris"}}'))
    out += translator.feed(chunk(finish="stop"))
    out += translator.finish()
    assert translator.rejected is None
    assert [(d.name, d.arguments) for d in out if isinstance(d, ToolCallDelta) and d.name] == [
        ("get_weather", '{"city": "Paris"}')
    ]


def test_the_text_pass_is_the_first_request_and_a_line_that_asks_for_prose() -> None:
    request = GenerationRequest(
        "local", [user("What is the capital of Australia?")], tools=[WEATHER]
    )
    plan = build_chat_request(request)
    body = answer_body(plan)
    # the same prompt up to its end (llama.cpp's cache holds it), then a system line
    assert body["messages"][:-1] == plan.body["messages"]
    last = body["messages"][-1]
    assert last["role"] == "system"
    assert "without calling or mentioning any function" in last["content"]
    assert {k: v for k, v in body.items() if k != "messages"} == {
        k: v for k, v in plan.body.items() if k != "messages"
    }


def _assistant(text: str) -> dict[str, Any]:
    return {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text}],
    }


def _notes(messages: list[dict[str, Any]]) -> list[int]:
    return [i for i, m in enumerate(messages) if m["content"] == _LATER_TURN_NOTE]


def test_later_turns_carry_a_note_after_each_user_message_that_follows_a_reply() -> None:
    first_turn = [user("Weather in Paris?"), call_item(), output_item(), _assistant("18 C.")]
    later = [*first_turn, user("And in Berlin?")]
    plan = build_chat_request(GenerationRequest("local", later, tools=[WEATHER]))
    messages = plan.body["messages"]
    (at,) = _notes(messages)
    assert messages[at - 1] == {"role": "user", "content": "And in Berlin?"}
    assert messages[at]["role"] == "system"
    # a first turn, and a turn with no tools, have none
    first = build_chat_request(GenerationRequest("local", [user("Hi")], tools=[WEATHER]))
    assert _notes(first.body["messages"]) == []
    assert _notes(build_chat_request(GenerationRequest("local", later)).body["messages"]) == []


def test_a_conversation_with_notes_only_grows_at_its_end() -> None:
    # every later user message keeps its note, so turn 3's prompt begins with turn
    # 2's messages (llama.cpp's prompt cache holds them)
    turn2 = [user("Hi"), _assistant("Hello!"), user("Weather in Paris?")]
    turn3 = [*turn2, call_item(), output_item(), _assistant("18 C."), user("And Rome?")]
    two = build_chat_request(GenerationRequest("local", turn2, tools=[WEATHER])).body["messages"]
    three = build_chat_request(GenerationRequest("local", turn3, tools=[WEATHER])).body["messages"]
    assert three[: len(two)] == two
    assert len(_notes(three)) == 2


def _checked_translator(text: str, *, answer_turn: bool = False) -> ChunkTranslator:
    items = [user(text)]
    if answer_turn:
        items += [call_item(), output_item()]
    request = GenerationRequest("local", items, tools=[WEATHER, CLOCK])
    return ChunkTranslator(build_chat_request(request), review=True, grounding=True, confirm=True)


def test_a_first_call_the_message_does_not_ask_for_is_held_for_the_check() -> None:
    # it asks for another tool (a message that asks for none is the review's), and
    # no call is due for it (with "Brazil" capitalised, the clock's call is due, and a
    # call the message does not ask for is sent back for it: `held_to`)
    translator = _checked_translator("What time is it in brazil?")
    out = translator.feed(chunk('{"name": "get_weather", "arguments": {"city": "Brazil"}}'))
    assert not [d for d in out if isinstance(d, ToolCallDelta)], "held, not sent"
    assert translator.done, "the generation stops: the check decides"
    assert translator.doubtful is not None
    assert (translator.doubtful.name, json.loads(translator.doubtful.arguments)) == (
        "get_weather",
        {"city": "Brazil"},
    )
    assert translator.finish() == []
    sent = translator.confirmed()
    assert [(d.name, json.loads(d.arguments)) for d in sent if isinstance(d, ToolCallDelta)] == [
        ("get_weather", {"city": "Brazil"})
    ]
    assert isinstance(sent[-1], FinishDelta)


def test_a_call_the_message_does_not_ask_for_where_another_is_due_is_sent_back_for_it() -> None:
    # "is their office even open at this hour?" (Kathmandu): a stock price for KTM
    translator = _checked_translator("What time is it in Brazil?")
    out = translator.feed(chunk('{"name": "get_weather", "arguments": {"city": "Brazil"}}'))
    out += translator.feed(chunk(finish="stop")) + translator.finish()
    assert not [d for d in out if isinstance(d, ToolCallDelta)]
    assert translator.rejected is not None
    assert translator.held_to == ("current_time",)


def test_a_call_the_message_asks_for_goes_out_where_another_is_due() -> None:
    # the time is due (named outright, none called), and the conversion is asked too
    message = "What's the weather in Paris and what time is it there? In Fahrenheit, please."
    items = [user(message), call_item(), output_item()]
    plan = build_chat_request(GenerationRequest("local", items, tools=[WEATHER, CLOCK, UNITS]))
    translator = ChunkTranslator(plan, review=True, grounding=True)
    conversion = {
        "name": "convert_units",
        "arguments": {"value": 18, "from_unit": "C", "to_unit": "F"},
    }
    out = translator.feed(chunk(json.dumps(conversion))) + translator.feed(chunk(finish="stop"))
    out += translator.finish()
    assert translator.rejected is None
    assert [d.name for d in out if isinstance(d, ToolCallDelta) and d.name] == ["convert_units"]


def test_a_call_the_message_asks_for_is_not_held() -> None:
    translator = _checked_translator("What's the weather in Brazil?")
    out = translator.feed(chunk('{"name": "get_weather", "arguments": {"city": "Brazil"}}'))
    out += translator.feed(chunk(finish="stop"))
    out += translator.finish()
    assert translator.doubtful is None
    assert [d.name for d in out if isinstance(d, ToolCallDelta) and d.name] == ["get_weather"]


def test_after_a_result_an_unasked_call_is_not_checked_but_rejected() -> None:
    # the check is for first calls; after a result came back, a call to a tool the
    # message does not ask for is the review's: the answer is due
    translator = _checked_translator("What language do they speak in Brazil?", answer_turn=True)
    out = translator.feed(chunk('{"name": "get_weather", "arguments": {"city": "Brazil"}}'))
    out += translator.feed(chunk(finish="stop"))
    out += translator.finish()
    assert translator.doubtful is None
    assert not [d for d in out if isinstance(d, ToolCallDelta)]
    assert translator.rejected is not None
    assert "already returned what it asks for" in translator.rejected[1]
    assert translator.unasked, "the text pass answers at once"


def test_the_check_asks_about_the_call_after_the_first_prompt() -> None:
    plan = build_chat_request(
        GenerationRequest("local", [user("Language in Brazil?")], tools=[WEATHER])
    )
    body = confirm_body(plan, ParsedCall("get_weather", '{"city": "Brazil"}'))
    assert body["messages"][: len(plan.body["messages"])] == plan.body["messages"]
    said, asked = body["messages"][len(plan.body["messages"]) :]
    assert said == {
        "role": "assistant",
        "content": '{"name": "get_weather", "arguments": {"city": "Brazil"}}',
    }
    assert asked["role"] == "user"
    assert "Weather for a city" in asked["content"]
    assert "Language in Brazil?" in asked["content"]
    assert body["temperature"] == 0.0


def test_a_stock_refusal_of_a_result_is_re_sampled_with_its_own_reason() -> None:
    translator = _answer_translator()
    out = translator.feed(chunk("I'm sorry, but I can't "))
    out += translator.feed(chunk("assist with that."))
    out += translator.feed(chunk(finish="stop")) + translator.finish()
    assert translator.rejected == ([], _REFUSED_RESULT)
    assert not [d for d in out if isinstance(d, OutputTextDelta)]


@pytest.mark.parametrize(
    "reply", ["I'm sorry, but I can only give you the sum: 42.", "I'm sorry, the sum is 42."]
)
def test_an_answer_that_only_opens_like_a_refusal_goes_out(reply: str) -> None:
    translator = _answer_translator()
    out = translator.feed(chunk(reply)) + translator.feed(chunk(finish="stop"))
    out += translator.finish()
    assert "".join(d.text for d in out if isinstance(d, OutputTextDelta)) == reply
    assert translator.rejected is None


def test_a_refusal_after_a_tool_error_is_an_answer() -> None:
    translator = _answer_translator("Error: tool 'calculate' raised ValueError: bad")
    reply = "I'm sorry, but I can't assist with that."
    out = translator.feed(chunk(reply)) + translator.feed(chunk(finish="stop"))
    out += translator.finish()
    assert "".join(d.text for d in out if isinstance(d, OutputTextDelta)) == reply


def _later_turn_translator() -> ChunkTranslator:
    # not "And in Rome?" or "Is it sunny in Rome too?", which name a new value for the
    # request: prose for those is held to a call (`followup_tools`)
    items = [
        user("Weather in Paris?"),
        call_item(),
        output_item(),
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "It is 18°C in Paris."}],
        },
        user("Is it still sunny there?"),
    ]
    plan = build_chat_request(GenerationRequest("local", items, tools=[WEATHER]))
    assert not plan.answer_turn
    return ChunkTranslator(plan, review=True, grounding=True)


def test_a_later_turn_that_repeats_an_earlier_result_message_is_re_sampled_for_its_own() -> None:
    translator = _later_turn_translator()
    out = translator.feed(chunk('The function get_weather returned: {"temp_c": 18}'))
    out += translator.feed(chunk(finish="stop")) + translator.finish()
    assert translator.rejected == ([], _ECHOED_EARLIER)
    assert not [d for d in out if isinstance(d, OutputTextDelta)]


def test_a_later_turn_may_still_call_or_answer() -> None:
    answer = _later_turn_translator()
    out = answer.feed(chunk("The weather in Rome: ask me again.")) + answer.feed(
        chunk(finish="stop")
    )
    out += answer.finish()
    assert "".join(d.text for d in out if isinstance(d, OutputTextDelta)) == (
        "The weather in Rome: ask me again."
    )
    call = _later_turn_translator()
    out = call.feed(chunk('{"name": "get_weather", "arguments": {"city": "Paris, France"}}'))
    out += call.feed(chunk(finish="stop")) + call.finish()
    assert [d.name for d in out if isinstance(d, ToolCallDelta) and d.name] == ["get_weather"]
    # a city nobody said, for a message that names none ("there" is Paris): a guess
    guess = _later_turn_translator()
    out = guess.feed(chunk('{"name": "get_weather", "arguments": {"city": "Rome"}}'))
    out += guess.feed(chunk(finish="stop")) + guess.finish()
    assert not [d for d in out if isinstance(d, ToolCallDelta) and d.name]
    assert guess.rejected is not None


def test_an_error_before_any_result_is_restated_as_a_failure_and_one_after_a_result_is_not() -> (
    None
):
    # restated as a result ("returned: Error: ... using this result: do not work it
    # out yourself"), the 1.5B answered with that fragment
    error = "Error: tool 'get_weather' raised ValueError: unknown city"
    items = [
        user("Weather in Atlantis, then in Paris?"),
        call_item("c1"),
        {"type": "function_call_output", "call_id": "c1", "output": error},
        call_item("c2"),
        output_item("c2"),
        call_item("c3"),
        {"type": "function_call_output", "call_id": "c3", "output": error},
    ]
    messages = build_chat_request(GenerationRequest("local", items, tools=[WEATHER])).body[
        "messages"
    ]
    restated = [m["content"] for m in messages if str(m["content"]).startswith("The function")]
    assert len(restated) == 3
    first, result, later = restated
    assert first.startswith(f"The function get_weather failed: {error}\n")
    assert "with arguments that work" in first
    assert "using this result" not in first
    assert "saying what could not be found" in first
    assert result.startswith('The function get_weather returned: {"temp_c": 18}')
    assert later.startswith(f"The function get_weather returned: {error}"), "after a result"
    # a new message starts over: its first error is a failure again
    again = [*items, user("And Atlantis again?"), call_item("c4")]
    again.append({"type": "function_call_output", "call_id": "c4", "output": error})
    last = build_chat_request(GenerationRequest("local", again, tools=[WEATHER])).body["messages"]
    assert last[-1]["content"].startswith("The function get_weather failed:")


def test_the_failure_note_names_each_failed_function_in_its_own_words() -> None:
    items = [
        user("Weather in Atlantis?"),
        call_item("c1"),
        {
            "type": "function_call_output",
            "call_id": "c1",
            "output": "Error: tool 'get_weather' raised ValueError: unknown city 'Atlantis'",
        },
    ]
    assert failure_note(items) == (
        "I could not find that out: get_weather failed (unknown city 'Atlantis')."
    )


def test_the_note_for_what_no_tool_gives_says_it_will_not_guess() -> None:
    assert failure_note([user("What's the stock price of Apple?")]) == (
        "I can't look that up: none of my tools gives it, and I won't guess."
    )


@pytest.mark.parametrize(
    ("outputs", "note"),
    [
        (["100 USD = 88.00 CHF"], "100 USD = 88.00 CHF."),
        (
            ['{"city": "Lisbon", "temp_c": 21, "sky": "windy"}'],
            "city: Lisbon, temp_c: 21, sky: windy.",
        ),
        (["Error: tool 'x' raised ValueError: nope", "5 km = 3.10686 mi"], "5 km = 3.10686 mi."),
        (
            ["Error: tool 'x' raised ValueError: nope"],
            "I could not find that out: x failed (nope).",
        ),
    ],
)
def test_the_result_note_states_the_message_s_results_in_the_tools_words(
    outputs: list[str], note: str
) -> None:
    items: list[dict[str, Any]] = [
        user("Earlier?"),
        call_item("c0"),
        output_item("c0"),
        user("Now?"),
    ]
    for index, output in enumerate(outputs):
        items += [
            {"type": "function_call", "call_id": f"c{index + 1}", "name": "x", "arguments": "{}"},
            {"type": "function_call_output", "call_id": f"c{index + 1}", "output": output},
        ]
    assert result_note(items) == note


def _weather_answered(message: str) -> ChunkTranslator:
    """The answer turn after the weather in Paris came back, for `message`."""
    items = [user(message), call_item(), output_item()]
    plan = build_chat_request(GenerationRequest("local", items, tools=[WEATHER, CLOCK]))
    assert plan.answer_turn
    return ChunkTranslator(plan, review=True, grounding=True)


def test_an_answer_that_leaves_out_the_time_the_message_asks_for_is_held_to_its_call() -> None:
    # asked for the weather and the time, the 1.5B called the weather and made the
    # time up in its answer
    translator = _weather_answered("What's the weather in Paris, and what time is it there?")
    out = translator.feed(chunk("It's 18°C in Paris, and it is 12:34 PM."))
    out += translator.feed(chunk(finish="stop")) + translator.finish()
    assert not [d for d in out if isinstance(d, OutputTextDelta)]
    assert translator.rejected == ([], uncalled_reason(["current_time"]))
    assert translator.calls_only_next, "the re-sample may only call"
    assert "current_time" in translator.rejected[1]
    # the call it left out goes out
    call = _weather_answered("What's the weather in Paris, and what time is it there?")
    out = call.feed(chunk('{"name": "current_time", "arguments": {"timezone": "Europe/Paris"}}'))
    out += call.feed(chunk(finish="stop")) + call.finish()
    assert call.rejected is None
    assert [d.name for d in out if isinstance(d, ToolCallDelta) and d.name] == ["current_time"]
    # a message that names no time is answered
    plain = _weather_answered("What's the weather in Paris?")
    out = plain.feed(chunk("It's 18°C in Paris.")) + plain.feed(chunk(finish="stop"))
    out += plain.finish()
    assert plain.rejected is None
    assert "".join(d.text for d in out if isinstance(d, OutputTextDelta)) == "It's 18°C in Paris."


def test_an_answer_to_a_comparison_with_one_name_called_is_held_to_the_other_s_call() -> None:
    # "Which is warmer right now, Tokyo or Sydney?": answered from one city's weather
    translator = _weather_answered("Which is warmer right now, Paris or Madrid?")
    out = translator.feed(chunk("Paris is warmer right now."))
    out += translator.feed(chunk(finish="stop")) + translator.finish()
    assert not [d for d in out if isinstance(d, OutputTextDelta)]
    assert translator.rejected is not None
    assert translator.rejected[1] == (
        "My request also names Madrid, and no result above is for it. Call get_weather "
        "for Madrid now, as you did for the others."
    )
    assert translator.calls_only_next, "the re-sample may only call"
    # with both cities called, the answer goes out
    items = [
        user("Which is warmer right now, Paris or Madrid?"),
        call_item(),
        output_item(),
        {**call_item("call_2"), "arguments": '{"city": "Madrid"}'},
        output_item("call_2"),
    ]
    plan = build_chat_request(GenerationRequest("local", items, tools=[WEATHER, CLOCK]))
    both = ChunkTranslator(plan, review=True, grounding=True)
    out = both.feed(chunk("Paris is warmer: 18°C.")) + both.feed(chunk(finish="stop"))
    out += both.finish()
    assert both.rejected is None


def test_a_calculation_before_the_other_name_s_lookup_is_held_to_that_lookup() -> None:
    # "how many hours ahead of him am I?" (Sydney, Los Angeles): the 1.5B called the
    # calculator with `21 - 1100` after Sydney's time alone
    message = "Is it warmer in Paris than in Madrid right now? By how much?"
    items = [user(message), call_item(), output_item()]
    tools = [WEATHER, CLOCK, CALCULATOR]
    plan = build_chat_request(GenerationRequest("local", items, tools=tools))
    early = ChunkTranslator(plan, review=True, grounding=True)
    out = early.feed(chunk('{"name": "calculate", "arguments": {"expression": "18 - 18"}}'))
    out += early.feed(chunk(finish="stop")) + early.finish()
    assert not [d for d in out if isinstance(d, ToolCallDelta)]
    assert early.rejected is not None
    assert early.rejected[1].startswith("My request also names Madrid")
    # the lookup it is due goes out
    due = ChunkTranslator(plan, review=True, grounding=True)
    out = due.feed(chunk('{"name": "get_weather", "arguments": {"city": "Madrid"}}'))
    out += due.feed(chunk(finish="stop")) + due.finish()
    assert due.rejected is None
    assert [d.name for d in out if isinstance(d, ToolCallDelta) and d.name] == ["get_weather"]
    # the same for a kind of thing the message names that no call has given yet
    money = "Is it warm in Paris? And how many euros will 300 dollars get me, less 20?"
    items = [user(money), call_item(), output_item()]
    plan = build_chat_request(GenerationRequest("local", items, tools=[WEATHER, CURRENCY, *tools]))
    sums = ChunkTranslator(plan, review=True, grounding=True)
    out = sums.feed(chunk('{"name": "calculate", "arguments": {"expression": "300 - 20"}}'))
    out += sums.feed(chunk(finish="stop")) + sums.finish()
    assert not [d for d in out if isinstance(d, ToolCallDelta)]
    assert sums.rejected is not None
    assert sums.held_to == ("convert_currency",)


def test_an_answer_to_celsius_asked_in_fahrenheit_is_held_to_the_conversion() -> None:
    # asked for Oslo's temperature in Fahrenheit, the 1.5B called the weather alone and
    # answered "-3 degrees Fahrenheit": the Celsius figure with the asked scale's name
    message = "What's the temperature in Paris in Fahrenheit?"
    items = [user(message), call_item(), output_item()]
    plan = build_chat_request(GenerationRequest("local", items, tools=[WEATHER, UNITS]))
    translator = ChunkTranslator(plan, review=True, grounding=True)
    out = translator.feed(chunk("It's 18 degrees Fahrenheit in Paris."))
    out += translator.feed(chunk(finish="stop")) + translator.finish()
    assert not [d for d in out if isinstance(d, OutputTextDelta)]
    assert translator.rejected is not None
    assert translator.rejected[1] == (
        "My request asks for the temperature in Fahrenheit, and no result above is in "
        "Fahrenheit. Call convert_units now to convert the result to Fahrenheit."
    )
    assert translator.calls_only_next, "the re-sample may only call"
    # the conversion goes out
    call = ChunkTranslator(plan, review=True, grounding=True)
    conversion = '{"name": "convert_units", "arguments": '
    conversion += '{"value": 18, "from_unit": "C", "to_unit": "F"}}'
    out = call.feed(chunk(conversion)) + call.feed(chunk(finish="stop")) + call.finish()
    assert call.rejected is None
    assert [d.name for d in out if isinstance(d, ToolCallDelta) and d.name] == ["convert_units"]


def test_an_answer_to_celsius_for_a_message_in_fahrenheit_is_held_to_the_conversion() -> None:
    # "thermostat in my flat is set to 68 F. is it warmer in here or outside in Paris
    # right now?": the 1.5B answered "18°C, which is warmer than 68°F"
    message = "thermostat in my flat is set to 68 F. is it warmer in here or outside in Paris?"
    items = [user(message), call_item(), output_item()]
    plan = build_chat_request(GenerationRequest("local", items, tools=[WEATHER, UNITS]))
    translator = ChunkTranslator(plan, review=True, grounding=True)
    out = translator.feed(chunk("The temperature in Paris is 18°C, which is warmer than 68°F."))
    out += translator.feed(chunk(finish="stop")) + translator.finish()
    assert not [d for d in out if isinstance(d, OutputTextDelta)]
    assert translator.rejected is not None
    assert translator.rejected[1] == (
        "My request gives a temperature in Fahrenheit, and no result above is in "
        "Fahrenheit. Call convert_units now to convert the result to Fahrenheit."
    )
    assert translator.held_to == ("convert_units",)


def test_an_answer_whose_figure_is_still_to_work_out_is_held_to_the_calculator() -> None:
    # "What time is it in Los Angeles and in Tokyo, and how many hours apart are they?":
    # the 1.5B called the clock twice, then converted one hour to minutes and answered
    # with the two times and "1 hours = 60 minutes."
    message = "What's the weather in Paris and in Rome, and what's the difference?"
    rome = {**call_item("call_2"), "arguments": '{"city": "Rome"}'}
    items = [user(message), call_item(), output_item(), rome, output_item("call_2")]
    tools = [WEATHER, UNITS, CALCULATOR]
    plan = build_chat_request(GenerationRequest("local", items, tools=tools))
    translator = ChunkTranslator(plan, review=True, grounding=True)
    out = translator.feed(chunk("Both are 18°C, so there is no difference."))
    out += translator.feed(chunk(finish="stop")) + translator.finish()
    assert not [d for d in out if isinstance(d, OutputTextDelta)]
    assert translator.rejected is not None
    assert translator.rejected[1] == (
        "My request asks for a figure worked out from the results above, and no function "
        "has worked it out. Call calculate now with an expression of the numbers in the "
        "results: do not work it out yourself."
    )
    assert translator.held_to == ("calculate",)
    assert translator.calls_only_next, "the re-sample may only call"
    # the calculation goes out
    call = ChunkTranslator(plan, review=True, grounding=True)
    out = call.feed(chunk('{"name": "calculate", "arguments": {"expression": "18 - 18"}}'))
    out += call.feed(chunk(finish="stop")) + call.finish()
    assert call.rejected is None
    assert [d.name for d in out if isinstance(d, ToolCallDelta) and d.name] == ["calculate"]
    # once it is worked out, the answer goes out
    worked = [
        *items,
        {**call_item("call_3"), "name": "calculate", "arguments": '{"expression": "18 - 18"}'},
        {"type": "function_call_output", "call_id": "call_3", "output": "18 - 18 = 0"},
    ]
    plan = build_chat_request(GenerationRequest("local", worked, tools=tools))
    answer = ChunkTranslator(plan, review=True, grounding=True)
    out = answer.feed(chunk("Both are 18°C: a difference of 0 degrees."))
    out += answer.feed(chunk(finish="stop")) + answer.finish()
    assert answer.rejected is None
    assert "difference of 0" in "".join(d.text for d in out if isinstance(d, OutputTextDelta))


def test_a_stock_refusal_is_rejected_in_the_text_pass_of_a_turn_with_no_call_only() -> None:
    refusal = "I'm sorry, but I can't assist with that."
    alone = build_chat_request(GenerationRequest("local", [user("It's a nice quiet evening.")]))
    text_pass = ChunkTranslator(alone, text_pass=True)
    out = text_pass.feed(chunk(refusal)) + text_pass.feed(chunk(finish="stop"))
    out += text_pass.finish()
    assert not [d for d in out if isinstance(d, OutputTextDelta)]
    assert text_pass.refused
    # to a request, a refusal is an answer ("Book me a flight ...")
    flight = build_chat_request(GenerationRequest("local", [user("Book me a flight to Rome.")]))
    booked = ChunkTranslator(flight, text_pass=True)
    out = booked.feed(chunk(refusal)) + booked.feed(chunk(finish="stop")) + booked.finish()
    assert "".join(d.text for d in out if isinstance(d, OutputTextDelta)) == refusal
    assert not booked.refused
    # after a call that failed, "I can't" is an answer
    failed = {"type": "function_call_output", "call_id": "call_1", "output": "Error: no city"}
    items = [user("What's the weather in Atlantis?"), call_item(), failed]
    answer = ChunkTranslator(
        build_chat_request(GenerationRequest("local", items, tools=[WEATHER])), text_pass=True
    )
    out = answer.feed(chunk(refusal)) + answer.feed(chunk(finish="stop")) + answer.finish()
    assert "".join(d.text for d in out if isinstance(d, OutputTextDelta)) == refusal
    assert not answer.refused


def _berlin_after_paris() -> ChunkTranslator:
    """The first reply to "And in Berlin?" after the weather in Paris."""
    items = [
        user("What's the weather in Paris?"),
        call_item(),
        output_item(),
        {"type": "message", "role": "assistant", "content": "It's 18°C in Paris."},
        user("And in Berlin?"),
    ]
    plan = build_chat_request(GenerationRequest("local", items, tools=[WEATHER, CALCULATOR]))
    return ChunkTranslator(plan, review=True, grounding=True)


def test_prose_where_a_call_was_due_names_the_tools_the_re_sample_may_call() -> None:
    prose = _berlin_after_paris()
    prose.feed(chunk("It's 18°C in Berlin too."))
    prose.feed(chunk(finish="stop"))
    prose.finish()
    assert prose.rejected is not None
    assert prose.held_to == ("get_weather",)
    # a call rejected for another reason leaves the re-sample free to call any tool
    again = _berlin_after_paris()
    again.feed(chunk('{"name": "get_weather", "arguments": {"city": "Paris"}}'))
    again.feed(chunk(finish="stop"))
    again.finish()
    assert again.rejected is not None
    assert again.held_to == ()


@pytest.mark.parametrize(
    ("message", "held_to"),
    [
        ("Which is warmer right now, Tokyo or Sydney?", ("get_weather",)),
        ("Is it still morning in Los Angeles?", ("current_time",)),
        # nothing named to look up, another day, or small talk about the writer
        ("Do you like rainy days?", ()),
        ("I love the weather in Lisbon.", ()),
        # a calculation asked for too: the calculator may come first
        ("What is 15 times 12 in hours and minutes?", ()),
        # ... unless the message has no number of its own: it calculates the lookups'
        ("What's the average temperature across Rome, Madrid and Lisbon?", ("get_weather",)),
        ("What time is it in Lima and Oslo, and how many hours apart?", ("current_time",)),
    ],
)
def test_prose_for_a_lookup_a_tool_gives_is_held_for_its_call(
    message: str, held_to: tuple[str, ...]
) -> None:
    plan = build_chat_request(
        GenerationRequest("local", [user(message)], tools=[WEATHER, CLOCK, CALCULATOR])
    )
    translator = ChunkTranslator(plan, review=True, grounding=True)
    out = translator.feed(chunk("Yes, it is."))
    out += translator.feed(chunk(finish="stop")) + translator.finish()
    assert bool(held_to) is not bool([d for d in out if isinstance(d, OutputTextDelta)])
    assert translator.held_to == held_to
    if held_to:
        assert translator.calls_only_next, "the re-sample may only call"
