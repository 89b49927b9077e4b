"""The review of a local model's calls before they are emitted (pure, no model)."""

from __future__ import annotations

import json
from typing import Any

from turnstream.providers._call_review import (
    conversation_text,
    copied_example_values,
    review_calls,
)

CALCULATE = {
    "type": "function",
    "name": "calculate",
    "description": "Evaluate an arithmetic expression exactly, e.g. `(17 * 23) + sqrt(2) / 4`.",
    "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}},
}
GET_TIME = {
    "type": "function",
    "name": "get_time",
    "description": "Current time in an IANA timezone.",
    "parameters": {
        "type": "object",
        "properties": {
            "timezone": {"type": "string", "description": "such as Asia/Tokyo"},
            "format": {"type": "string", "enum": ["24h", "12h"], "examples": ["24h"]},
        },
    },
}


def user(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def args(**values: Any) -> str:
    return json.dumps(values)


def test_the_issue_s_copied_docstring_example_is_reported() -> None:
    said = conversation_text(None, [user("What is 17 plus 25? Use a tool.")])
    copied = copied_example_values(args(expression="(17 * 23) + sqrt(2) / 4"), CALCULATE, said)
    assert copied == ["(17 * 23) + sqrt(2) / 4"]
    assert copied_example_values(args(expression="17 + 25"), CALCULATE, said) == []


def test_a_value_the_user_said_is_never_a_copy_even_if_the_description_has_it() -> None:
    said = conversation_text(None, [user("what time is it in asia/tokyo?")])
    assert copied_example_values(args(timezone="Asia/Tokyo"), GET_TIME, said) == []
    hi = conversation_text(None, [user("Hi! How are you today?")])
    assert copied_example_values(args(timezone="Asia/Tokyo"), GET_TIME, hi) == ["Asia/Tokyo"]


def test_values_match_as_whole_tokens_and_enums_are_choices_not_examples() -> None:
    said = conversation_text(None, [user("Use the 45 minute slot")])
    # "4" and "45": the description holds "4", the user said "45", neither is a copy
    assert copied_example_values(args(expression="45"), CALCULATE, said) == []
    # "24h" is an enum choice (and also an example): examples count, enums alone do not
    assert copied_example_values(args(format="24h"), GET_TIME, said) == ["24h"]
    no_examples = {**GET_TIME, "parameters": {"properties": {"f": {"enum": ["24h"]}}}}
    assert copied_example_values(args(f="24h"), no_examples, said) == []


def test_numbers_and_instructions_and_tool_outputs_count_as_said() -> None:
    items = [
        user("Convert it"),
        {"type": "function_call", "call_id": "c1", "name": "x", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "Asia/Tokyo is UTC+9"},
    ]
    said = conversation_text("The user lives in Tokyo.", items)
    assert "Asia/Tokyo is UTC+9" in said
    assert "lives in Tokyo" in said
    assert copied_example_values(args(timezone="Asia/Tokyo"), GET_TIME, said) == []
    # a float equal to an integer is spelled as the integer
    assert copied_example_values(args(expression=17.0), CALCULATE, "") == ["17.0"]


def test_review_gives_the_reason_for_a_copy_and_passes_a_clean_call() -> None:
    items = [user("Hi! How are you today?")]
    reason = review_calls([("get_time", args(timezone="Asia/Tokyo"))], [GET_TIME], items)
    assert reason is not None
    assert '"Asia/Tokyo"' in reason
    assert "get_time" in reason
    assert "plain text" in reason
    fine = [user("What time is it in Paris?")]
    assert review_calls([("get_time", args(timezone="Europe/Paris"))], [GET_TIME], fine) is None


def test_review_rejects_repeating_a_call_that_already_has_its_output() -> None:
    items = [
        user("Convert 5 miles to km, then add 3"),
        {
            "type": "function_call",
            "call_id": "c1",
            "name": "calculate",
            "arguments": '{"expression": "5*1.609"}',
        },
        {"type": "function_call_output", "call_id": "c1", "output": "5*1.609 = 8.045"},
    ]
    same = [("calculate", '{ "expression":"5*1.609" }')]
    reason = review_calls(same, [CALCULATE], items)
    assert reason is not None
    assert "already called calculate" in reason
    assert "8.045" in reason
    assert review_calls([("calculate", args(expression="8.045 + 3"))], [CALCULATE], items) is None


def test_review_names_the_real_functions_when_a_call_names_one_that_does_not_exist() -> None:
    reason = review_calls(
        [("write_long_story", args(topic="robots"))], [CALCULATE, GET_TIME], [user("A story?")]
    )
    assert reason is not None
    assert "no function named write_long_story" in reason
    assert "calculate, get_time" in reason
    assert "plain text" in reason
    # with no tools offered there is nothing to point the model to
    assert review_calls([("write_long_story", "{}")], [], [user("A story?")]) is None
