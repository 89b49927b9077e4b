"""A reply that states a figure no tool returned, where a tool computes it (FigureGuard)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.providers.helpers import CALCULATOR, UNITS, WEATHER, user
from turnstream.engine.deltas import FinishDelta, OutputTextDelta
from turnstream.providers._call_review import figure_tools, said_numbers, unsaid_figures
from turnstream.providers._figure_guard import FigureGuard, ResultsGuard
from turnstream.providers._local_chat import ChunkTranslator, build_chat_request
from turnstream.providers.base import GenerationRequest

EARLIER = "Convert 10 km to miles.\n10 km = 6.21371 miles\n10 km is 6.21371 miles.\nAnd 42 km?"


@pytest.mark.parametrize(
    ("reply", "conversation", "unsaid"),
    [
        # what the 1.5B answered with a converter on offer
        ("42 km is 26.21371 miles.", EARLIER, ["26.21371"]),
        ("The temperature in Madrid is 77°F.", '{"temp_c": 25}', ["77"]),
        ("The final result is 191.14 EUR.", "250 GBP = 291.14 EUR; subtract 100", ["191.14"]),
        # restated, rounded, as a percentage, in words, with separators
        ("10 km is about 6.21 miles.", EARLIER, []),
        ("That is roughly 6 miles.", EARLIER, []),
        ("5 miles is 8.05 km.", "5 miles = 8.04672 km", []),
        ("12.5% of 640 is 80.", "What is 12.5% of 640?\n0.125 * 640 = 80", []),
        ("Three plus four is 7.", "three plus four\n3 + 4 = 7", []),
        ("It is 1,250 metres.", "1250 m", []),
        # list markers, 0 and 1, and code are not figures
        ("1. Boil water.\n2. Add tea.", "tea?", []),
        ("Sure:\n```python\nreturn s[::-1][2:]\n```\nand `x[3]`.", "reverse", []),
        ("It is 0 or 1 of them.", "", []),
        ("It is 6:05 AM.", "06:05 America/New_York", []),
        ("It is 12:34 PM.", "What time is it in Paris?", ["12", "34"]),
    ],
)
def test_a_figure_nobody_said_is_found(reply: str, conversation: str, unsaid: list[str]) -> None:
    assert unsaid_figures(reply, said_numbers(conversation)) == unsaid


@pytest.mark.parametrize(
    ("message", "tools", "guarded"),
    [
        ("And 42 km?", [WEATHER, CALCULATOR, UNITS], ["convert_units", "calculate"]),
        ("What is 17 plus 25?", [CALCULATOR], ["calculate"]),
        ("How warm is it in Madrid, in Fahrenheit?", [WEATHER, UNITS], ["convert_units"]),
        # a message that asks for no figure tool, or no figure tool on offer
        ("Hi! How are you today?", [WEATHER, UNITS, CALCULATOR], []),
        ("What's the weather in Paris?", [WEATHER, UNITS], []),
        ("What is 17 plus 25?", [WEATHER], []),
    ],
)
def test_figure_tools_are_offered_calculators_and_converters_the_message_asks_for(
    message: str, tools: list[dict[str, Any]], guarded: list[str]
) -> None:
    assert figure_tools(tools, [user(message)]) == guarded


def test_a_reply_is_held_whole_and_goes_out_when_its_figures_check() -> None:
    guard = FigureGuard(said_numbers("17 + 25 = 42"))
    reply = "The sum of 17 and 25 is 42."
    assert [guard.feed(reply[i : i + 3]) for i in range(0, len(reply), 3)] == [""] * 9
    assert guard.pending
    assert guard.finish() == reply
    assert not guard.figures


def test_a_number_is_judged_only_once_it_is_written_whole() -> None:
    guard = FigureGuard(said_numbers(EARLIER))
    assert guard.feed("42 km is 26.2") == ""
    assert not guard.figures, "26.2 may yet become 26.21371 or 26.2 of something said"
    assert guard.feed("1371") == ""
    assert not guard.figures
    assert guard.feed(" miles.") == ""
    assert guard.figures == ["26.21371"]
    assert guard.finish() == ""


def test_a_long_reply_is_let_go_and_streams_on_unchecked() -> None:
    guard = FigureGuard(said_numbers("mix 2 cups"))
    opening = "Mix 2 cups of flour with water. " * 10
    assert guard.feed(opening) == opening
    assert not guard.holding
    assert guard.feed("Bake 35 minutes.") == "Bake 35 minutes."
    assert guard.finish(" Done.") == " Done."


@pytest.mark.parametrize(
    "opening",
    [
        "To determine how many 330 ml cans fill 2 gallons, we need to follow these steps:",
        "To find out, you would need to calculate the volume of the bed.",
        "The formula for the volume of a rectangular prism is length times width.",
        "Sure! Let's calculate it: 2.5 m by 1.2 m by 0.3 m.",
        "\\[ 2.5 \\times 1.2 \\]",
        # a 10% tip on 187.50 split five ways: its figures count as said (a percentage
        # of a said number, and added), so only the working tells
        "To calculate the total, we first need to find the tip amount.",
        "The tip is 10% of the bill, which is 187.50 * 0.10 = 18.75.",
    ],
)
def test_working_a_figure_out_in_words_is_caught_before_the_limit(opening: str) -> None:
    said = said_numbers(
        "How many cubic metres is a bed 2.5 m by 1.2 m by 0.3 m, or 330 ml? Or 10% of 187.50?"
    )
    guard = FigureGuard(said, working=True)
    assert guard.feed(opening) == ""
    assert guard.figures, "rejected while its own figures are still to come"
    # without `working` (a calculator already called), only figures count
    calm = FigureGuard(said)
    assert calm.feed(opening) == ""
    assert not calm.figures
    assert calm.finish() == ("" if unsaid_figures(opening, said) else opening)


def test_an_answer_after_the_calculator_may_name_its_formula() -> None:
    call = {
        "type": "function_call",
        "call_id": "call_1",
        "name": "calculate",
        "arguments": '{"expression": "2.5 * 1.2 * 0.3"}',
    }
    output = {"type": "function_call_output", "call_id": "call_1", "output": "0.9"}
    message = "A bed 2.5 m long, 1.2 m wide, 0.3 m deep: how many cubic metres of soil?"
    request = GenerationRequest("local", [user(message), call, output], tools=[CALCULATOR])
    translator = ChunkTranslator(build_chat_request(request), review=True, grounding=True)
    answer = "By the formula length times width times depth, you need 0.9 cubic metres."
    out = translator.feed({"choices": [{"delta": {"content": answer}}]}) + translator.finish()
    assert _text(out) == answer
    # before the call, the same words are a figure worked out in the head
    first = ChunkTranslator(
        build_chat_request(GenerationRequest("local", [user(message)], tools=[CALCULATOR])),
        review=True,
        grounding=True,
    )
    worked = "By the formula length times width times depth: multiply 2.5 by 1.2 and 0.3."
    out = first.feed({"choices": [{"delta": {"content": worked}}]}) + first.finish()
    assert not _text(out)
    assert first.rejected is not None
    assert "Do not work out figures yourself" in first.rejected[1]


def _translator(message: str, *items: dict[str, Any]) -> ChunkTranslator:
    request = GenerationRequest("local", [user(message), *items], tools=[WEATHER, UNITS])
    return ChunkTranslator(build_chat_request(request), review=True, grounding=True)


def _text(deltas: list[Any]) -> str:
    return "".join(d.text for d in deltas if isinstance(d, OutputTextDelta))


def test_a_first_reply_with_a_made_up_conversion_is_rejected_for_the_call() -> None:
    translator = _translator("How many miles is 42 km?")
    out = translator.feed({"choices": [{"delta": {"content": "42 km is 26.21371 miles."}}]})
    assert not _text(out)
    assert translator.done, "the generation stops at the figure"
    assert translator.finish() == []
    assert translator.rejected is not None
    calls, reason = translator.rejected
    assert calls == []
    assert "convert_units" in reason
    assert "26.21371" not in reason, "quoted, the figure was what the re-sample converted"
    assert translator.calls_only_next, "the re-sample is asked for the call, and held to it"
    assert not translator.unasked


def test_an_answer_turn_that_converts_in_its_head_is_rejected_for_the_next_call() -> None:
    call = {
        "type": "function_call",
        "call_id": "call_1",
        "name": "get_weather",
        "arguments": '{"city": "Madrid"}',
    }
    output = {"type": "function_call_output", "call_id": "call_1", "output": '{"temp_c": 25}'}
    # ("in Fahrenheit" holds the answer to the call at its start: `unconverted_scale`)
    translator = _translator("How warm is Madrid? I only know Fahrenheit.", call, output)
    out = translator.feed({"choices": [{"delta": {"content": "It is 25°C, or 77°F."}}]})
    out += translator.finish()
    assert not _text(out)
    assert translator.rejected is not None
    assert "Do not work out figures yourself" in translator.rejected[1]
    assert translator.calls_only_next


def test_a_reply_whose_figures_were_said_goes_out_at_its_end() -> None:
    translator = _translator("How many miles is 42 km?")
    out = translator.feed({"choices": [{"delta": {"content": "42 km is "}}]})
    out += translator.feed({"choices": [{"delta": {"content": "a long way."}}]})
    assert not _text(out), "held while it could still state a figure"
    out += translator.feed({"choices": [{"delta": {}, "finish_reason": "stop"}]})
    out += translator.finish()
    assert _text(out) == "42 km is a long way."
    assert translator.rejected is None
    assert out[-1] == FinishDelta("stop")


def test_a_reply_to_a_message_that_asks_for_no_figure_tool_streams_as_it_comes() -> None:
    translator = _translator("Hi! How are you today?")
    out = translator.feed({"choices": [{"delta": {"content": "Hello! I'm 100% fine."}}]})
    assert _text(out) == "Hello! I'm 100% fine."


STOCK = {
    "type": "function",
    "name": "stock_price",
    "description": "Latest stock price for a ticker symbol.",
    "parameters": {"type": "object", "properties": {"symbol": {"type": "string"}}},
}
REFUSED = "Error: tool 'stock_price' raised ValueError: unknown ticker 'NFLX'"


def _after(outputs: list[str], *, text_pass: bool = False) -> ChunkTranslator:
    items: list[dict[str, Any]] = [user("What's Netflix's stock price?")]
    for index, output in enumerate(outputs):
        call_id = f"call_{index}"
        items += [
            {
                "type": "function_call",
                "call_id": call_id,
                "name": "stock_price",
                "arguments": '{"symbol": "NFLX"}',
            },
            {"type": "function_call_output", "call_id": call_id, "output": output},
        ]
    return _reading(GenerationRequest("local", items, tools=[STOCK]), text_pass=text_pass)


def _reading(request: GenerationRequest, *, text_pass: bool) -> ChunkTranslator:
    """A translator for the reviewed answer, or for the text pass's reply."""
    plan = build_chat_request(request)
    if text_pass:
        return ChunkTranslator(plan, text_pass=True)
    return ChunkTranslator(plan, review=True, grounding=True)


def _assert_held_for_the_text_pass(translator: ChunkTranslator, reply: str) -> None:
    out = translator.feed({"choices": [{"delta": {"content": reply}}]}) + translator.finish()
    assert not _text(out)
    assert translator.rejected is not None
    assert translator.unsourced_figure
    assert translator.unasked, "the text pass answers, not a re-sample"
    assert not translator.calls_only_next


@pytest.mark.parametrize("text_pass", [False, True])
def test_a_figure_stated_after_every_call_failed_is_held_back_for_an_honest_answer(
    text_pass: bool,
) -> None:
    # what the 1.5B answered after `stock_price` refused "NFLX", in both passes
    translator = _after([REFUSED], text_pass=text_pass)
    _assert_held_for_the_text_pass(translator, "Netflix's stock price is $320.")


def test_after_a_failure_a_reply_without_made_up_figures_goes_out() -> None:
    translator = _after([REFUSED])
    out = translator.feed({"choices": [{"delta": {"content": "I could not find NFLX."}}]})
    out += translator.feed({"choices": [{"delta": {}, "finish_reason": "stop"}]})
    out += translator.finish()
    assert _text(out) == "I could not find NFLX."
    assert translator.rejected is None


def test_a_figure_after_a_call_that_worked_is_not_held_for_failures() -> None:
    # a stock tool computes nothing: its answer is not a figure tool's
    translator = _after([REFUSED, "NFLX: 320.5 USD"])
    out = translator.feed({"choices": [{"delta": {"content": "Netflix is at 320.5 USD."}}]})
    assert _text(out), "streams: nothing failed last, and no figure tool was asked for"
    assert not translator.unsourced_figure


@pytest.mark.parametrize("text_pass", [False, True])
def test_a_figure_for_what_no_offered_tool_gives_is_held_back_for_an_honest_answer(
    text_pass: bool,
) -> None:
    # what the 1.5B answered in the terminal chat (calculator, clock and converter)
    message = "What's the stock price of Apple?"
    request = GenerationRequest("local", [user(message)], tools=[CALCULATOR, UNITS])
    _assert_held_for_the_text_pass(
        _reading(request, text_pass=text_pass), "The stock price of Apple is $170.00."
    )


@pytest.mark.parametrize(
    ("message", "tools", "held"),
    [
        ("What's the stock price of Apple?", [CALCULATOR, UNITS], True),
        ("How many dollars is 100 euros?", [CALCULATOR, UNITS], True),
        # a tool of that kind is offered, or the message asks for no such thing
        # (a request for a lookup it names, such as "the weather in Paris", is held
        # for the call instead: `topic_tools`)
        ("Is the weather nice where you are?", [WEATHER, CALCULATOR], False),
        ("Who wrote Hamlet in 1600?", [CALCULATOR, UNITS], False),
        # no tools at all: a plain chat
        ("What's the stock price of Apple?", [], False),
    ],
)
def test_only_a_message_asking_for_what_no_offered_tool_gives_is_held(
    message: str, tools: list[dict[str, Any]], held: bool
) -> None:
    plan = build_chat_request(GenerationRequest("local", [user(message)], tools=tools))
    translator = ChunkTranslator(plan, review=True, grounding=True)
    out = translator.feed({"choices": [{"delta": {"content": "It is 170.5 now, I think."}}]})
    out += translator.finish()
    assert (not _text(out)) == held
    assert translator.unsourced_figure == held


def _follow_up(message: str) -> ChunkTranslator:
    items = [
        user("What's Alice's phone number?"),
        {"type": "function_call", "call_id": "c", "name": "get_weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c", "output": "Alice: 555-0101"},
        {"type": "message", "role": "assistant", "content": "Alice's number is 555-0101."},
        user(message),
    ]
    request = GenerationRequest("local", items, tools=[WEATHER, UNITS])
    return ChunkTranslator(build_chat_request(request), review=True, grounding=True)


def test_prose_for_a_follow_up_naming_new_values_is_rejected_for_the_call() -> None:
    # the 1.5B answered "And Bob's?" with a number nobody gave: "Bob's number is 555-0202."
    translator = _follow_up("And Bob's?")
    out = translator.feed({"choices": [{"delta": {"content": "Bob's number is 555-0202."}}]})
    out += translator.finish()
    assert not _text(out)
    assert translator.rejected is not None
    assert translator.rejected[0] == []
    assert translator.calls_only_next, "the same prompt, held to a call"
    assert not translator.unasked


def test_a_follow_up_with_a_question_of_its_own_may_be_answered_in_prose() -> None:
    translator = _follow_up("And why is that?")
    out = translator.feed({"choices": [{"delta": {"content": "Because it is listed so."}}]})
    out += translator.feed({"choices": [{"delta": {}, "finish_reason": "stop"}]})
    out += translator.finish()
    assert _text(out) == "Because it is listed so."
    assert translator.rejected is None


def test_one_result_s_guard_lets_an_answer_go_once_it_shows_the_result_or_a_figure() -> None:
    tesla = "TSLA: 250.1 USD"
    asked = "Is Tesla doing better?"
    guard = ResultsGuard([tesla], asked, early=True)
    assert guard.feed("Tesla is ") == ""
    assert guard.feed("at 250.1") == "Tesla is at 250.1", "shown: out, and streaming from here"
    assert guard.feed(" USD.") == " USD."
    assert guard.finish() == ""
    assert guard.missing == []
    worked = ResultsGuard([tesla], asked, early=True)
    assert worked.feed("It is up 3") == "It is up 3", "a figure of its own"
    bare = ResultsGuard([tesla], asked, early=True)
    assert bare.feed("Tesla is doing better.") == ""
    assert bare.finish() == ""
    assert bare.missing == [tesla]
    # two results to report: held to the end, and a figure of its own is not enough
    both = ResultsGuard([tesla, "NVDA: 120.3 USD"], asked)
    assert both.feed("TSLA is at 250.1 and up 3%.") == ""
    assert both.finish() == ""
    assert both.missing == ["NVDA: 120.3 USD"]
