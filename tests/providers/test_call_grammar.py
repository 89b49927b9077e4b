"""The lazy call grammar and the completion request it travels in, without the model.

Grammars are checked with a small GBNF recogniser (`gbnf.py`); that llama.cpp itself
parses them and decodes under them is checked in test_local_real.py.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.providers.gbnf import parse
from turnstream.providers._call_grammar import (
    CALL_TRIGGERS,
    TEXT_GRAMMAR,
    call_grammar,
    chat_chunk,
    chatml_prompt,
    completion_body,
    text_body,
)
from turnstream.providers._local_chat import build_chat_request
from turnstream.providers.base import GenerationRequest

CALC = {
    "type": "function",
    "name": "calculate",
    "parameters": {
        "type": "object",
        "properties": {"expression": {"type": "string"}},
        "required": ["expression"],
        "additionalProperties": False,
    },
}
CONVERT = {
    "type": "function",
    "name": "convert",
    "parameters": {
        "type": "object",
        "properties": {
            "value": {"type": "number"},
            "unit": {"type": "string", "enum": ["km", "mi"]},
            "digits": {"type": "integer"},
            "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        },
        "required": ["value", "unit"],
    },
}
LOOSE = {"type": "function", "name": "calc", "parameters": {"type": "object"}}


def call(name: str, arguments: Any) -> str:
    return json.dumps({"name": name, "arguments": arguments})


@pytest.fixture(scope="module")
def grammar() -> Any:
    text = call_grammar([CALC, CONVERT, LOOSE])
    assert text is not None
    return parse(text)


@pytest.mark.parametrize(
    "reply",
    [
        call("calculate", {"expression": "17 + 25"}),
        call("convert", {"value": 5, "unit": "mi"}),
        call("convert", {"value": -2.5e3, "unit": "km", "digits": 2, "note": None}),
        call("convert", {"value": 5, "unit": "km", "note": "x", "extra": [1, {"a": True}]}),
        call("calc", {"anything": {"nested": [1, "two"]}}),  # an open, empty schema
        '<tool_call>\n{"name": "calc", "arguments": {}}\n</tool_call>',
        '```json\n{"name":"calc","arguments":{}}\n```',
        call("calc", {}) + "\n" + call("calculate", {"expression": "1"}),
    ],
)
def test_calls_that_fit_their_schema_are_accepted(grammar: Any, reply: str) -> None:
    assert grammar.accepts(reply)


@pytest.mark.parametrize(
    "reply",
    [
        call("calculate", {"expression": 42}),  # wrong type
        call("calculate", {}),  # a required key left out
        call("calculate", {"expression": "1", "type": "string"}),  # closed schema
        call("convert", {"value": "5", "unit": "mi"}),
        call("convert", {"value": 5, "unit": "m"}),  # not in the enum
        call("convert", {"value": 5, "unit": "mi", "digits": 1.5}),
        # an open schema takes more keys, but not a second copy of a declared one
        call("convert", {"value": 5, "unit": "km"})[:-2] + ', "unit": "m"}}',
        '{"name": "calculate", "arguments": "{\\"expression\\": \\"1\\"}"}',  # a string
        call("calculate", {"expression": "1"}) + " That is the call.",  # prose after
    ],
)
def test_arguments_that_do_not_fit_cannot_be_written(grammar: Any, reply: str) -> None:
    assert not grammar.accepts(reply)


@pytest.mark.parametrize("name", ["write_long_story", "calcx", "calculat", "ca", "convert units"])
def test_a_name_no_tool_has_stays_possible_with_empty_arguments(grammar: Any, name: str) -> None:
    # the runtime answers it as an unknown tool, listing the real ones; arguments it
    # would ignore could only run past the token limit
    assert grammar.accepts(call(name, {}))
    assert not grammar.accepts(call(name, {"story": "Once upon a time"}))


def test_a_known_name_cannot_escape_its_schema_through_the_unknown_name_branch(
    grammar: Any,
) -> None:
    assert not grammar.accepts(call("calculate", {"topic": "robots"}))
    assert not grammar.accepts(call("convert", {}))


def test_one_call_only_when_parallel_calls_are_off() -> None:
    single = parse(call_grammar([LOOSE], parallel=False) or "")
    assert single.accepts(call("calc", {}))
    assert not single.accepts(call("calc", {}) + "\n" + call("calc", {}))


def test_without_others_only_the_given_tools_can_be_called() -> None:
    only = parse(call_grammar([CALC], others=False) or "")
    assert only.accepts(call("calculate", {"expression": "17 + 25"}))
    assert not only.accepts(call("convert", {}))
    assert not only.accepts(call("calc", {}))


def test_no_grammar_without_tools() -> None:
    assert call_grammar([]) is None


def test_the_trigger_fires_only_on_a_reply_that_opens_as_a_call() -> None:
    (trigger,) = CALL_TRIGGERS
    pattern = re.compile(trigger["value"])
    for opening in ['{"name"', ' \n{ "name": "c', "<tool_call>\n{", "```json\n"]:
        match = pattern.fullmatch(opening)
        assert match is not None, opening
        # the grammar is fed the reply from the group on: where every root begins
        assert opening[match.start(1) :].lstrip()[0] in "{<`"
    for prose in ["Sure! ", 'The JSON is {"name": "x"}', "```python\nprint()", '{"city"']:
        assert pattern.fullmatch(prose) is None, prose


def messages(*pairs: tuple[str, str]) -> list[dict[str, Any]]:
    return [{"role": role, "content": content} for role, content in pairs]


def test_chatml_renders_plain_messages_up_to_the_assistants_turn() -> None:
    chat = messages(("system", "S"), ("user", "Hi"), ("assistant", "Hello"), ("user", "Bye"))
    prompt = chatml_prompt(chat)
    assert prompt == (
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


@pytest.mark.parametrize(
    "chat",
    [
        messages(("user", "Hi")),  # Qwen's template would add its own system prompt
        messages(("system", "S"), ("user", "Hi"), ("assistant", "Hel")),  # a prefill
        messages(("system", "S"), ("tool", "42")),
        [{"role": "system", "content": "S"}, {"role": "user", "content": [{"type": "text"}]}],
        [
            {"role": "system", "content": "S"},
            {"role": "assistant", "content": None, "tool_calls": []},
        ],
    ],
)
def test_chatml_declines_what_only_the_chat_endpoint_renders(chat: list[dict[str, Any]]) -> None:
    assert chatml_prompt(chat) is None


def request(text: str, **kwargs: Any) -> GenerationRequest:
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    return GenerationRequest("local", [item], **kwargs)


def test_a_prompted_turn_with_tools_becomes_a_lazily_constrained_completion() -> None:
    plan = build_chat_request(request("17 + 25?", tools=[CALC], max_output_tokens=50))
    assert plan.grammar is not None
    body = completion_body(plan.body, plan.grammar)
    assert body is not None
    assert body["prompt"] == chatml_prompt(plan.body["messages"])
    assert body["grammar"] == plan.grammar
    assert body["grammar_lazy"] is True
    assert body["grammar_triggers"] == list(CALL_TRIGGERS)
    # everything else is the chat request's: sampling, length, streaming
    assert body["temperature"] == plan.body["temperature"] == 0.0
    assert body["max_tokens"] == 50
    assert body["stream"] is True
    assert "messages" not in body


def test_a_forced_completion_is_constrained_from_its_first_token() -> None:
    # a re-sample held to calls: the grammar, whose root is a call, applies at once
    plan = build_chat_request(request("17 + 25?", tools=[CALC]))
    assert plan.grammar is not None
    body = completion_body(plan.body, plan.grammar, lazy=False)
    assert body is not None
    assert body["grammar"] == plan.grammar
    assert body["grammar_lazy"] is False
    assert "grammar_triggers" not in body


@pytest.mark.parametrize(
    ("kwargs", "strategy"),
    [
        ({}, "prompted"),  # no tools: nothing to constrain
        ({"tools": [CALC]}, "native"),  # llama.cpp's own grammar for its tool calls
        ({"tools": [CALC], "tool_choice": "none"}, "prompted"),
        ({"tools": [CALC], "tool_choice": "required"}, "prompted"),  # a schema already
    ],
)
def test_no_call_grammar_where_none_applies(kwargs: dict[str, Any], strategy: Any) -> None:
    plan = build_chat_request(request("Hi", **kwargs), strategy=strategy)
    assert plan.grammar is None


def test_a_completion_chunk_reads_as_the_chat_chunk_it_stands_for() -> None:
    usage = {"prompt_tokens": 3, "completion_tokens": 1}
    chunk = {"choices": [{"text": "Hi", "index": 0, "finish_reason": None}], "usage": usage}
    assert chat_chunk(chunk) == {
        "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}],
        "usage": usage,
    }
    last = chat_chunk({"choices": [{"text": "", "index": 0, "finish_reason": "length"}]})
    assert last["choices"] == [{"index": 0, "delta": {}, "finish_reason": "length"}]
    error = {"error": {"code": 400, "message": "bad"}}
    assert chat_chunk(error) == error


@pytest.mark.parametrize(
    ("reply", "accepted"),
    [
        ("Hello! I'm fine, thanks.", True),
        ("Sure:\n```python\ndef f(): pass\n```", True),
        ("A {brace} later, <b>tags</b> later: fine.", True),
        ('{"name": "get_time", "arguments": {}}', False),
        ('[{"name": "get_time"}]', False),
        ("<tool_call>", False),
        ('```json\n{"name": "x"}', False),
        (' {"name": "x"}', False),
        ('({"name": "x", "arguments": {}})', False),  # the 0.5B model's parenthesised call
        ("", False),
        # nor a call after prose, in any quoting
        ('It is Canberra. {"name": "get_weather", "arguments": {}}', False),
        ('It is Canberra.\n{ "name": "x"}', False),
        ("It is Canberra. {'name': 'x'}", False),
        ('It is Canberra. {{"name": "x"}}', False),
        ("Use a set: {1, 2} or {x}.", True),
        # the 1.5B's call in curly quotes, in a fence after prose
        ("You can use this:\n```json\n{\u201cname\u201d: \u201ccalc\u201d}\n```", False),
        ("It is Canberra. {\u2018name\u2019: \u2018x\u2019}", False),
        ("She said \u201chi\u201d {politely}.", True),
        # and with its key bare, as the 1.5B wrote one to chit-chat
        ('Therefore, the result is:\n```json\n{name: "calc", arguments: {}}\n```', False),
        ('Here:\n```json\n{name : "calc"}\n```', False),  # the 0.5B's
        ('Here:\n```json\n{name": "calc"}\n```', False),
        ("Hello {name}, and {names} or {nap} or {nam e} or {name_2}.", True),
        ("A set {n, 2}.", True),
    ],
)
def test_the_text_grammar_admits_prose_and_no_call(reply: str, accepted: bool) -> None:
    assert parse(TEXT_GRAMMAR).accepts(reply) is accepted


def test_a_text_pass_is_the_same_prompt_under_the_text_grammar_from_the_first_token() -> None:
    chat = {
        "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.0,
    }
    body = text_body(chat)
    assert body["prompt"] == chatml_prompt(chat["messages"])
    assert body["grammar"] == TEXT_GRAMMAR
    assert "grammar_lazy" not in body
    assert "grammar_triggers" not in body
    assert "messages" not in body
    assert body["temperature"] == 0.0
    # what ChatML cannot render goes to the chat endpoint, still under the grammar
    parts = {"role": "user", "content": [{"type": "text", "text": "Hi"}]}
    fallback = text_body({**chat, "messages": [chat["messages"][0], parts]})
    assert fallback["messages"][1] == parts
    assert fallback["grammar"] == TEXT_GRAMMAR
