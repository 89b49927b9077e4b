"""A first reply that talks about calling a function instead of calling it (TalkGuard)."""

from __future__ import annotations

import pytest

from turnstream.providers._talk_guard import TalkGuard

NAMES = ["get_weather", "calculate"]


def _fed(guard: TalkGuard, text: str, step: int = 3) -> str:
    out = "".join(guard.feed(text[i : i + step]) for i in range(0, len(text), step))
    return out if guard.talked or not guard.holding else out + guard.release()


@pytest.mark.parametrize(
    "reply",
    [
        # what the 1.5B wrote, with tools offered
        "To turn off the lights in the living room, you can use the `turn_off_lights` function.",
        "To get the weather in Paris today, I'll need to call the `current_time` function "
        'with the timezone "Europe/Paris".',
        "To determine who wrote Hamlet, we can use the `calculate` function. The expression",
        "You can use the get_weather function for that.",
        "  I'll need to call the calculate function first.",
        # a time in the purpose clause, its colon at the end of a streamed chunk
        "To set a reminder to pick up the kids at 15:00, you can use the `set_reminder` "
        'function with the arguments `time="15:00"`.',
        "To convert 100 euros to dollars, you can use the following function call:\n```json",
        # after a word of assent; a name in quotes
        "Sure, I can help you with that. To put your phone on silent until 3 PM, you can "
        'use the "set_alarm" function.',
        # a call written out after a colon, in a code block
        'To define the word "ubiquitous":\n```json\n{name": "get_weather", "arguments": {}}',
        # an offered name without an underscore, in quotes (after the clock's result)
        'To wish your uncle in Lima a happy birthday, you can call the "calculate" '
        'function with the expression "(17 * 23) + sqrt(2) / 4".',
    ],
)
def test_an_opening_that_talks_about_a_function_is_held_back(reply: str) -> None:
    guard = TalkGuard(NAMES)
    assert _fed(guard, reply) == ""
    assert guard.talked


@pytest.mark.parametrize(
    "reply",
    [
        "To calculate 15% of 80, multiply 80 by 0.15: the answer is 12.",
        "To make pancakes, mix flour, eggs and milk.\nThen use the pan function-free.",
        "Hello! How can I help you today?",
        "Tokyo is in Japan.",
        "To",
        "Sure, here's a Python function that reverses a string.",
        "Sure! To make tea, boil water and steep the leaves.",
        "Of course. Paris is the capital of France.",
        "Okay",
        "To convert 5 km: it is 3.1 miles.\nThat is all.",
    ],
)
def test_any_other_reply_goes_out_whole(reply: str) -> None:
    guard = TalkGuard(NAMES)
    assert _fed(guard, reply) == reply
    assert not guard.talked


def test_a_reply_is_held_only_while_it_could_open_that_way() -> None:
    guard = TalkGuard(NAMES)
    assert guard.feed("T") == ""
    assert guard.feed("h") == "Th", "released at the first letter no opening has"
    assert guard.feed("ere") == "ere"
    opening = TalkGuard(NAMES)
    assert opening.feed("To make tea, boil") == ""
    assert opening.feed(" water. Then") == "To make tea, boil water. Then"
    assert opening.feed(" steep it.") == " steep it."


def test_a_stop_at_the_end_of_a_chunk_waits_for_what_follows_it() -> None:
    guard = TalkGuard(NAMES)
    assert guard.feed("To set a reminder for 15:") == ""
    assert guard.feed("00, you can use the `set_reminder` function.") == ""
    assert guard.talked
    ended = TalkGuard(NAMES)
    assert ended.feed("To do that, boil water.") == ""
    assert ended.feed(" Then") == "To do that, boil water. Then"
    assert not ended.talked


def test_a_word_of_assent_is_held_only_while_it_could_lead_to_talk() -> None:
    guard = TalkGuard(NAMES)
    assert guard.feed("Sure, I can help.") == ""
    assert guard.feed(" Paris is") == "Sure, I can help. Paris is", "no opening after it"
    short = TalkGuard(NAMES)
    assert short.feed("Surely not") == "Surely not", "not a word of assent"
