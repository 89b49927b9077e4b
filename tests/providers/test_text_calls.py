"""The text-call fallback of the local model: parsing and hold-back, without a model."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from turnstream.providers._text_calls import ParsedCall, ReplySniffer, classify, parse_calls

TOOLS = {"get_weather", "get_time"}
PARIS = ParsedCall("get_weather", '{"city": "Paris"}')


@pytest.mark.parametrize(
    "reply",
    [
        '{"name": "get_weather", "arguments": {"city": "Paris"}}',
        '  \n{"name":"get_weather","arguments":{"city":"Paris"}}\n',
        '```json\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n```',
        '```\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n```',
        '{{"name": "get_weather", "arguments": {{"city": "Paris"}}}}',
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
        "{'name': 'get_weather', 'arguments': {'city': 'Paris'}}",
        '[{"name": "get_weather", "arguments": {"city": "Paris"}}]',
        '{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}',
        '{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}',
        '{"name": "get_weather", "parameters": {"city": "Paris"}}',
        # the 0.5B model's, with or without the closing parenthesis
        '({"name": "get_weather", "arguments": {"city": "Paris"}})',
        '( {"name": "get_weather", "arguments": {"city": "Paris"}}',
        # keys without quotes, as in JavaScript (the 1.5B's, in a fence after prose)
        '```json\n{name: "get_weather", arguments: {city: "Paris"}}\n```',
        "{name: 'get_weather', arguments: {city: 'Paris'}}",
    ],
)
def test_parse_calls_recognises_every_call_shape(reply: str) -> None:
    assert parse_calls(reply, TOOLS) == [PARIS]


def test_parse_calls_reads_several_calls_in_a_row() -> None:
    reply = (
        '{"name": "get_weather", "arguments": {"city": "Paris"}}\n'
        '{"name": "get_time", "arguments": {"city": "Rome"}}'
    )
    assert parse_calls(reply, TOOLS) == [PARIS, ParsedCall("get_time", '{"city": "Rome"}')]


def test_parse_calls_drops_prose_after_the_call() -> None:
    reply = '{"name": "get_weather", "arguments": {"city": "Paris"}}\nThis checks the weather.'
    assert parse_calls(reply, TOOLS) == [PARIS]


@pytest.mark.parametrize(
    "reply",
    [
        "The weather in Paris is sunny.",
        'Here you go: {"name": "get_weather", "arguments": {"city": "Paris"}}',
        '{"name": "send_email", "arguments": {"to": "x"}}',
        '{"result": 42}',
        "```python\nprint('hi')\n```",
        '{"name": "get_weather", "arguments": {"city": "Par',
        '{name: "get_weather", arguments: {city: "Par',
        "{name: Paris}",
        "",
    ],
)
def test_parse_calls_treats_prose_unknown_tools_and_broken_json_as_text(reply: str) -> None:
    assert parse_calls(reply, TOOLS) == []


@pytest.mark.parametrize(
    ("prefix", "decision"),
    [
        ("", "pending"),
        ("  \n", "pending"),
        ("{", "pending"),
        ('{"na', "pending"),
        ("``", "pending"),
        ("```js", "pending"),
        ('{"name"', "call"),
        ('```json\n{"name"', "call"),
        ('{{ "name"', "call"),
        ("Sure", "text"),
        ('{"result"', "text"),
        ("```python", "text"),
        ("1. First", "text"),
        ('({"name"', "call"),
        ("(see above)", "text"),
        ("{name:", "call"),
        ("```json\n{ arguments :", "call"),
        ("{names are", "text"),
        ("{name}", "text"),
    ],
)
def test_classify_holds_back_only_what_may_still_become_a_call(prefix: str, decision: str) -> None:
    assert classify(prefix) == decision


def _feed_split(
    reply: str, cuts: list[int], *, late_calls: bool = False
) -> tuple[list[str], str, list[ParsedCall]]:
    sniffer = ReplySniffer(TOOLS, late_calls=late_calls)
    bounds = [0, *sorted(c % (len(reply) + 1) for c in cuts), len(reply)]
    released = [sniffer.feed(reply[a:b]) for a, b in itertools.pairwise(bounds)]
    rest, calls = sniffer.finish()
    return released, rest, calls


@given(st.lists(st.integers(min_value=0, max_value=200), max_size=8))
def test_sniffer_finds_the_call_wherever_the_chunks_split(cuts: list[int]) -> None:
    reply = '```json\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n```'
    released, rest, calls = _feed_split(reply, cuts)
    assert "".join(released) == ""
    assert rest == ""
    assert calls == [PARIS]


@given(
    st.sampled_from(
        [
            "Paris is lovely.",
            "{ not json at all",
            "```python\nx = 1\n```",
            "{{x}}",
            'Sure.\n{"result": 1}\n\n  ok\n{"name": "nope", "arguments": {',
        ]
    ),
    st.lists(st.integers(min_value=0, max_value=200), max_size=8),
)
def test_sniffer_releases_all_text_exactly_once_wherever_the_chunks_split(
    reply: str, cuts: list[int]
) -> None:
    for late_calls in (False, True):
        released, rest, calls = _feed_split(reply, cuts, late_calls=late_calls)
        assert "".join(released) + rest == reply
        assert calls == []


def test_sniffer_streams_prose_as_soon_as_it_is_clearly_prose() -> None:
    sniffer = ReplySniffer(TOOLS)
    assert sniffer.feed("Hel") == "Hel"
    assert sniffer.feed("lo") == "lo"
    assert sniffer.finish() == ("", [])


def test_disabled_sniffer_passes_json_through_as_text() -> None:
    sniffer = ReplySniffer(TOOLS, enabled=False)
    reply = '{"name": "get_weather", "arguments": {}}'
    assert sniffer.feed(reply) == reply
    assert sniffer.finish() == ("", [])


def test_a_call_to_a_tool_that_does_not_exist_can_be_read_as_a_call() -> None:
    story = '{"name": "write_long_story", "arguments": {"topic": "a robot who learns to cook"}}'
    assert parse_calls(story, TOOLS) == []  # the default: prose, as before
    assert parse_calls(story, TOOLS, unknown_names=True) == [
        ParsedCall("write_long_story", '{"topic": "a robot who learns to cook"}')
    ]
    # the 0.5B model's spelling of it, as measured
    cook = '{"name": "cook robot", "arguments": {"name": "Robot"}}'
    assert parse_calls(cook, TOOLS, unknown_names=True) == [
        ParsedCall("cook robot", '{"name": "Robot"}')
    ]
    # JSON that merely has a "name" (no arguments) is still prose
    assert parse_calls('{"name": "Bob", "age": 3}', TOOLS, unknown_names=True) == []
    assert parse_calls('{"name": "", "arguments": {}}', TOOLS, unknown_names=True) == []


def test_sniffer_with_unknown_names_turns_the_raw_json_into_a_call() -> None:
    sniffer = ReplySniffer(TOOLS, unknown_names=True)
    released = sniffer.feed('{"name": "write_long_story", ') + sniffer.feed('"arguments": {}}')
    assert released == ""
    assert sniffer.finish() == ("", [ParsedCall("write_long_story", "{}")])
    assert sniffer.decision == "call"


@given(st.lists(st.integers(min_value=0, max_value=200), max_size=8))
def test_a_call_after_a_line_of_prose_is_held_back_and_read(cuts: list[int]) -> None:
    # the small models announce a call in prose, then write it on a line of its own
    reply = 'I will check the weather.\n{"name": "get_weather", "arguments": {"city": "Paris"}}'
    released, rest, calls = _feed_split(reply, cuts, late_calls=True)
    assert "".join(released) == "I will check the weather.\n"
    assert rest == ""
    assert calls == [PARIS]


@given(st.lists(st.integers(min_value=0, max_value=200), max_size=8))
def test_a_call_with_bare_keys_in_a_fence_after_prose_is_held_back_and_read(
    cuts: list[int],
) -> None:
    # "... Therefore, the result is: ```json {name: "calc", ...}```" reached the user raw
    reply = 'The result is:\n```json\n{name: "get_weather", arguments: {city: "Paris"}}\n```'
    released, rest, calls = _feed_split(reply, cuts, late_calls=True)
    assert "".join(released) == "The result is:\n"
    assert rest == ""
    assert calls == [PARIS]


def test_prose_streams_line_by_line_and_only_a_line_that_may_open_a_call_waits() -> None:
    sniffer = ReplySniffer(TOOLS, late_calls=True)
    assert sniffer.feed("Here it is:\n") == "Here it is:\n"
    assert sniffer.feed("{") == ""  # may open a call
    assert sniffer.feed('"result": 4}\nDone') == '{"result": 4}\nDone'
    assert sniffer.finish() == ("", [])
    assert sniffer.decision == "text"
    # a call inside a line of prose is text, as before
    inline = ReplySniffer(TOOLS, late_calls=True)
    reply = 'Use {"name": "get_weather", "arguments": {}} for that.'
    assert inline.feed(reply) == reply
    assert inline.finish() == ("", [])
    # without late_calls (the default) a call after prose is text
    plain = ReplySniffer(TOOLS)
    assert plain.feed('Sure.\n{"name": "get_weather", "arguments": {}}') != ""
    assert plain.finish()[1] == []
