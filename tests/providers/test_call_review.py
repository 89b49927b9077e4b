"""The review of a local model's calls before they are emitted (pure, no model)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.providers.helpers import (
    CLOCK,
    CURRENCY,
    UNITS,
    WEATHER,
    assistant,
    function_call,
    function_output,
)
from turnstream.providers._call_review import (
    Correction,
    _asked_unit,
    _mixed_currencies,
    _spoken_times,
    asked_with,
    asks_for_any,
    compound_measures,
    conversation_text,
    copied_example_values,
    doubtful,
    final_results,
    followup_tools,
    latest_request,
    left_out,
    may_reject,
    review_calls,
    said_numbers,
    tells_only,
    topic_tools,
    unasked,
    uncalled_names,
    uncalled_tools,
    unconverted_scale,
    underived,
    ungrounded_values,
    unrelated,
    unsaid_numbers,
    unsaid_times,
    untooled_topic,
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
    # the example's own part, made of the user's numbers alone, is theirs
    times = conversation_text(None, [user("Calculate 17 times 23.")])
    assert copied_example_values(args(expression="17 * 23"), CALCULATE, times) == []
    assert copied_example_values(args(expression="sqrt(2) / 4"), CALCULATE, times) != []


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


def test_a_copy_where_the_message_names_a_place_is_corrected_with_the_place() -> None:
    kathmandu = [user("Calling an agency in Kathmandu, is their office open at this hour?")]
    copy = [("get_time", args(timezone="Asia/Tokyo"))]
    reason = review_calls(copy, [GET_TIME], kathmandu)
    # a mistake the model can mend: it gets one more try, told the place to use
    assert isinstance(reason, Correction)
    assert "My request names Kathmandu: call get_time with it." in reason
    # two places, both named; a place the call already took is not
    both = [user("What time is it in Lima and in Oslo right now?")]
    reason = review_calls(copy, [GET_TIME], both)
    assert isinstance(reason, Correction)
    assert "Lima and Oslo: call get_time with each" in reason
    lima = [("get_time", args(timezone="America/Lima", format="24h"))]
    reason = review_calls(lima, [GET_TIME], both)
    assert reason is not None
    assert "names Oslo:" in reason
    # no place, a tool of another kind, or a message that does not ask for the tool:
    # the plain reason, which allows a plain-text answer
    for items, tool in (
        ([user("Hi! How are you today?")], GET_TIME),
        ([user("I was in Kathmandu last spring, it was lovely.")], GET_TIME),
        ([user("What is 3 plus 4 in Kathmandu?")], CALCULATE),
    ):
        call = [(tool["name"], args(expression="(17 * 23) + sqrt(2) / 4", timezone="Asia/Tokyo"))]
        reason = review_calls(call, [tool], items)
        assert reason is not None
        assert not isinstance(reason, Correction)
        assert "plain text" in reason


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


def test_a_call_repeated_from_an_earlier_turn_is_sent_back_with_the_latest_message() -> None:
    items = [
        user("What is 5 times 1.609?"),
        {
            "type": "function_call",
            "call_id": "c1",
            "name": "calculate",
            "arguments": '{"expression": "5*1.609"}',
        },
        {"type": "function_call_output", "call_id": "c1", "output": "5*1.609 = 8.045"},
        {"type": "message", "role": "assistant", "content": "It is 8.045."},
        user("And 7 times it?"),
    ]
    reason = review_calls([("calculate", args(expression="5*1.609"))], [CALCULATE], items)
    assert reason is not None
    assert "for my earlier message" in reason
    assert "My latest message is: And 7 times it?" in reason
    assert "8.045" in reason


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


STOCK = {
    "type": "function",
    "name": "stock_price",
    "description": "Latest price of a share.",
    "parameters": {"type": "object", "properties": {"symbol": {"type": "string"}}},
}


def ungrounded(tool: dict[str, Any], said: str, **values: Any) -> list[str]:
    return ungrounded_values(args(**values), tool, said, said)


def test_a_greeting_answered_with_a_clock_call_for_a_city_nobody_named_is_ungrounded() -> None:
    hi = "Hi! How are you today?"
    assert ungrounded(CLOCK, hi, timezone="America/New_York") == ["America/New_York"]
    assert ungrounded(STOCK, "Nice to meet you.", symbol="Tesla Inc") == ["Tesla Inc"]


def test_a_value_is_grounded_by_any_word_of_it_in_any_form_of_the_conversation() -> None:
    # "New York" grounds America/New_York; numbers ground an expression
    assert ungrounded(CLOCK, "Is it morning in new-york? Hi", timezone="America/New_York") == []
    assert ungrounded(UNITS, "Hello 640", from_unit="640 things", to_unit="m") == []
    # one word that shortens a word that was said
    assert ungrounded(STOCK, "Hello Microsoft fans", symbol="MSFT") == []
    assert ungrounded(STOCK, "Hello Microsoft fans", symbol="MXFT") == ["MXFT"]
    # one short code, from knowledge: F, JPY
    assert ungrounded(UNITS, "Hello", from_unit="F", to_unit="JPY") == []
    # but in a phrase, a short word grounds nothing ("he" could shorten "hello")
    assert ungrounded(STOCK, "Hello there", symbol="he is") == ["he is"]


def test_numbers_are_left_to_the_other_rules() -> None:
    assert ungrounded(UNITS, "Good night!", value=12.5, from_unit="m", to_unit="ft") == []


def test_a_request_for_what_the_tool_does_needs_no_grounded_values() -> None:
    # the model may know Mumbai's zone, or a company's ticker
    mumbai = "Is it evening in Mumbai yet? Check the time."
    assert ungrounded(CLOCK, mumbai, timezone="Asia/Kolkata") == []
    assert ungrounded(STOCK, "What do Apple shares cost? The price please.", symbol="AAPL") == []
    # forms of a word count: "converting" asks for convert_units
    assert ungrounded(UNITS, "Converting a cup, please", from_unit="cup", to_unit="litre") == []


def test_grounding_reads_the_whole_conversation_but_only_the_latest_request() -> None:
    items = [
        user("What time is it?"),
        {"type": "function_call", "call_id": "c", "name": "current_time", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c", "output": "10:05 in Europe/Oslo"},
        user("Thanks! Nice day."),
    ]
    assert latest_request(items) == "Thanks! Nice day."
    said = conversation_text(None, items)
    request = latest_request(items)
    assert ungrounded_values(args(timezone="Europe/Oslo"), CLOCK, said, request) == []
    loose = ungrounded_values(args(timezone="Asia/Dubai"), CLOCK, said, request)
    assert loose == ["Asia/Dubai"]
    assert latest_request([]) == ""


def test_review_rejects_an_ungrounded_call_only_when_grounding_is_on() -> None:
    items = [user("Hi! How are you today?")]
    call = [("current_time", args(timezone="America/New_York"))]
    assert review_calls(call, [CLOCK], items) is None
    reason = review_calls(call, [CLOCK], items, grounding=True)
    assert reason is not None
    assert '"America/New_York"' in reason
    assert "plain text" in reason
    paris = [user("What time is it in Paris?")]
    assert review_calls([("current_time", args(timezone="Europe/Paris"))], [CLOCK], paris) is None


def test_a_call_rejected_only_as_ungrounded_is_unasked_and_wants_plain_text() -> None:
    hi = [user("Hi! How are you today?")]
    new_york = [("current_time", args(timezone="America/New_York"))]
    assert unasked(new_york, [CLOCK], hi)
    # asked for, or grounded: not rejected at all, so not unasked either
    assert not unasked(new_york, [CLOCK], [user("What time is it in New York?")])
    # rejected for something a re-sample can put right: the reason says what to do
    miles = [user("Convert 5 miles to km, then add 3 to the result.")]
    assert not unasked([("calculate", args(expression="5 * 1.60934 + 3"))], [CALCULATE], miles)
    copied = [("calculate", args(expression="(17 * 23) + sqrt(2) / 4"))]
    assert not unasked(copied, [CALCULATE], [user("What is 17 plus 25?")])
    # a function no tool has: unasked for a message that asks for no tool, else the
    # re-sample's reason lists the real names
    assert unasked([("greeting", args(text="hi"))], [CLOCK], hi)
    story = [user("Write a long story about a robot who learns to cook.")]
    assert unasked([("write_long_story", args(topic="robot"))], [CLOCK, CALCULATE], story)
    paris = [user("What time is it in Paris? Check the time.")]
    assert not unasked([("get_time", args(city="Paris"))], [CLOCK], paris)
    # one unasked call beside one the user asked for is still unasked as a whole
    assert unasked([*new_york, ("calculate", args(expression="2 + 2"))], [CLOCK, CALCULATE], hi)


def test_with_grounding_a_call_to_a_tool_the_user_did_not_ask_for_may_be_rejected() -> None:
    plain = {**CLOCK, "description": ""}
    assert not may_reject("current_time", [plain], [user("What's the time now?")], grounding=True)
    assert may_reject("current_time", [plain], [user("Hello!")], grounding=True)
    assert not may_reject("current_time", [plain], [user("Hello!")])


def test_a_conversion_factor_from_memory_in_an_expression_is_a_number_nobody_said() -> None:
    miles = "Convert 5 miles to km, then add 3 to the result."
    assert unsaid_numbers(args(expression="5 * 1.60934 + 3"), miles) == ["1.60934"]
    assert unsaid_numbers(args(value=1609.344), miles) == ["1609.344"]
    reason = review_calls(
        [("calculate", args(expression="5 * 1.60934 + 3"))],
        [CALCULATE],
        [user(miles)],
        grounding=True,
    )
    assert reason is not None
    assert "1.60934" in reason
    assert "call that function first" in reason
    assert (
        review_calls(
            [("calculate", args(expression="5 * 1.60934 + 3"))], [CALCULATE], [user(miles)]
        )
        is None
    )


def test_an_answer_that_repeats_only_what_the_call_was_made_with_shows_no_result() -> None:
    # "And the company behind Windows?" -> `MSFT` -> "Microsoft (MSFT) is the company
    # behind Windows.": the ticker is the call's, the price is the result
    items = [
        user("And the company behind Windows?"),
        function_call("s1", "stock_price", args(symbol="MSFT")),
        function_output("s1", "MSFT: 415.2 USD"),
    ]
    asked = asked_with(items)
    answer = "Microsoft (MSFT) is the company behind Windows."
    assert left_out(answer, ["MSFT: 415.2 USD"], asked) == ["MSFT: 415.2 USD"]
    assert left_out(answer, ["MSFT: 415.2 USD"], latest_request(items)) == []
    assert left_out("Microsoft is at 415.2 USD.", ["MSFT: 415.2 USD"], asked) == []
    # the calls of the latest message only: an earlier turn's are no longer asked with
    earlier = [
        user("What's Microsoft's price?"),
        function_call("s0", "stock_price", args(symbol="MSFT")),
        function_output("s0", "MSFT: 415.2 USD"),
        user("And Apple's?"),
        function_call("s1", "stock_price", args(symbol="AAPL")),
    ]
    assert "MSFT" not in asked_with(earlier)
    assert "AAPL" in asked_with(earlier)


def test_a_short_rate_from_memory_is_unsaid_while_a_converter_for_it_is_uncalled() -> None:
    # "150 + 80 * 0.85": two significant digits pass `unsaid_numbers`, but the message
    # asks for a converter that gives the rate
    francs = "I have 150 Swiss francs and 80 British pounds. How many euros is that altogether?"
    call = [("calculate", args(expression="150 + 80 * 0.85"))]
    tools = [CALCULATE, UNITS, CURRENCY]
    reason = review_calls(call, tools, [user(francs)], grounding=True)
    assert reason is not None
    assert "0.85" in reason
    assert "(convert_currency, say)" in reason, "money named: the currency converter alone"
    # a weight in pounds: the unit converter too
    weight = "My bag weighs 52 pounds. How many kilos is that plus 3?"
    reason = review_calls(
        [("calculate", args(expression="52 * 0.45 + 3"))], tools, [user(weight)], grounding=True
    )
    assert reason is not None
    assert "(convert_units or convert_currency, say)" in reason
    # no converter asked for, or one already called, or a fraction of one digit, or one
    # that was said: the expression goes out
    plain = [user("What is 150 plus 80 times 1.5?")]
    assert review_calls([("calculate", args(expression="150 + 80 * 1.5"))], tools, plain) is None
    rated = [
        user(francs),
        function_call("c1", "convert_currency", args(amount=80, from_currency="GBP")),
        function_output("c1", "80 GBP = 93.16 EUR"),
    ]
    after = [("calculate", args(expression="93.16 * 0.85"))]
    assert review_calls(after, tools, rated, grounding=True) is None
    half = [("calculate", args(expression="(150 + 80) * 0.5"))]
    assert review_calls(half, tools, [user(francs)], grounding=True) is None
    assert review_calls(call, [CALCULATE, WEATHER], [user(francs)], grounding=True) is None
    said = [user(francs + " My bank's rate is 0.85.")]
    assert review_calls(call, tools, said, grounding=True) is None
    whole = [("calculate", args(expression="(150 + 80) * 12"))]
    assert review_calls(whole, tools, [user(francs)], grounding=True) is None
    # a fraction with no conversion asked for is the calculation's own
    seventh = [user("Add 150 and 80, then take a seventh of it.")]
    sevenths = [("calculate", args(expression="(150 + 80) * 0.14"))]
    assert review_calls(sevenths, tools, seventh, grounding=True) is None
    # and only a calculator's expression holds a remembered rate
    amount = [("convert_currency", args(amount="80 * 0.85", from_currency="GBP"))]
    assert review_calls(amount, tools, [user(francs)], grounding=True) is None


def _calculated(
    expression: str, message: str | list[dict[str, Any]], tools: list[dict[str, Any]]
) -> str | None:
    items = [user(message)] if isinstance(message, str) else message
    return review_calls([("calculate", args(expression=expression))], tools, items, grounding=True)


def test_a_sum_or_difference_of_numbers_in_different_units_is_sent_back_to_convert() -> None:
    suitcase = "My suitcase weighs 52 pounds and the airline allows 23 kg. How many kilos over?"
    tools = [CALCULATE, UNITS]
    reason = _calculated("52 - 23", suitcase, tools)
    assert isinstance(reason, Correction)
    assert reason == (
        "Your call to calculate adds or subtracts 52 and 23, but my message gives 52 in lb "
        "and 23 in kg. Call convert_units first to convert 52 lb to kg."
    )
    assert _calculated("23 + 52", suitcase, tools) is not None
    drove = "I drove 1,200 km and then 300 miles. How far is that in total?"
    assert "gives 1200 in km and 300 in mi" in str(_calculated("1200 + 300", drove, tools))
    # the same unit ("5 km and 3 kilometres"), a number with no unit, a product, no
    # converter on offer, or one already called: the expression goes out
    assert _calculated("5 + 3", "Add 5 km and 3 kilometres.", tools) is None
    assert _calculated("5 + 3", "I walked 5 km and then 3 more. How far?", tools) is None
    assert _calculated("52 * 23", "What is 52 pounds times 23 kg?", tools) is None
    # a ratio of one dimension in two units; not of two dimensions (a speed)
    weigh = "I weigh 165 lb and carry 40 kg. What percentage of my bodyweight is that?"
    assert "divides 40 and 165" in str(_calculated("40 / 165 * 100", weigh, tools))
    # any use of a number measured in one of two units of a dimension
    bag = "Carry-on max is 158 cm total. Mine's 62 inches all added up, am I ok?"
    assert "uses 62 in, but my message gives 158 in cm" in str(
        _calculated("62 / 12 * 158", bag, tools)
    )
    milk = "Recipe wants 2.5 cups of milk and I've got a 500 ml carton. How many ml short?"
    assert "subtracts 500 and 2.5" in str(_calculated("500 - 2.5", milk, tools))
    weigh = "I weigh 165 lb and the dumbbells total 40 kg. What percentage of me is that?"
    assert "uses 165 lb, but my message gives 40 in kg" in str(
        _calculated("165 / 165 * 100", weigh, tools)
    )
    # units of different dimensions, or one unit only
    assert _calculated("62 * 2", "I walked 62 km with 2 kg on my back. Total?", tools) is None
    assert _calculated("62 / 2", "Two bags, 62 kg and 20 kg: half of the first?", tools) is None
    dense = "A 5 kg bag of flour fills a 2 litre jar. How many kilos per litre is it?"
    assert "divides" not in str(_calculated("5 / 2", dense, tools))
    assert _calculated("12 / 2", "I ran 12 km, then 2 km. How many times more?", tools) is None
    assert _calculated("52 - 23", suitcase, [CALCULATE]) is None
    converted = [
        user(suitcase),
        function_call("u1", "convert_units", args(value=52, from_unit="lb", to_unit="kg")),
        function_output("u1", "52 lb = 23.5868 kg"),
    ]
    # once converted, the units agree; what is wrong then is the amount converted
    # taken in place of what it came to (`_unconverted`)
    assert "in place of 52" in str(_calculated("52 - 23", converted, tools))
    assert _calculated("23.5868 - 23", converted, tools) is None
    # only a calculator's arguments are read
    wrong = [("convert_units", args(value="52 - 23"))]
    assert review_calls(wrong, tools, [user(suitcase)], grounding=True) is None


def test_said_numbers_count_rounded_or_as_percentages_and_short_numbers_are_free() -> None:
    assert unsaid_numbers(args(expression="1234 * 5678"), "Calculate 1234 * 5678.") == []
    # 12.5% of 640, 3.5 percent of 2000
    assert unsaid_numbers(args(expression="0.125 * 640"), "What is 12.5% of 640?") == []
    assert unsaid_numbers(args(expression="0.035*2000"), "3.5 percent of 2000") == []
    # a percentage added or taken off: "add a 15% service charge", "12.5% off"
    charge = "2000 JPY = 13.33 USD. Add a 15% service charge."
    assert unsaid_numbers(args(expression="13.33 * 1.15"), charge) == []
    assert unsaid_numbers(args(expression="640 * 0.875"), "Take 12.5% off 640.") == []
    assert unsaid_numbers(args(expression="13.33 * 1.16"), charge) == ["1.16"]
    # a whole number is no percentage: the "00" of a clock time does not show 80
    paris = "The time in Paris is Thursday 2026-12-03 11:05:00 Europe/Paris (UTC+0100)."
    results = ["12.5% * 640 = 80", "Thursday 2026-12-03 11:05:00 Europe/Paris (UTC+0100)"]
    assert left_out(paris, results) == ["12.5% * 640 = 80"]
    assert left_out("12.5% of 640 is 80, and in " + paris, results) == []
    assert left_out("Step 1 is done.", ["12.5% * 640 = 80"]) == ["12.5% * 640 = 80"]
    assert left_out("It is 0.8 of it.", ["12.5% * 640 = 80"]) == []
    # a tool's output, rounded by the model
    assert unsaid_numbers(args(expression="8.05 + 3"), "5 mi = 8.04672 km") == []
    assert unsaid_numbers(args(expression="8.07 + 3"), "5 mi = 8.04672 km") == ["8.07"]
    # two significant digits or fewer: minutes in an hour, a half, a thousand
    assert unsaid_numbers(args(expression="123 / 60 + 0.5 * 1000"), "add 123") == []
    assert unsaid_numbers(args(expression="180.0 / 60"), "") == []


def test_a_number_argument_nobody_said_is_unsaid_unless_it_is_zero_or_one() -> None:
    cairo = "Get the weather in Cairo and convert the temperature to Fahrenheit."
    assert unsaid_numbers(args(value=25, from_unit="C"), cairo) == ["25"]
    # once the weather tool has said it, it may be converted
    assert unsaid_numbers(args(value=34), cairo + ' {"temp_c": 34}') == []
    assert unsaid_numbers(args(value=1, from_unit="mi"), "Convert a mile to km.") == []
    assert unsaid_numbers(args(days=3), "Weather for the next three days?") == []
    assert unsaid_numbers(args(value=-3), "It is -3 in Oslo.") == []


def test_an_example_value_the_conversation_names_in_other_words_is_derived_not_copied() -> None:
    stock = {
        "type": "function",
        "name": "stock_price",
        "description": "Latest stock price for a ticker symbol like AAPL.",
        "parameters": {"type": "object", "properties": {"symbol": {"type": "string"}}},
    }
    apple = conversation_text(None, [user("What's Apple's stock price?")])
    assert copied_example_values(args(symbol="AAPL"), stock, apple) == []
    tokyo = conversation_text(None, [user("What time is it in Tokyo?")])
    assert copied_example_values(args(timezone="Asia/Tokyo"), GET_TIME, tokyo) == []
    # the example for another company, city or calculation is still a copy
    microsoft = conversation_text(None, [user("What's Microsoft's stock price?")])
    assert copied_example_values(args(symbol="AAPL"), stock, microsoft) == ["AAPL"]
    berlin = conversation_text(None, [user("What time is it in Berlin?")])
    assert copied_example_values(args(timezone="Asia/Tokyo"), GET_TIME, berlin) == ["Asia/Tokyo"]
    sums = conversation_text(None, [user("What is the sqrt of 17 plus 25?")])
    expression = "(17 * 23) + sqrt(2) / 4"
    assert copied_example_values(args(expression=expression), CALCULATE, sums) == [expression]
    # one word of a phrase in common is not enough when it is not the one that names
    reminder = {
        "type": "function",
        "name": "create_reminder",
        "description": "Create a reminder, e.g. text 'buy milk'.",
        "parameters": {"type": "object", "properties": {"text": {"type": "string"}}},
    }
    bread = conversation_text(None, [user("Remind me to buy bread.")])
    assert copied_example_values(args(text="buy milk"), reminder, bread) == ["buy milk"]
    assert review_calls([("stock_price", args(symbol="AAPL"))], [stock], [user("Apple?")]) is None


def test_a_call_is_doubtful_when_the_message_names_nothing_its_tool_does() -> None:
    assert doubtful("get_weather", [WEATHER], [user("What language do they speak in Brazil?")])
    assert not doubtful("get_weather", [WEATHER], [user("What's the weather in Brazil?")])
    # the latest message decides, and a name no tool has is the review's business
    history = [user("Weather in Rome?"), user("And the language there?")]
    assert doubtful("get_weather", [WEATHER], history)
    assert not doubtful("weather_now", [WEATHER], [user("Hi")])


@pytest.mark.parametrize(
    "message",
    [
        "What is 17 plus 25?",
        "What's 15% of 80?",
        "Compute 1000 / 8.",
        "Add 45 and 78.",
        "What is the mean of 4, 8 and 15?",
        "What's the median value of 3, 9 and 4?",
    ],
)
def test_a_calculation_asks_for_a_calculator_whose_description_shares_no_word(
    message: str,
) -> None:
    assert not doubtful("calculate", [CALCULATE], [user(message)])
    assert doubtful("convert_units", [UNITS], [user(message)])


@pytest.mark.parametrize(
    "message", ["How many kilograms is 150 pounds?", "And 42 km?", "Is 30 Celsius hot?"]
)
def test_a_unit_asks_for_a_unit_converter(message: str) -> None:
    assert not doubtful("convert_units", [UNITS], [user(message)])
    assert doubtful("calculate", [CALCULATE], [user(message)])


@pytest.mark.parametrize(
    "message",
    [
        "Hi! How are you?",
        "What time is it in 2 cities?",
        # "mean" as a word's meaning, not an average
        "What does serendipity mean?",
        "I mean it, thanks!",
    ],
)
def test_neither_kind_is_asked_for_by_other_messages(message: str) -> None:
    assert doubtful("calculate", [CALCULATE], [user(message)])
    assert doubtful("convert_units", [UNITS], [user(message)])


def test_a_made_up_number_is_sent_back_naming_the_tool_the_message_asks_for_first() -> None:
    request = [user("Get the weather in Cairo and convert the temperature to Fahrenheit.")]
    call = ("convert_units", args(value=25, from_unit="C", to_unit="F"))
    reason = review_calls([call], [WEATHER, UNITS, CALCULATE], request, grounding=True)
    assert reason is not None
    assert "(get_weather, say), call that function first" in reason
    # with no such tool, the reason stays general
    reason = review_calls([call], [UNITS, CALCULATE], request, grounding=True)
    assert reason is not None
    assert "(a conversion, say)" in reason


REMINDER = {
    "type": "function",
    "name": "create_reminder",
    "description": "Create a reminder.",
    "parameters": {"type": "object", "properties": {"text": {"type": "string"}}},
}
CONTACTS = {
    "type": "function",
    "name": "search_contacts",
    "description": "Find a person in the address book.",
    "parameters": {"type": "object", "properties": {"name": {"type": "string"}}},
}


def _after_reminder(output: str) -> list[dict[str, Any]]:
    return [
        user("Remind me to water the plants at 08:00."),
        {
            "type": "function_call",
            "call_id": "c1",
            "name": "create_reminder",
            "arguments": '{"text": "water the plants"}',
        },
        {"type": "function_call_output", "call_id": "c1", "output": output},
    ]


def test_a_call_the_message_does_not_ask_for_after_its_result_came_back_is_unasked() -> None:
    items = _after_reminder("Reminder set: 'water the plants' at 08:00.")
    call = [("search_contacts", args(name="plants"))]
    tools = [REMINDER, CONTACTS]
    reason = review_calls(call, tools, items, grounding=True)
    assert reason is not None
    assert "already returned what it asks for" in reason
    assert unasked(call, tools, items)
    # without grounding, or after the tool failed, the call may go out
    assert review_calls(call, tools, items) is None
    failed = _after_reminder("Error: tool 'create_reminder' raised ValueError: bad time")
    assert review_calls(call, tools, failed, grounding=True) is None


def test_a_chains_next_step_that_the_message_asks_for_goes_out() -> None:
    items = [
        user("Convert 5 miles to km, then add 3 to the result."),
        {
            "type": "function_call",
            "call_id": "c1",
            "name": "convert_units",
            "arguments": '{"value": 5, "from_unit": "mi", "to_unit": "km"}',
        },
        {"type": "function_call_output", "call_id": "c1", "output": "5 mi = 8.04672 km"},
    ]
    call = [("calculate", args(expression="8.04672 + 3"))]
    assert review_calls(call, [UNITS, CALCULATE], items, grounding=True) is None


def _after_calculation(message: str, expression: str, output: str) -> list[dict[str, Any]]:
    return [
        user(message),
        {
            "type": "function_call",
            "call_id": "c1",
            "name": "calculate",
            "arguments": args(expression=expression),
        },
        {"type": "function_call_output", "call_id": "c1", "output": output},
    ]


def test_a_calculation_that_applies_its_last_step_again_to_its_result_is_rejected() -> None:
    # what the 1.5B did: 45 * 12 - 30 = 510, then 510 - 30, then 480 / 3
    items = _after_calculation(
        "Calculate 45 times 12 minus 30.", "45 * 12 - 30", "45 * 12 - 30 = 510"
    )
    call = [("calculate", args(expression="510 - 30"))]
    reason = review_calls(call, [CALCULATE], items, grounding=True)
    assert reason is not None
    assert reason.startswith("45 * 12 - 30 = 510 has already done that step")
    assert unasked(call, [CALCULATE], items), "the reason asks for the answer in plain text"
    assert review_calls(call, [CALCULATE], items) is None, "only with grounding"


def test_a_step_an_earlier_calculation_did_applied_again_to_a_later_result_is_rejected() -> None:
    # what the 1.5B did: 187.50 * 1.10 (a 10% tip), 206.25 / 5, then 41.25 * 1.10
    message = "5 of us at dinner, the bill's 187.50 plus a 10% tip. How much does each owe?"
    items = [
        *_after_calculation(message, "187.50 * 1.10", "187.50 * 1.10 = 206.25"),
        {
            "type": "function_call",
            "call_id": "c2",
            "name": "calculate",
            "arguments": args(expression="206.25 / 5"),
        },
        {"type": "function_call_output", "call_id": "c2", "output": "206.25 / 5 = 41.25"},
    ]
    call = [("calculate", args(expression="41.25 * 1.10"))]
    reason = review_calls(call, [CALCULATE], items, grounding=True)
    assert reason is not None
    assert reason.startswith(
        "187.50 * 1.10 and then 206.25 / 5 = 41.25 has already done that step: 41.25 is the"
    )
    # a step the message says twice may come twice
    twice = message.replace("10% tip", "10% tip, and 10% again on each share")
    again = [user(twice), *items[1:]]
    assert (
        review_calls(
            [("calculate", args(expression="41.25 * 1.10"))], [CALCULATE], again, grounding=True
        )
        is None
    )


def test_a_calculation_that_takes_the_result_with_nothing_new_from_the_message_is_rejected() -> (
    None
):
    # what the 1.5B did: 20% of 150 = 30, then 30 * 150 / 100 = 45, and answered 45
    items = _after_calculation("What's 20% of 150?", "20% of 150", "20% of 150 = 30")
    call = [("calculate", args(expression="30 * 150 / 100"))]
    reason = review_calls(call, [CALCULATE], items, grounding=True)
    assert reason is not None
    assert reason.startswith("20% of 150 = 30 has already done that step")
    assert unasked(call, [CALCULATE], items)


@pytest.mark.parametrize(
    ("message", "expression", "output", "next_expression"),
    [
        ("What is 10 / 3, rounded?", "10 / 3", "10 / 3 = 3.3333", "round(3.3333)"),
        # the message says the step twice, or the next step is a new one
        ("What is 2 + 2, then add 2 more?", "2 + 2", "2 + 2 = 4", "4 + 2"),
        ("Take 15% of 80, then add it to 80.", "80 * 0.15", "80 * 0.15 = 12", "80 + 12"),
        ("Multiply 6 by 7, then subtract 2.", "6 * 7", "6 * 7 = 42", "42 - 2"),
        ("Calculate 45 times 12 minus 30.", "45 * 12", "45 * 12 = 540", "540 - 30"),
        # not a one-step request (`_one_step_done`): two operations, or a further step
        # in words
        ("What is 25% of 80 plus 12?", "25% * 80", "25% * 80 = 20", "20 + 12"),
        ("What's the square of the sum of 3 and 4?", "3 + 4", "3 + 4 = 7", "7 ** 2"),
        ("What is 2 + 3 * 4?", "3 * 4", "3 * 4 = 12", "2 + 12"),
        ("What is 100 divided by 8, rounded?", "100 / 8", "100 / 8 = 12.5", "round(12.5)"),
        # one step, but a number of the message that no call has used yet
        ("Add 17, 25 and 8.", "17 + 25", "17 + 25 = 42", "42 + 8"),
        # one step whose first calculation failed
        ("What's 20% of 150?", "20 %% 150", "Error: invalid syntax", "20 / 100 * 150"),
    ],
)
def test_a_next_step_the_message_asks_for_is_not_a_step_applied_again(
    message: str, expression: str, output: str, next_expression: str
) -> None:
    items = _after_calculation(message, expression, output)
    call = [("calculate", args(expression=next_expression))]
    assert review_calls(call, [CALCULATE], items, grounding=True) is None


@pytest.mark.parametrize(
    ("message", "expression", "whole"),
    [
        # what the 1.5B called, and answered 7000
        ("What's 3.5 percent of 2000?", "3.5 * 2000", True),
        ("What is 12.5% of 640?", "640 * 12.5", True),
        ("Take 15 per cent off 80.", "80 - 15", True),
        # written as a percentage, a fraction, or divided by 100 anywhere
        ("What's 3.5 percent of 2000?", "3.5% * 2000", False),
        ("What's 3.5 percent of 2000?", "3.5 / 100 * 2000", False),
        ("What's 3.5 percent of 2000?", "3.5 * 2000 / 100", False),
        ("What's 3.5 percent of 2000?", "0.035 * 2000", False),
        ("What is 12.5% of 640?", "640 * 0.125", False),
        ("What is 12.5% of 640?", "640 * 12.5 * 0.01", False),
        # no percentage, or a number the percentage only contains
        ("What is 3.5 times 2000?", "3.5 * 2000", False),
        ("What's 5 percent of 150?", "150 * 0.05", False),
        ("Increase 50 by 50%.", "50 * 1.5", False),
    ],
)
def test_a_percentage_used_as_a_whole_number_is_sent_back(
    message: str, expression: str, whole: bool
) -> None:
    call = [("calculate", args(expression=expression))]
    reason = review_calls(call, [CALCULATE], [user(message)], grounding=True)
    if whole:
        assert reason is not None
        assert "percent, and your call to calculate uses" in reason
    else:
        assert reason is None


DICTIONARY = {
    "type": "function",
    "name": "define_word",
    "description": "Look up the definition of an English word.",
    "parameters": {"type": "object", "properties": {"word": {"type": "string"}}},
}


@pytest.mark.parametrize(
    ("tool", "message"),
    [
        (WEATHER, "Is it raining in London?"),
        (WEATHER, "How cold is it in Oslo?"),
        (WEATHER, "Which is warmer right now, Tokyo or Sydney?"),
        (CLOCK, "Is it morning in New York?"),
        (CLOCK, "Is it still morning in Los Angeles?"),
        (CLOCK, "Is it 5 o'clock in Paris yet?"),
        (CLOCK, "Is it already Friday in Auckland?"),
        (CLOCK, "Would my friend in San Francisco still be awake?"),
        (CLOCK, "Is it lunchtime in Rome yet?"),
        (CLOCK, "How many hours ahead of London is Tokyo?"),
        (CALCULATE, "Split it between the two of us."),
        (DICTIONARY, "What's the meaning of gregarious?"),
        (CURRENCY, "How many yen is 100 dollars?"),
        (CURRENCY, "What is €40 in pounds?"),
        (CALCULATE, "What is 7 factorial?"),
        (CALCULATE, "What's 9!?"),
        (CALCULATE, "I'm paying off 4,380 over 24 months, how much is each payment?"),
        (CALCULATE, "A 24-pack of sparkling water is 17.76. What does each can work out to?"),
        (CALCULATE, "Three of us rent a cabin for 1,290 and add 60 for fuel. What's my share?"),
        (CALCULATE, "What do 4 tickets at 37.50 come to?"),
        (CALCULATE, "My goal is 20 km and I ran 13 so far. How far off am I?"),
        (CALCULATE, "The hose puts out 9 litres a minute. How long will it take to fill 150?"),
        (CALCULATE, "A bed 2.5 m long and 1.2 m wide: how many square metres is that?"),
        (CALCULATE, "What is log(1000)?"),
        # meals, waking, lateness and the wind in a question (or a last sentence left
        # open), with a place named
        (CLOCK, "Would my pen pal in Seoul be sitting down to dinner about now?"),
        (CLOCK, "Would a call now wake him up in Lima?"),
        (CLOCK, "Is my sister in Perth having breakfast yet?"),
        (WEATHER, "Going for a stroll in Lisbon. Is it breezy out there at the moment?"),
        (WEATHER, "Is it foggy in San Francisco?"),
        (WEATHER, "Walk round Rome soon, jacket or no jacket? what's it like outside rn"),
        (CLOCK, "Is it too late to text my mate in Reykjavik?"),
        (CLOCK, "Texting my mate in Reykjavik now? dont want to wake him up"),
        (WEATHER, "Off to the Lisbon beach, wondering if it's breezy"),
        (CLOCK, "Calling an agency in Kathmandu, is their office even open at this hour?"),
        (CLOCK, "My partner is in Johannesburg, would he still be out at lunch right now?"),
        (CLOCK, "Our supplier is in Mexico City. Would anyone there be at work yet?"),
        (CLOCK, "Is my brother in Denver still up?"),
        (CLOCK, "Is it within office hours in Singapore?"),
    ],
)
def test_a_request_for_what_a_common_kind_of_tool_gives_asks_for_it(
    tool: dict[str, Any], message: str
) -> None:
    # none of these shares a word with its tool's description
    assert asks_for_any([tool], [user(message)])


@pytest.mark.parametrize(
    ("tool", "message"),
    [
        (CLOCK, "Sitting down to dinner in Seoul now."),
        (CLOCK, "Good morning! Did you sleep well?"),
        (CLOCK, "The baby might wake up in Lima soon."),
        (WEATHER, "Greetings from a very foggy San Francisco!"),
        (WEATHER, "What a breezy afternoon in Lisbon."),
        (WEATHER, "Left my coat in Oslo. Such a pity."),
        (CLOCK, "When's the best time of year to visit Lisbon?"),
        (CLOCK, "Do you have any free time this week?"),
        (CLOCK, "How much time will 5 km at 6 km/h take in Paris?"),
        (CLOCK, "What's the total time for 3 laps of 4 minutes in Rome?"),
        (CLOCK, "Time to stock up in Lyon: 5 kg at 2.40 a kilo, what do I pay?"),
        (CLOCK, "5 of us at dinner, the bill's 187.50 plus a 10% tip. how much does each owe?"),
        (CLOCK, "Is it too late to start a new hobby at 40?"),
        (CLOCK, "Stuck at work again, ugh."),
        (CLOCK, "Are you still up for a chat at Easter?"),
        (CLOCK, "Sitting at home, is it too late to order pizza?"),
    ],
)
def test_meals_waking_and_the_wind_outside_a_question_ask_for_nothing(
    tool: dict[str, Any], message: str
) -> None:
    assert not asks_for_any([tool], [user(message)])
    assert topic_tools([tool], [user(message)]) == []


@pytest.mark.parametrize(
    "message", ["Good morning!", "Hi! How are you today?", "Good night!", "Say hello in French."]
)
def test_greetings_ask_for_no_clock_or_dictionary(message: str) -> None:
    assert not asks_for_any([CLOCK, DICTIONARY, WEATHER], [user(message)])


@pytest.mark.parametrize(
    "message",
    [
        "Kids are finally asleep, and it's just me and a mug of tea now.",
        "Hello from the airport lounge! Three hours to kill before boarding.",
        "Three hours to kill before boarding. Any ideas?",
    ],
)
def test_the_clock_s_words_outside_a_question_ask_for_no_clock(message: str) -> None:
    # "awake", "asleep", "lunchtime", "hours" ask for the clock in a question alone
    assert not asks_for_any([CLOCK], [user(message)])


def test_look_at_in_news_of_the_writer_s_own_asks_for_nothing() -> None:
    teacher = "My old maths teacher swore calculators would rot our brains. Look at us now, ha."
    assert tells_only(teacher)
    assert not asks_for_any([CALCULATE], [user(teacher)])
    # "look up", "look for", "look into" still ask
    for asked in ("My phone died. Look up Alice's number.", "I'm looking for Bob's email."):
        assert not tells_only(asked), asked


@pytest.mark.parametrize(
    ("tools", "message", "call"),
    [
        ([CONTACTS], "Delete Bob from my address book.", ("search_contacts", {"name": "Bob"})),
        ([REMINDER], "Cancel my reminder about the dentist.", ("create_reminder", {"text": "x"})),
        (
            [DICTIONARY],
            "Could you translate the word 'night' into German?",
            ("define_word", {"word": "night"}),
        ),
        ([CONTACTS], "Please email Alice the notes.", ("search_contacts", {"name": "Alice"})),
        (
            [CONTACTS],
            "Set Bob as a favourite in my address book.",
            ("search_contacts", {"name": "Bob"}),
        ),
        ([CONTACTS], "Can you turn off the lights, Bob?", ("search_contacts", {"name": "Bob"})),
    ],
)
def test_a_first_call_to_a_tool_that_does_not_do_what_the_message_tells_is_unrelated(
    tools: list[dict[str, Any]], message: str, call: tuple[str, dict[str, Any]]
) -> None:
    calls = [(call[0], args(**call[1]))]
    reason = review_calls(calls, tools, [user(message)], grounding=True)
    assert reason is not None
    assert f"does not ask for what {call[0]} does" in reason
    # a tool that does say the verb, or a message that asks rather than tells
    doing = {
        **tools[0],
        "description": (
            f"{tools[0]['description']} Can delete, cancel, translate, email, set or turn."
        ),
    }
    assert review_calls(calls, [doing], [user(message)], grounding=True) is None
    asked = "Who is Bob in my address book?" if "Bob" in message else "Find Alice's contact."
    # an act the tool says in other words: "Set a reminder" is what "Create a
    # reminder" does
    timed = {
        **REMINDER,
        "parameters": {
            "type": "object",
            "properties": {"text": {"type": "string"}, "time": {"type": "string"}},
        },
    }
    report = [("create_reminder", args(text="submit the report", time="17:00"))]
    setting = [user("Set a reminder to submit the report at 17:00.")]
    assert review_calls(report, [timed], setting, grounding=True) is None
    table = {
        "type": "function",
        "name": "reserve_table",
        "description": "Reserve a table at a restaurant.",
        "parameters": {"type": "object", "properties": {"people": {"type": "integer"}}},
    }
    booked = [user("Book a table for 2 at the restaurant.")]
    assert (
        review_calls([("reserve_table", args(people=2))], [table], booked, grounding=True) is None
    )
    # a noun that is a verb too, as the subject: "phone plan is 45 euros a month"
    plan = "phone plan is 45 euros a month. how many US dollars is that monthly?"
    money = [("convert_currency", args(amount=45, from_currency="EUR", to_currency="USD"))]
    assert review_calls(money, [CURRENCY], [user(plan)], grounding=True) is None
    turned = [("convert_units", args(value=5, from_unit="mi", to_unit="km"))]
    assert review_calls(turned, [UNITS], [user("Turn 5 miles into km.")], grounding=True) is None
    if call[0] == "search_contacts":
        assert review_calls(calls, tools, [user(asked)], grounding=True) is None


def test_a_share_divided_by_a_party_without_its_writer_or_only_in_part_is_corrected() -> None:
    rent = "Three flatmates and I split the 2,150 rent plus a 96 internet bill evenly. My part?"
    reason = _calculated("2150 + 96 / 3", rent, [CALCULATE])
    assert isinstance(reason, Correction)
    assert reason == (
        "In 2150 + 96 / 3, only 96 is divided, but my message shares out the whole sum; and "
        "my message names three flatmates and me: 4 people, not 3. Call calculate again "
        "with (2150 + 96) / 4"
    )
    assert "not 3" in str(_calculated("(2150 + 96) / 3", rent, [CALCULATE]))
    assert "(2150 + 96) / 4" in str(_calculated("2150 + 96 / 4", rent, [CALCULATE]))
    assert _calculated("(2150 + 96) / 4", rent, [CALCULATE]) is None
    total = "Three flatmates and I split a 2,246 bill evenly. What's my part?"
    assert "2246 / 4" in str(_calculated("2246 / 3", total, [CALCULATE]))
    assert _calculated("2246 / 4", total, [CALCULATE]) is None
    pals = "2 friends and me split 90 dollars each way. What do we each pay?"
    assert "3 people, not 2" in str(_calculated("90 / 2", pals, [CALCULATE]))
    # no share asked for, a unit before "and I", or a party that counts its writer
    assert (
        _calculated(
            "2150 + 96 / 3", rent.replace(" evenly", "").replace("split", "pay"), [CALCULATE]
        )
        is None
    )
    months = "Two months and I'll have split 600 evenly between them. How much a month?"
    assert _calculated("600 / 2", months, [CALCULATE]) is None
    walked = "I walked 3 kms and I split 12 by 3. What is it?"
    assert _calculated("12 / 3", walked, [CALCULATE]) is None
    # a share said after the first amount: only what follows it is shared
    tickets = "Tickets are 30 each plus a 12 fee split between my two friends and me. Mine?"
    assert _calculated("30 + 12 / 3", tickets, [CALCULATE]) is None
    # a division by another number than the party's is not a head count
    tip = "Three friends and I split an 80 bill with a 15% tip evenly. Each of us pays?"
    assert _calculated("(80 + 80 * 15 / 100) / 4", tip, [CALCULATE]) is None
    assert _calculated("80 * 15 / 100", tip, [CALCULATE]) is None
    mine = str(_calculated("30 + 12 / 2", tickets, [CALCULATE]))
    assert mine.endswith("3 people, not 2. Call calculate again with 30 + 12 / 3"), mine
    four = "The four of us split the 2,150 rent evenly. What's my part?"
    assert _calculated("2150 / 4", four, [CALCULATE]) is None


def test_a_total_divided_when_no_division_is_asked_for_is_corrected() -> None:
    shares = [
        user("If I bought one Apple share and one Microsoft share now, what would I pay in total?"),
        function_call("s1", "stock_price", args(symbol="AAPL")),
        function_output("s1", "AAPL: 189.5 USD"),
        function_call("s2", "stock_price", args(symbol="MSFT")),
        function_output("s2", "MSFT: 415.2 USD"),
    ]
    reason = _calculated("(189.5 + 415.2) / 2", shares, [CALCULATE, STOCK])
    assert isinstance(reason, Correction)
    assert reason == (
        "My message asks for a total, and (189.5 + 415.2) / 2 divides it, which my message "
        "does not ask for. Call calculate again with the total alone: 189.5 + 415.2"
    )
    assert _calculated("189.5 + 415.2", shares, [CALCULATE, STOCK]) is None
    # a division asked for, or no total asked for
    for message in (
        "What do the two shares cost in total, split between the two of us?",
        "What's the average of the two prices, in total?",
        "What would one Apple share and one Microsoft share cost?",
    ):
        asked = [user(message), *shares[1:]]
        reason = _calculated("(189.5 + 415.2) / 2", asked, [CALCULATE, STOCK])
        assert "asks for a total" not in str(reason), message
    # a product divided works a unit out, not a mean
    hours = "Three talks of 100 minutes: how many hours is that in total?"
    assert "asks for a total" not in str(_calculated("(3 * 100) / 60", hours, [CALCULATE]))
    # a division of one number only is no total divided
    assert "asks for a total" not in str(_calculated("189.5 + 415.2 / 2", shares, [CALCULATE]))


def test_a_weight_in_stone_and_one_in_kilograms_are_not_subtracted_unconverted() -> None:
    goal = "I'm 11 stone at the moment and aiming for 65 kg. How far off am I, in kilograms?"
    reason = _calculated("65 - 11", goal, [CALCULATE, UNITS])
    assert "gives 65 in kg and 11 in st" in str(reason)


@pytest.mark.parametrize(
    ("tools", "message", "call"),
    [
        ([WEATHER], "What language do they speak in Brazil?", ("get_weather", {"city": "Brazil"})),
        ([DICTIONARY, CLOCK], "Say hello in French.", ("define_word", {"word": "hello"})),
    ],
)
def test_a_first_call_for_a_message_that_asks_for_no_tool_is_unasked(
    tools: list[dict[str, Any]], message: str, call: tuple[str, dict[str, Any]]
) -> None:
    # every value was said, so no other rule sees it
    calls = [(call[0], args(**call[1]))]
    reason = review_calls(calls, tools, [user(message)], grounding=True)
    assert reason is not None
    assert f"does not ask for what {call[0]} does" in reason
    assert unasked(calls, tools, [user(message)])
    assert unrelated(calls, tools, [user(message)])
    assert review_calls(calls, tools, [user(message)]) is None, "only with grounding"


@pytest.mark.parametrize(
    "message",
    [
        "What does each word in 'carpe diem' mean?",
        "What's my part in the school play?",
        "Will you come to the party?",
        "How did it work out to be so late? We met at 9 and left at 11.",
    ],
)
def test_an_amount_asked_otherwise_needs_two_numbers_of_the_message_s(message: str) -> None:
    assert not asks_for_any([CALCULATE], [user(message)])


@pytest.mark.parametrize(
    ("message", "stock"),
    [
        ("Three of us rent a cabin for 1,290. What is my share?", False),
        ("Dinner came to 184 for the four of us. What's each person's share?", False),
        ("We should share the bill: 90 between 3", False),
        ("How long to fill the 150 gallon stock tank at 9 litres a minute?", False),
        ("Gotta stock up on rice, 5 kg at 2.40 a kilo, what do I pay?", False),
        ("Is the blue one in stock?", False),
        ("Time to stock up: 5 kg of rice at 2.40 a kilo, what do I pay?", False),
        ("stocking up for winter, 12 tins at 1.15 each. total?", False),
        ("We'll stock up: 3 crates at 14.50. How much?", False),
        ("gotta stock up, 3 packs at 4.20. total?", False),
        ("Is the Apple stock up today?", True),
        ("whoever owns AWS and Prime Video, where's their share price sitting today?", True),
        ("What's a single share of Tesla going for today?", True),
        ("What's the share price of Apple?", True),
    ],
)
def test_a_part_sharing_or_goods_in_stock_ask_for_no_stock_price(message: str, stock: bool) -> None:
    # with no stock tool on offer, a stock price asked for is what no tool gives
    assert untooled_topic([CALCULATE, UNITS], [user(message)]) is stock
    assert topic_tools([STOCK], [user(message)]) == (["stock_price"] if stock else [])


def test_a_call_for_a_kind_of_thing_no_tool_gives_is_unasked_though_a_tool_shares_a_word() -> None:
    # the chat apps' converter says "time" in its description, so the message asks
    # for a tool; the weather gives no time, and no clock is on offer
    units = {**UNITS, "description": "Convert a quantity between units of length or time."}
    asked = [user("What time is it in Berlin?")]
    weather = [("get_weather", args(city="Berlin"))]
    assert asks_for_any([WEATHER, units], asked)
    assert unrelated(weather, [WEATHER, units], asked)
    assert unasked(weather, [WEATHER, units], asked)
    # with a clock on offer, or the weather asked for too, the call may go out
    assert not unrelated(weather, [WEATHER, units, CLOCK], asked)
    both = [user("What's the weather in Berlin, and what time is it there?")]
    assert not unrelated(weather, [WEATHER, units], both)


def test_a_call_with_values_nobody_said_is_not_only_unrelated() -> None:
    # greeted, the 1.5B asks the clock for a city nobody named: ungrounded first
    calls = [("current_time", args(timezone="America/New_York"))]
    greeting = [user("Hi! How are you?")]
    assert unasked(calls, [CLOCK], greeting)
    assert not unrelated(calls, [CLOCK], greeting)


def test_a_follow_up_may_call_again_the_tool_an_earlier_turn_called() -> None:
    call = [("get_weather", args(city="Berlin"))]
    earlier = [
        user("Weather in Paris?"),
        {"type": "function_call", "call_id": "c", "name": "get_weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c", "output": "Paris: 18 C"},
        {"type": "message", "role": "assistant", "content": "It is 18 C in Paris."},
    ]
    follow_up = [*earlier, user("And in Berlin?")]
    assert review_calls(call, [WEATHER], follow_up, grounding=True) is None
    assert review_calls(call, [WEATHER], [user("And in Berlin?")], grounding=True) is not None


def test_a_follow_up_s_value_in_the_model_s_words_is_no_ungrounded_guess() -> None:
    # "And the company behind Windows?" after Amazon's price: `MSFT` is said nowhere,
    # and the message shares no word with the stock tool, but it asks for it again
    amazon = [
        user("What's Amazon's share price?"),
        function_call("s1", "stock_price", args(symbol="AMZN")),
        function_output("s1", "AMZN: 185.7 USD"),
        {"type": "message", "role": "assistant", "content": "Amazon is at 185.7 USD."},
    ]
    call = [("stock_price", args(symbol="MSFT"))]
    follow_up = [*amazon, user("And the company behind Windows?")]
    assert review_calls(call, [STOCK, CALCULATE], follow_up, grounding=True) is None
    # a message that goes on to something else is no follow-up: the guess is sent back
    other = [*amazon, user("Thanks! Who makes Windows, by the way?")]
    reason = review_calls(call, [STOCK, CALCULATE], other, grounding=True)
    assert reason is not None
    assert '"MSFT", which nobody in this conversation said' in reason


def test_another_calculation_after_a_one_step_request_was_answered_is_rejected() -> None:
    # what the 1.5B did: 20% * 150 = 30, then 30 * 2 and 60 / 100, and answered 0.6
    items = _after_calculation("What's 20% of 150?", "20% * 150", "20% * 150 = 30")
    call = [("calculate", args(expression="30 * 2"))]
    reason = review_calls(call, [CALCULATE], items, grounding=True)
    assert reason is not None
    assert reason.startswith("20% * 150 = 30 has already done that step: 30 is the result")
    assert unasked(call, [CALCULATE], items), "the reason asks for the answer in plain text"
    assert review_calls(call, [CALCULATE], items) is None, "only with grounding"


@pytest.mark.parametrize(
    ("message", "untooled"),
    [
        ("What's the stock price of Apple?", True),
        ("Is it raining in London?", True),
        ("How many yen is 100 dollars?", True),
        ("What is 17 plus 25?", False),
        ("How many feet are in 2 meters?", False),
        ("Hi! How are you today?", False),
    ],
)
def test_a_message_asking_for_what_no_offered_tool_gives(message: str, untooled: bool) -> None:
    assert untooled_topic([CALCULATE, UNITS], [user(message)]) == untooled
    # with a tool of each kind on offer, nothing is left untooled
    offered = [CALCULATE, UNITS, WEATHER, STOCK, CURRENCY]
    assert not untooled_topic(offered, [user(message)])


def _answered_turn(
    question: str, name: str, arguments: str, output: str, answer: str
) -> list[dict[str, Any]]:
    """A turn: `question`, one call to `name`, its `output`, then `answer`."""
    return [
        user(question),
        function_call("c1", name, arguments),
        function_output("c1", output),
        assistant(answer),
    ]


def _after_clock(*later: dict[str, Any]) -> list[dict[str, Any]]:
    """A turn that asked the time in Tokyo and was answered by the clock, then `later`."""
    tokyo = args(timezone="Asia/Tokyo")
    turn = _answered_turn("What time is it in Tokyo?", "current_time", tokyo, "19:05", "19:05.")
    return [*turn, *later]


@pytest.mark.parametrize(
    ("message", "tools"),
    [
        # only new values for the same request: the clock again
        ("And in London?", ["current_time"]),
        ("What about Cairo?", ["current_time"]),
        ("How about New York?", ["current_time"]),
        ("and Bob's?", ["current_time"]),
        ("And in Los Angeles, California?", ["current_time"]),
        # a follow-up's opening and one new place in a question of its own
        ("What about for my friend in Buenos Aires?", ["current_time"]),
        ("And my cousin in Honolulu, is it even the same day for her?", ["current_time"]),
        # after thanks or a nod
        ("nice, and over in Vancouver? my cousin lives there", ["current_time"]),
        ("Thanks! And in London?", ["current_time"]),
        ("ok, and Bob's?", ["current_time"]),
        ("And what's the capital of Peru?", []),
        ("Great, and what's the capital of Peru?", []),
        ("Is the Louvre in Paris worth a visit?", []),
        # a question of its own, thanks, more than a few words, or no lead
        ("And you?", []),
        ("And what does that mean?", []),
        ("And then?", []),
        ("Thanks!", []),
        ("And in London, Paris, Rome and Madrid?", []),
        ("London?", []),
        ("What about it?", []),
    ],
)
def test_a_follow_up_that_only_names_new_values_asks_for_the_previous_turn_s_tools(
    message: str, tools: list[str]
) -> None:
    assert followup_tools([CLOCK, UNITS], _after_clock(user(message))) == tools


def test_a_follow_up_asks_again_only_for_offered_tools_the_previous_turn_called() -> None:
    assert followup_tools([UNITS], _after_clock(user("And in London?"))) == []
    # the turn before the previous one called the clock; the previous one called none
    chat = _after_clock(user("Hi!"), assistant("Hello!"), user("And in London?"))
    assert followup_tools([CLOCK], chat) == []
    assert followup_tools([CLOCK], [user("And in London?")]) == [], "no previous turn"


def test_a_decimal_point_ends_no_sentence() -> None:
    # a follow-up that names a new amount with a decimal point: "And 2.5?"
    money = args(amount=60, from_currency="EUR", to_currency="USD")
    turn = _answered_turn("Convert 60 EUR to USD.", "convert_currency", money, "65.22", "65.22")
    for message, tools in (("And 2.5?", ["convert_currency"]), ("And 2.5. Then?", [])):
        assert followup_tools([CURRENCY], [*turn, user(message)]) == tools
    # a word of the clock's in the question that a decimal point comes before
    lima = "Will my aunt in Lima still be awake when I land at 10.30?"
    assert topic_tools([CLOCK], [user(lima)]) == ["current_time"]
    assert topic_tools([CLOCK], [user("Flew 10.5 hours. Still awake. Good night")]) == []
    walk = "jacket or no jacket for the 2.5 km walk in Rome"
    assert topic_tools([WEATHER], [user(walk)]) == ["get_weather"]


def test_a_calculation_with_a_converted_amount_is_a_next_step_not_one_applied_again() -> None:
    # the conversion's output ends "= 63.29 USD": not a calculator's result, so adding
    # 20 to it is the request's next step (read as a result, with the 20 of the failed
    # first call counted as used, it was sent to the text pass, which made up 73.29)
    items = [
        user("Convert 50 GBP to USD and then add 20 to it."),
        function_call("c1", "calculate", args(expression="50 GBP + 20 USD")),
        function_output("c1", "Error: tool 'calculate' raised ValueError: different units"),
        function_call(
            "c2", "convert_currency", args(amount=50, from_currency="GBP", to_currency="USD")
        ),
        function_output("c2", "50 GBP = 63.29 USD"),
    ]
    call = [("calculate", args(expression="63.29 + 20"))]
    assert review_calls(call, [CALCULATE, CURRENCY], items, grounding=True) is None


def test_a_failed_call_repeated_is_sent_back_for_corrected_arguments() -> None:
    # what the 1.5B did: `stock_price("FB")` failed, and it called it again with "FB"
    items = [
        user("What's Facebook's stock price?"),
        function_call("c1", "stock_price", args(symbol="FB")),
        function_output("c1", "Error: tool 'stock_price' raised ValueError: unknown ticker 'FB'"),
    ]
    reason = review_calls([("stock_price", args(symbol="FB"))], [STOCK], items)
    assert reason is not None
    assert reason.startswith("Your call to stock_price with these arguments failed: unknown")
    assert "Call stock_price with corrected arguments" in reason
    assert "Error:" not in reason, "the tool's own words, not the runtime's wrapping"
    # a corrected call goes out
    assert review_calls([("stock_price", args(symbol="META"))], [STOCK], items) is None


@pytest.mark.parametrize(
    ("message", "tools", "first", "later"),
    [
        # what the 1.5B called first: `50 + 5`, then converted 55 F
        (
            "Convert 50 F to Celsius, then add 5 to it.",
            [UNITS, CALCULATE],
            "convert_units",
            "calculate",
        ),
        (
            "Convert 72 F to Celsius and then add 10 to it.",
            [UNITS, CALCULATE],
            "convert_units",
            "calculate",
        ),
        # "convert" is said to both converters; the amounts are money
        (
            "Convert 60 EUR to USD, subtract 10, then halve it.",
            [UNITS, CALCULATE, CURRENCY],
            "convert_currency",
            "calculate",
        ),
        (
            "Add 12 and 30, then convert that many miles to km.",
            [UNITS, CALCULATE],
            "calculate",
            "convert_units",
        ),
    ],
)
def test_a_first_call_for_a_later_step_of_the_request_is_sent_back(
    message: str, tools: list[dict[str, Any]], first: str, later: str
) -> None:
    items = [user(message)]
    reason = review_calls(
        [(later, args(expression="50 + 5", value=42))], tools, items, grounding=True
    )
    assert reason is not None
    head = message.split(",")[0].split(" and then")[0]
    assert reason.startswith(
        f'The first step of my request is "{head}", and {later} is for a later'
    )
    assert f"Call {first} for the first step now" in reason
    assert review_calls([(later, args(expression="50 + 5"))], tools, items) is None, "grounding"


@pytest.mark.parametrize(
    ("message", "tools", "name"),
    [
        # the first step's own tool
        ("Convert 50 F to Celsius, then add 5 to it.", [UNITS, CALCULATE], "convert_units"),
        # one step only, or a first step that asks for no tool ("Hi")
        ("Convert 50 F to Celsius.", [UNITS, CALCULATE], "convert_units"),
        ("Hi, what is 50 + 5?", [UNITS, CALCULATE], "calculate"),
        # a later step asks for the first step's tool again ("convert" asks for both
        # converters, so the first step asks for another one too)
        (
            "Convert 1000 JPY to EUR, then convert that to GBP.",
            [UNITS, CURRENCY],
            "convert_currency",
        ),
        # a call no step asks for is some other rule's business
        ("Convert 50 F to Celsius, then tell me a joke.", [UNITS, CALCULATE], "calculate"),
        # a first step that asks for the called tool too
        (
            "What's the temperature in Oslo in Fahrenheit, then add 3.",
            [WEATHER, UNITS, CALCULATE],
            "get_weather",
        ),
    ],
)
def test_a_call_for_the_first_step_or_an_undivided_request_is_not_out_of_order(
    message: str, tools: list[dict[str, Any]], name: str
) -> None:
    call = [(name, args(value=50, from_unit="F", to_unit="C", expression="50 + 5", city="Oslo"))]
    reason = review_calls(call, tools, [user(message)], grounding=True)
    assert reason is None or not reason.startswith("The first step")


def test_a_later_step_after_the_first_came_back_is_not_out_of_order() -> None:
    items = [
        user("Convert 50 F to Celsius, then add 5 to it."),
        function_call("c1", "convert_units", args(value=50, from_unit="F", to_unit="C")),
        function_output("c1", "50 °F = 10 °C"),
    ]
    call = [("calculate", args(expression="10 + 5"))]
    assert review_calls(call, [UNITS, CALCULATE], items, grounding=True) is None


def _after_conversion(message: str) -> list[dict[str, Any]]:
    return [
        user(message),
        function_call(
            "c1", "convert_currency", args(amount=60, from_currency="EUR", to_currency="USD")
        ),
        function_output("c1", "60 EUR = 65.22 USD"),
    ]


def test_a_last_step_bound_to_one_number_instead_of_the_steps_before_is_sent_back() -> None:
    # what the 1.5B called: 65.22 - 10 / 2 (60.22), for (65.22 - 10) / 2
    items = _after_conversion("Convert 60 EUR to USD, subtract 10, then divide the result by 2.")
    reason = review_calls(
        [("calculate", args(expression="65.22 - 10 / 2"))],
        [CALCULATE, CURRENCY],
        items,
        grounding=True,
    )
    assert reason is not None
    assert reason.startswith("In 65.22 - 10 / 2, the last step applies only to the number before")
    assert reason.endswith("in parentheses: (65.22 - 10) / 2")
    for written in ("(65.22 - 10) / 2", "(65.22-10)/2"):
        call = [("calculate", args(expression=written))]
        assert review_calls(call, [CALCULATE, CURRENCY], items, grounding=True) is None


@pytest.mark.parametrize(
    ("message", "expression"),
    [
        # one step: the precedence is the request's own
        ("Calculate 45 times 12 minus 30.", "45 * 12 - 30"),
        ("What is 2 + 3 * 4?", "2 + 3 * 4"),
        # the last step's number is the one it binds
        ("Take 100, then add 3 times 4.", "100 + 3 * 4"),
        # the last step says another number, or none
        ("Divide 10 by 2, add it to 65.22, then tell me.", "65.22 + 10 / 2"),
        ("What is 5 plus a dozen times 2?", "5 + 12 * 2"),
        ("Convert 60 EUR to USD, then add 10 divided by 2.", "65.22 + 10 / 2"),
    ],
)
def test_an_expression_whose_precedence_the_request_gives_is_not_misbound(
    message: str, expression: str
) -> None:
    items = _after_conversion(message)
    call = [("calculate", args(expression=expression))]
    reason = review_calls(call, [CALCULATE, CURRENCY], items, grounding=True)
    assert reason is None or not reason.startswith("In ")


def test_the_same_conversion_again_on_a_later_result_is_sent_back() -> None:
    # what the 1.5B did: converted 250 GBP to EUR, subtracted 100, then converted the
    # 191.14 "GBP" to EUR again and answered 222.59
    items = [
        user("Convert 250 GBP to EUR, then subtract 100 from it."),
        function_call(
            "c1", "convert_currency", args(amount=250, from_currency="GBP", to_currency="EUR")
        ),
        function_output("c1", "250 GBP = 291.14 EUR"),
        function_call("c2", "calculate", args(expression="291.14 - 100")),
        function_output("c2", "291.14 - 100 = 191.14"),
    ]
    again = [("convert_currency", args(amount=191.14, from_currency="GBP", to_currency="EUR"))]
    reason = review_calls(again, [CALCULATE, CURRENCY], items, grounding=True)
    assert reason is not None
    assert reason.startswith("You already called convert_currency with {")
    assert reason.endswith("with the last result: 291.14 - 100 = 191.14")
    # another conversion, or the same one on an amount the message says, goes out
    onward = [("convert_currency", args(amount=191.14, from_currency="EUR", to_currency="JPY"))]
    assert review_calls(onward, [CALCULATE, CURRENCY], items, grounding=True) is None
    said = [("convert_currency", args(amount=100, from_currency="GBP", to_currency="EUR"))]
    assert review_calls(said, [CALCULATE, CURRENCY], items, grounding=True) is None


def test_a_reply_that_also_calls_for_the_first_step_is_not_out_of_order() -> None:
    items = [user("Convert 50 F to Celsius, then add 5 to it.")]
    both = [
        ("calculate", args(expression="50 + 5")),
        ("convert_units", args(value=50, from_unit="F", to_unit="C")),
    ]
    reason = review_calls(both, [UNITS, CALCULATE], items, grounding=True)
    assert reason is None or not reason.startswith("The first step")
    assert review_calls(both[:1], [UNITS, CALCULATE], items, grounding=True) is not None


@pytest.mark.parametrize(
    ("text", "unsaid"),
    [
        ("The current time in London is 14:30.", ["14:30"]),
        ("It is 15:35 in Mumbai.", []),
        ("It is 3:35 PM in Mumbai.", []),  # the 12-hour clock
        ("It is 03:35 in Mumbai.", []),
        ("It is 15:40, or 10:05 in London.", ["15:40", "10:05"]),
        ("The ratio is 3.5:1 and the score 2:1.", []),  # not times
    ],
)
def test_clock_times_a_reply_states_are_checked_against_the_conversation(
    text: str, unsaid: list[str]
) -> None:
    conversation = "Thursday 2026-12-03 15:35:00 Asia/Kolkata (UTC+0530)"
    assert unsaid_times(text, conversation) == unsaid


def _paris_chain() -> list[dict[str, Any]]:
    # what the 1.5B called for tune chain-02, the junk conversion included
    return [
        user("What is 12.5% of 640? Then tell me the time in Paris."),
        function_call("c1", "calculate", args(expression="12.5% * 640")),
        function_output("c1", "12.5% * 640 = 80"),
        function_call("c2", "convert_units", args(value=80, from_unit="%", to_unit="seconds")),
        function_output("c2", "Error: tool 'convert_units' raised ValueError: unknown unit '%'"),
        function_call("c3", "current_time", args(timezone="Europe/Paris")),
        function_output("c3", "Thursday 2026-12-03 11:05:00 Europe/Paris (UTC+0100)"),
    ]


def test_the_results_an_answer_reports_are_those_no_successful_later_call_went_on_with() -> None:
    results = final_results(_paris_chain())
    assert results == [
        "12.5% * 640 = 80",
        "Thursday 2026-12-03 11:05:00 Europe/Paris (UTC+0100)",
    ], "the failed conversion did not go on with 80"
    assert left_out("The time in Paris is 11:05.", results) == ["12.5% * 640 = 80"]
    assert left_out("12.5% of 640 is 80, and it is 11:05 in Paris.", results) == []
    # a chain's step that the next call took is not reported on its own
    chain = [
        user("What's the temperature in Cairo in Fahrenheit?"),
        function_call("c1", "get_weather", args(city="Cairo")),
        function_output("c1", '{"city": "Cairo", "temp_c": 34, "sky": "sunny"}'),
        function_call("c2", "convert_units", args(value=34, from_unit="C", to_unit="F")),
        function_output("c2", "34 °C = 93.2 °F"),
    ]
    assert final_results(chain) == ["34 °C = 93.2 °F"]
    # a JSON result shows in its words too; a rounded figure counts
    weather = '{"city": "Madrid", "temp_c": 25, "sky": "sunny"}'
    assert left_out("It is sunny in Madrid.", [weather]) == []
    assert left_out("It is 93 °F.", ["34 °C = 93.2 °F"]) == []
    assert left_out("It is warm.", [weather]) == [weather]


def test_asked_what_the_weather_is_an_answer_shows_a_json_result_s_figures() -> None:
    berlin = '{"city": "Berlin", "temp_c": 9, "sky": "overcast"}'
    asked = "Tell me the weather in Berlin and the current time in Berlin."
    assert left_out("The weather in Berlin is overcast.", [berlin], asked) == [berlin]
    assert left_out("It is 9 °C and overcast in Berlin.", [berlin], asked) == []
    # asked whether, its words will do; with no request, too; a plain result's words
    # still count
    whether = "Is it cold in Berlin right now?"
    assert left_out("Yes, it is cold and overcast in Berlin.", [berlin], whether) == []
    assert left_out("It is overcast.", [berlin]) == []
    tesla = "TSLA: 250.1 USD"
    assert left_out("TSLA is up.", [tesla], "How is Tesla's stock doing?") == []
    # a JSON result with no figure shows in its words
    sky = '{"sky": "overcast"}'
    assert left_out("It is nice out.", [sky], asked) == [sky]
    assert left_out("It is overcast.", [sky], asked) == []


def test_an_answer_shows_a_result_by_its_figures_or_its_own_words_not_the_request_s() -> None:
    cairo = '{"city": "Cairo", "temp_c": 34, "sky": "sunny"}'
    asked = "Is it sunnier in Cairo?"
    # the city's name is the request's: repeating it shows nothing of the result
    assert left_out("Yes, it is sunnier in Cairo.", [cairo], asked) == [cairo]
    assert left_out("Yes: 34 °C in Cairo.", [cairo], asked) == []
    assert left_out("Yes, it is Sunny in Cairo.", [cairo], asked) == [], "any case"
    assert left_out("It is sunny.", ['{"sky": "Sunny"}']) == [], "any case in the result too"
    assert left_out("It's lovely in Cairo.", [cairo]) == [], "no request: its words count"
    # a plain result's words count too: a ticker, a weekday
    tesla = "TSLA: 250.1 USD"
    assert left_out("Tesla is doing better.", [tesla], "Is Tesla doing better?") == [tesla]
    assert left_out("TSLA is at 250.1 USD.", [tesla], "Is Tesla doing better?") == []
    clock = "Saturday 2026-12-05 13:52 Asia/Tokyo"
    assert left_out("It's Saturday in Tokyo.", [clock], "What day is it in Tokyo?") == []
    # a result with nothing to look for but the request's words counts as shown
    assert left_out("Done.", ["Tokyo"], "Time in Tokyo?") == []
    assert left_out("Done.", ["ok"]) == [], "no number and no word of four letters"


def _pounds_in_euros(output: str, answer: str) -> list[dict[str, Any]]:
    """ "Convert 20 GBP to EUR.", its call, `output` and `answer`, then "And to yen?"."""
    return [
        user("Convert 20 GBP to EUR."),
        function_call(
            "c1", "convert_currency", args(amount=20, from_currency="GBP", to_currency="EUR")
        ),
        function_output("c1", output),
        assistant(answer),
        user("And to yen?"),
    ]


def test_a_number_paired_with_an_earlier_call_s_target_is_sent_back_unless_swapped() -> None:
    items = _pounds_in_euros("20 GBP = 23.29 EUR", "20 GBP is 23.29 EUR.")
    mispaired = [("convert_currency", args(amount=20, from_currency="EUR", to_currency="JPY"))]
    reason = review_calls(mispaired, [CURRENCY], items, grounding=True)
    assert reason is not None
    assert reason.startswith("In your call to convert_currency, 20 is in EUR, but 20 was in GBP")
    assert "My latest message is: And to yen?" in reason
    right = [("convert_currency", args(amount=20, from_currency="GBP", to_currency="JPY"))]
    assert review_calls(right, [CURRENCY], items, grounding=True) is None
    # the other way round, and another amount, are the user's to ask for
    swapped = [("convert_currency", args(amount=20, from_currency="EUR", to_currency="GBP"))]
    assert (
        review_calls(swapped, [CURRENCY], [*items[:-1], user("And the other way?")], grounding=True)
        is None
    )
    other = [("convert_currency", args(amount=23.29, from_currency="EUR", to_currency="JPY"))]
    assert review_calls(other, [CURRENCY], items, grounding=True) is None


def test_a_failed_earlier_call_pairs_no_number() -> None:
    error = "Error: tool 'convert_currency' raised ValueError: no rate today"
    items = _pounds_in_euros(error, "I could not find that out.")
    call = [("convert_currency", args(amount=20, from_currency="EUR", to_currency="JPY"))]
    reason = review_calls(call, [CURRENCY], items, grounding=True)
    assert reason is None or "was in GBP" not in reason


def _after_weather(*later: dict[str, Any]) -> list[dict[str, Any]]:
    """A turn that asked the weather in Rome and was answered by the tool, then `later`."""
    output = '{"city": "Rome", "temp_c": 20}'
    turn = _answered_turn(
        "What's the weather in Rome?", "get_weather", args(city="Rome"), output, "20°C."
    )
    return [*turn, *later]


@pytest.mark.parametrize(
    ("message", "tools"),
    [
        # a new name, in a question that asks for the tool or goes on from the request
        ("How many hours ahead of London is that?", ["current_time"]),
        ("What's the time difference with Dubai?", ["current_time"]),
        ("Could you look up Berlin too?", ["current_time"]),
        ("Is Sydney ahead or behind?", ["current_time"]),
        ("What's the time in Dubai?", ["current_time"]),
        ("Is it still morning in Los Angeles?", ["current_time"]),
        # no new name, no question or request, or nothing that goes on from it
        ("How many hours ahead is that?", []),
        ("What time is it in Tokyo now?", []),
        ("Thanks! I'm flying to Rome tomorrow.", []),
        ("Oh, Berlin was lovely too.", []),
        ("Who is the Pope these days?", []),
        ("Is London nice?", []),
    ],
)
def test_a_question_naming_a_new_place_for_the_previous_request_asks_for_its_tools(
    message: str, tools: list[str]
) -> None:
    assert followup_tools([CLOCK, WEATHER], _after_clock(user(message))) == tools


def test_a_new_name_goes_on_from_a_request_whose_calls_took_a_name() -> None:
    assert followup_tools([WEATHER], _after_weather(user("Is it warmer in Madrid?"))) == [
        "get_weather"
    ]
    # "France" is new, but the question asks for no weather and goes on from nothing
    assert followup_tools([WEATHER], _after_weather(user("What's the capital of France?"))) == []
    # a calculation's expression names nothing: a capital word after it is no new value
    calculation = _answered_turn(
        "What's 45 times 3?", "calculate", args(expression="45 * 3"), "135", "135."
    )
    chat = [*calculation, user("Is that more than the population of Paris?")]
    assert followup_tools([CALCULATE, WEATHER], chat) == []


@pytest.mark.parametrize(
    ("message", "only_tells"),
    [
        ("I ran 5 km this morning, feeling great!", True),
        ("My son turns 7 tomorrow!", True),
        ("We spent a week in Tokyo last summer.", True),
        ("I'm baking bread for 12 people.", True),
        ("Just finished a 10 km run in 48 minutes.", True),
        ("Hey! Just got one of those old calculator watches, feeling very retro.", True),
        ("Hi there, I ran 5 km today.", True),
        ("Hi! I need 5 km in miles.", False),
        ("Just convert 10 km to miles.", False),
        ("I need 5 km in miles.", False),
        ("I meant 15 km.", False),
        ("I'm in Paris, what time is it?", False),
        ("Convert 5 km to miles.", False),
        # news of someone or something else, by a verb of a statement
        ("Tokyo was lovely.", True),
        ("Alice finally answered my email after two weeks, what a relief.", True),
        ("Bob from accounting brought donuts for everyone today, best Thursday ever.", True),
        ("Got sunburnt after one afternoon on the beach in Lisbon, classic me.", True),
        ("Thanks, that was helpful!", True),
        ("Hi! It's so cold here I can barely feel my fingers.", True),
        # an opening that asks or bids, or no verb of a statement: a request
        ("Now double that.", False),
        ("Get me the NVIDIA share price.", False),
        ("How many words are in this sentence: the cat sat on the mat", False),
        ("Put a reminder in for 14:15 to move the car.", False),
        ("So, compare that with Rome.", False),
        ("Now take 10% off what it was.", False),
        ("Weather in Paris.", False),
        ("150 lb in kg.", False),
        ("Alice's phone number.", False),
        ("Paris was lovely yesterday, how is it today", False),
        ("Paris was lovely yesterday, how lovely it all was!", True),
        ("The meeting got moved. What time is it in Tokyo now", False),
    ],
)
def test_a_message_that_only_tells_about_its_writer_asks_for_no_tool(
    message: str, only_tells: bool
) -> None:
    assert tells_only(message) is only_tells
    if only_tells:
        assert not asks_for_any([UNITS, CALCULATE, CLOCK, WEATHER], [user(message)])


def test_a_call_for_news_about_the_writer_is_unasked() -> None:
    # told "I ran 5 km this morning", the 1.5B called the calculator for 5 * 1000
    call = [("calculate", args(expression="5 * 1000"))]
    news = [user("I ran 5 km this morning, feeling great!")]
    assert unasked(call, [CALCULATE, UNITS], news)
    assert review_calls(call, [CALCULATE, UNITS], news, grounding=True) is not None
    asked = [user("I ran 5 km this morning. How many metres is that?")]
    assert review_calls(call, [CALCULATE, UNITS], asked, grounding=True) is None


def test_a_conversion_to_the_unit_it_converts_from_is_sent_back() -> None:
    items = _after_clock(user("How many hours ahead of London is that?"))
    same = [("convert_units", args(value=19, from_unit="hours", to_unit="hour"))]
    reason = review_calls(same, [CLOCK, UNITS], items, grounding=True)
    assert reason is not None
    assert reason.startswith("Your call to convert_units converts hours to hour, which changes")
    assert reason.endswith("otherwise answer in plain sentences"), "no result for it yet"
    # after a result, the reason leads to the answer with it
    chain = [
        user("Convert 3 miles to km, then convert that to meters."),
        function_call("m1", "convert_units", args(value=3, from_unit="mi", to_unit="km")),
        function_output("m1", "3 mi = 4.82803 km"),
        function_call("m2", "convert_units", args(value=4.82803, from_unit="km", to_unit="m")),
        function_output("m2", "4.82803 km = 4828.03 m"),
    ]
    again = [("convert_units", args(value=4828.03, from_unit="m", to_unit="m"))]
    reason = review_calls(again, [UNITS], chain, grounding=True)
    assert reason is not None
    assert reason.endswith("with the last result: 4.82803 km = 4828.03 m")
    other = [("convert_units", args(value=19, from_unit="hours", to_unit="minutes"))]
    assert review_calls(other, [CLOCK, UNITS], items, grounding=True) is None
    money = [("convert_currency", args(amount=19, from_currency="usd", to_currency="USD"))]
    assert review_calls(money, [CURRENCY], items, grounding=True) is not None


def test_an_answer_that_leaves_out_a_kind_of_thing_the_message_names_needs_its_call() -> None:
    asked = user("What's the weather in Madrid, and what time is it there?")
    weather = [
        asked,
        function_call("w1", "get_weather", args(city="Madrid")),
        function_output("w1", '{"city": "Madrid", "temp_c": 25}'),
    ]
    assert uncalled_tools([WEATHER, CLOCK], weather) == ["current_time"]
    assert uncalled_tools([WEATHER], weather) == [], "no clock on offer"
    assert uncalled_tools([WEATHER, CLOCK], [asked]) == [], "no call made yet: the first reply"
    both = [
        *weather,
        function_call("t1", "current_time", args(timezone="Europe/Madrid")),
        function_output("t1", "Thursday 11:05 Europe/Madrid"),
    ]
    assert uncalled_tools([WEATHER, CLOCK], both) == []
    # what to wear names the weather: "do I need my coat?" after the time alone
    coat = [
        user("Just landed! What time is it in Rome now, and do I need my coat?"),
        function_call("t1", "current_time", args(timezone="Europe/Rome")),
        function_output("t1", "Thursday 11:05 Europe/Rome"),
    ]
    assert uncalled_tools([WEATHER, CLOCK], coat) == ["get_weather"]
    # an amount asked for in a currency, beside the weather
    beach = [
        user(
            "Beach day in Lisbon, is it warm enough? Also how many euros will 300 dollars get me?"
        ),
        function_call("w1", "get_weather", args(city="Lisbon")),
        function_output("w1", '{"city": "Lisbon", "temp_c": 21}'),
    ]
    assert uncalled_tools([WEATHER, CURRENCY], beach) == ["convert_currency"]
    # pounds may weigh, and a share of dollars asks for no conversion
    for message in (
        "Is it warm in Lisbon, and what is my 70 kg in pounds?",
        "Is it warm in Lisbon? I have 300 dollars, what's 15% of it?",
    ):
        items = [user(message), *beach[1:]]
        assert uncalled_tools([WEATHER, CURRENCY, UNITS], items) == [], message
    # a call the message does not ask for, made instead: asking again would repeat it
    astray = [*weather, function_call("u1", "convert_units", args(value=25, from_unit="C"))]
    assert uncalled_tools([WEATHER, CLOCK, UNITS], astray) == []
    # "degrees" asks for no weather, "hours" for no clock: only the named kinds count
    converted = [
        user("Convert 30 degrees Celsius to Fahrenheit, and 2 hours to minutes."),
        function_call("u1", "convert_units", args(value=30, from_unit="C", to_unit="F")),
        function_output("u1", "30 C = 86 F"),
    ]
    assert uncalled_tools([UNITS, WEATHER, CLOCK], converted) == []


def test_a_temperature_asked_in_another_scale_than_its_result_s_needs_the_converter() -> None:
    asked = user("What's the temperature in Oslo in Fahrenheit?")
    weather = [
        asked,
        function_call("w1", "get_weather", args(city="Oslo")),
        function_output("w1", '{"city": "Oslo", "temp_c": -3, "sky": "snow"}'),
    ]
    assert unconverted_scale([WEATHER, UNITS], weather) == ("convert_units", "fahrenheit", True)
    assert unconverted_scale([WEATHER], weather) is None, "no converter on offer"
    assert unconverted_scale([WEATHER, UNITS], [asked]) is None, "no result yet"
    converted = [
        *weather,
        function_call("u1", "convert_units", args(value=-3, from_unit="C", to_unit="F")),
        function_output("u1", "-3 °C = 26.6 °F"),
    ]
    assert unconverted_scale([WEATHER, UNITS], converted) is None
    # a converter already called for the message is not asked for again (a failed
    # conversion would otherwise repeat until the turns run out)
    failed = [*weather, function_call("u1", "convert_units", args(value=-3))]
    failed.append(function_output("u1", "Error: unknown unit"))
    assert unconverted_scale([WEATHER, UNITS], failed) is None
    # the asked scale is the result's, or the message asks for none, or no result
    # shows a scale at all
    celsius = [user("What's the temperature in Oslo in °C?"), *weather[1:]]
    assert unconverted_scale([WEATHER, UNITS], celsius) is None
    plain = [user("What's the temperature in Oslo?"), *weather[1:]]
    assert unconverted_scale([WEATHER, UNITS], plain) is None
    unmarked = [*weather[:2], function_output("w1", '{"city": "Oslo", "temp": -3}')]
    assert unconverted_scale([WEATHER, UNITS], unmarked) is None
    in_f = [user("How warm is Oslo in °F?"), *weather[1:]]
    assert unconverted_scale([WEATHER, UNITS], in_f) == ("convert_units", "fahrenheit", True)


@pytest.mark.parametrize(
    ("message", "scale"),
    [
        ("thermostat in my flat is set to 68 F. is it warmer in here or in Oslo?", "fahrenheit"),
        ("It's 70°F in my office. Colder in Oslo?", "fahrenheit"),
        ("My greenhouse is at 65 degrees fahrenheit; is Oslo colder?", "fahrenheit"),
        ("Our pool is 80 Fahrenheit. What about Oslo?", "fahrenheit"),
    ],
)
def test_a_temperature_given_in_another_scale_than_its_result_s_needs_the_converter(
    message: str, scale: str
) -> None:
    weather = [
        user(message),
        function_call("w1", "get_weather", args(city="Oslo")),
        function_output("w1", '{"city": "Oslo", "temp_c": -3, "sky": "snow"}'),
    ]
    assert unconverted_scale([WEATHER, UNITS], weather) == ("convert_units", scale, False)


@pytest.mark.parametrize(
    ("message", "scale"),
    [
        ("The oven dial says 350 farenheit, what is that in celcius?", "celsius"),
        ("What is 20 centigrade in fahrenheight?", "fahrenheit"),
    ],
)
def test_a_scale_misspelt_or_by_its_older_name_is_still_a_scale(message: str, scale: str) -> None:
    assert asks_for_any([UNITS], [user(message)]), "a conversion asked for"
    assert _asked_unit(message) == scale[0]
    result = '{"temp_c": 20}' if scale == "fahrenheit" else '{"temp_f": 350}'
    items = [
        user(message),
        function_call("w1", "get_weather", args(city="Oslo")),
        function_output("w1", result),
    ]
    assert unconverted_scale([WEATHER, UNITS], items) == ("convert_units", scale, True)


@pytest.mark.parametrize(
    ("message", "result"),
    [
        # cents, in small letters
        ("the coffee in Oslo is 50c, is it cold there?", '{"city": "Oslo", "temp_f": 27}'),
        # the result's own scale
        ("It's 20 C in my office. Colder in Oslo?", '{"city": "Oslo", "temp_c": -3}'),
        # no scale
        ("I paid 68 for the flight to Oslo. is it cold?", '{"city": "Oslo", "temp_c": -3}'),
    ],
)
def test_a_number_in_no_other_scale_needs_no_converter(message: str, result: str) -> None:
    weather = [
        user(message),
        function_call("w1", "get_weather", args(city="Oslo")),
        function_output("w1", result),
    ]
    assert unconverted_scale([WEATHER, UNITS], weather) is None


def _two_clocks(message: str) -> list[dict[str, Any]]:
    return [
        user(message),
        function_call("t1", "current_time", args(timezone="America/Los_Angeles")),
        function_output("t1", "Thursday 2026-12-03 02:05:00 America/Los_Angeles (UTC-0800)"),
        function_call("t2", "current_time", args(timezone="Asia/Tokyo")),
        function_output("t2", "Thursday 2026-12-03 19:05:00 Asia/Tokyo (UTC+0900)"),
    ]


def test_a_figure_asked_of_the_results_needs_the_calculator_after_the_lookups() -> None:
    apart = _two_clocks("What time is it in LA and in Tokyo, and how many hours apart are they?")
    tools = [CLOCK, UNITS, CALCULATE]
    assert underived(tools, apart) == "calculate"
    assert underived([CLOCK, UNITS], apart) is None, "no calculator on offer"
    assert underived(tools, apart[:1]) is None, "no call made yet"
    # the other ways of asking for a figure worked out of results
    for message in (
        "What's the time gap between LA and Tokyo?",
        "How many hours is Tokyo ahead of LA, in total?",
        "My bag weighs 52 lb. How many kilos over 23 kg is that?",
        "What's the average of their hours?",
        "Is Tokyo's hour more than double LA's?",
        "Take LA's hour and add 3.",
        # words between "how many" and "left"
        "My flight out of Tokyo is at midnight. How many minutes have I got left to kill?",
    ):
        assert underived(tools, [user(message), *apart[1:]]) == "calculate", message
    # a share of a converted amount
    fare = [
        user("The taxi was 90 dollars for three of us. How much is that per person in euros?"),
        function_call("c1", "convert_currency", args(amount=90, from_currency="USD")),
        function_output("c1", "90 USD = 82.57 EUR"),
    ]
    assert underived([CURRENCY, CALCULATE], fare) == "calculate"
    for share in ("What's each person's share in euros?", "Split that between the three of us"):
        assert underived([CURRENCY, CALCULATE], [user(share), *fare[1:]]) == "calculate", share
    # hours behind or ahead; a price by the unit for an amount converted
    behind = "I'm in Berlin, she is in Chicago. How many hours behind me is she?"
    assert underived(tools, [user(behind), *apart[1:]]) == "calculate"
    tank = [
        user("My tank takes 14 gallons and fuel here is 1.85 a litre. What does filling it cost?"),
        function_call("u1", "convert_units", args(value=14, from_unit="gal", to_unit="l")),
        function_output("u1", "14 gal = 52.9958 l"),
    ]
    assert underived([UNITS, CALCULATE], tank) == "calculate"
    per = "Fuel is $3 per gallon here. What does filling it cost?"
    assert underived([UNITS, CALCULATE], [user(per), *tank[1:]]) == "calculate"
    # a unit alone, with no price or rate by it
    plain = "My tank takes 14 gallons. How many litres is that?"
    assert underived([UNITS, CALCULATE], [user(plain), *tank[1:]]) is None
    # how many, of two numbers of the message's own; or how many short
    for message in (
        "How many 330 ml cans would it take to fill my 14 gallon cooler jug?",
        "Recipe wants 14 gallons and I've got 50 litres. Is that enough?",
        "I've got 50 litres. Is that enough for 14 gallons? how many litres short am I?",
    ):
        worked = underived([UNITS, CALCULATE], [user(message), *tank[1:]])
        assert worked == ("calculate" if "how" in message.lower() else None), message
    short = "The jug takes that much and all I've got is 50 litres. How many litres short am I?"
    assert underived([UNITS, CALCULATE], [user(short), *tank[1:]]) == "calculate"
    # a clock time is no number of a calculation
    at = "Remind me at 16:40: how many litres is 14 gallons?"
    assert underived([UNITS, CALCULATE], [user(at), *tank[1:]]) is None
    # a lookup asked for alone, or news of the writer's own
    for message in ("What time is it in LA and in Tokyo?", "I was in Tokyo, a difference!"):
        assert underived(tools, [user(message), *apart[1:]]) is None, message
    # the calculator called already, or no result with a number (failures)
    done = [
        *apart,
        function_call("c1", "calculate", args(expression="19 - 2")),
        function_output("c1", "19 - 2 = 17"),
    ]
    assert underived(tools, done) is None
    failed = [
        apart[0],
        function_call("t1", "current_time", args(timezone="LA")),
        function_output("t1", "Error: tool 'current_time' raised ValueError: unknown zone 9"),
    ]
    assert underived(tools, failed) is None
    # a result with no number ("the difference between affect and effect" after
    # their definitions), beside one with a number or alone
    wordless = [*apart[:4], function_output("t2", "sunny, no figures here")]
    assert underived(tools, wordless) is None
    assert underived(tools, wordless[:3]) == "calculate"


def _after_dollars_in_euros(message: str) -> list[dict[str, Any]]:
    money = args(amount=50, from_currency="USD", to_currency="EUR")
    turn = _answered_turn(
        "Convert 50 USD to EUR.",
        "convert_currency",
        money,
        "50 USD = 46.00 EUR",
        "50 USD is 46.00 EUR.",
    )
    return [*turn, user(message)]


def test_a_calculation_in_another_unit_than_the_one_asked_is_sent_back_to_convert() -> None:
    milk = (
        "Recipe wants 2.5 cups of milk and all ive got is a 500 ml carton. Is that "
        "enough? how many ml short or over am I?"
    )
    cups = [
        user(milk),
        function_call("u1", "convert_units", args(value=500, from_unit="ml", to_unit="cup")),
        function_output("u1", "500 ml = 2.11338 cup"),
    ]
    tools = [CALCULATE, UNITS]
    short = [("calculate", args(expression="2.5 - 2.11338"))]
    reason = review_calls(short, tools, cups, grounding=True)
    assert isinstance(reason, Correction)
    assert reason == (
        "My message asks how many ml, and your call to calculate uses 2.5 cup. Call "
        "convert_units first to convert 2.5 cup to ml."
    )
    # in the unit asked, the call goes out
    ml = [
        user(milk),
        function_call("u1", "convert_units", args(value=2.5, from_unit="cup", to_unit="ml")),
        function_output("u1", "2.5 cup = 591.471 ml"),
    ]
    assert (
        review_calls([("calculate", args(expression="591.471 - 500"))], tools, ml, grounding=True)
        is None
    )
    # no converter offered, a unit of another dimension, or no unit asked: no reason
    assert review_calls(short, [CALCULATE], cups, grounding=True) is None
    walked = [
        user("I walked 3 miles with 2 kg on my back. How many more miles to 10 km?"),
        function_call("u1", "convert_units", args(value=10, from_unit="km", to_unit="mi")),
        function_output("u1", "10 km = 6.21371 mi"),
    ]
    assert (
        review_calls(
            [("calculate", args(expression="6.21371 - 3 * 2"))], tools, walked, grounding=True
        )
        is None
    )
    # "how many more", "how much less": the unit after them
    more = [
        {
            **cups[0],
            "content": [
                {
                    "type": "input_text",
                    "text": milk.replace("ml short or over am I", "more ml do I need"),
                }
            ],
        },
        *cups[1:],
    ]
    assert "asks how many ml" in str(review_calls(short, tools, more, grounding=True))
    cans = [
        user("How many 330 ml cans fill my 2 gallon jug?"),
        function_call("u1", "convert_units", args(value=2, from_unit="gal", to_unit="ml")),
        function_output("u1", "2 gal = 7570.82 ml"),
    ]
    assert (
        review_calls([("calculate", args(expression="7570.82 / 330"))], tools, cans, grounding=True)
        is None
    )


@pytest.mark.parametrize(
    ("message", "number"),
    [
        ("I'm putting away 85 a week for a bike that costs two thousand three hundred.", 2300),
        ("my aunt gave me fifty quid for my birthday", 50),
        ("a hundred and twenty people came", 120),
        ("three hundred and forty-five pages", 345),
        ("twenty-five degrees", 25),
        ("twelve hundred miles", 1200),
        ("a thousand thanks", 1000),
        ("five million people", 5_000_000),
        ("the car was 5 grand", 5000),
        ("a 2.5k bonus", 2500),
        ("1.5 million views", 1_500_000),
    ],
)
def test_numbers_said_in_words_or_scaled_are_said(message: str, number: float) -> None:
    assert number in said_numbers(message)
    assert unsaid_numbers(args(value=number), message) == []
    assert unsaid_numbers(args(value=number), "nothing of the kind") == [str(number)]


def test_number_words_in_a_row_are_separate_numbers() -> None:
    # "one two three" is three numbers, not six or 123; "twenty one" is one
    assert said_numbers("one two three") == [1.0, 2.0, 3.0]
    assert 21.0 in said_numbers("twenty one")
    assert said_numbers("nineteen twenty") == [19.0, 20.0]
    assert 32.0 not in said_numbers("back in twenty twelve"), "a year, said as two numbers"
    assert said_numbers("thirty, forty people at most") == [30.0, 40.0]
    assert said_numbers("room for fifty, a hundred at a push") == [50.0, 100.0]
    assert said_numbers("I have two kids and a dog") == [2.0]
    # a scale word alone is no number
    assert said_numbers("the thousand island dressing") == []
    assert said_numbers("the hundred years war") == []


@pytest.mark.parametrize(
    ("message", "measure"),
    [
        ("I'm 5 foot 9 and my daughter is 142 cm now.", (5, "ft", 9, "in", 69, 5.75)),
        ("he is 6ft 2in tall", (6, "ft", 2, "in", 74, 6.1667)),
        ("she's 5'4\" in heels", (5, "ft", 4, "in", 64, 5.3333)),
        ("I weigh 11 stone 4 now", (11, "st", 4, "lb", 158, 11.2857)),
        ("the baby was 7 lb 8 oz!", (7, "lb", 8, "oz", 120, 7.5)),
        ("I am 6 foot 2.", (6, "ft", 2, "in", 74, 6.1667)),
        ("I'm 5 foot 9 tall", (5, "ft", 9, "in", 69, 5.75)),
        ("he's 6 foot 1 now", (6, "ft", 1, "in", 73, 6.0833)),
    ],
)
def test_a_measure_in_two_units_says_its_totals(
    message: str, measure: tuple[float, str, float, str, float, float]
) -> None:
    (found,) = compound_measures(message)
    major, major_unit, minor, minor_unit, in_minor, in_major = measure
    assert found[:4] == (major, major_unit, minor, minor_unit)
    assert (found.in_minor, found.in_major) == (in_minor, in_major)
    assert in_minor in said_numbers(message)
    assert in_major in said_numbers(message)


@pytest.mark.parametrize(
    "message",
    [
        "a 10 foot 2 by 4",  # a plank, not a height
        "5 feet 3 people wide",  # a number of something else
        "the 5 ft 14 in shelf",  # 14 inches is more than a foot
        "12 lb 20 oz",  # 20 ounces is more than a pound
        "at 5 ft. 9 of us went",  # a sentence between
        "it is 2.5 ft 6.",  # a decimal's last digit is no number of feet
        "we hired 5 ft 3 interns",  # a word that opens like a unit
    ],
)
def test_a_number_after_a_measure_is_not_always_its_minor_part(message: str) -> None:
    assert compound_measures(message) == []


def test_a_conversion_of_a_measures_major_part_alone_is_sent_back_with_the_whole() -> None:
    taller = "I'm 5 foot 9 and my daughter is 142 cm now. how much taller than her am I, in cm?"
    part = [("convert_units", args(value=5, from_unit="ft", to_unit="cm"))]
    reason = review_calls(part, [CALCULATE, UNITS], [user(taller)], grounding=True)
    assert isinstance(reason, Correction)
    assert reason == (
        "My message gives 5 ft 9 in: that is 69 in, and your call to convert_units converts "
        "the 5 ft alone. Call convert_units to convert 69 in to cm."
    )
    # the whole, in either unit, goes out: it was said, as a total
    for value, source in ((69, "in"), (69, "inches"), (5.75, "ft")):
        whole = [("convert_units", args(value=value, from_unit=source, to_unit="cm"))]
        assert review_calls(whole, [CALCULATE, UNITS], [user(taller)], grounding=True) is None
    # so does the major part into the minor unit: a step toward the whole
    for target in ("in", "inches"):
        step = [("convert_units", args(value=5, from_unit="ft", to_unit=target))]
        assert review_calls(step, [CALCULATE, UNITS], [user(taller)], grounding=True) is None
    # and 5 ft where the message gives 5 ft alone
    alone = "I'm 5 foot and my daughter is 142 cm now. how much taller than her am I, in cm?"
    assert review_calls(part, [CALCULATE, UNITS], [user(alone)], grounding=True) is None
    # stone and pounds, the short names a call writes
    weight = "I weigh 11 stone 4. What is that in kg?"
    stone = [("convert_units", args(value=11, from_unit="st", to_unit="kg"))]
    reason = review_calls(stone, [UNITS], [user(weight)], grounding=True)
    assert reason is not None
    assert reason.endswith("Call convert_units to convert 158 lb to kg."), reason
    # a calculator is no converter, nor is a tool that records a height; and a
    # conversion with no number to read is left to the other rules
    diary = {
        "type": "function",
        "name": "log_height",
        "description": "Write a height into the family diary.",
        "parameters": {"type": "object", "properties": {}},
    }
    for call, tools in (
        (("calculate", args(expression="5 * 30.48")), [CALCULATE, UNITS]),
        (("log_height", args(value=5, from_unit="ft", to_unit="cm")), [diary, UNITS]),
        (("convert_units", args(from_unit="ft", to_unit="cm")), [UNITS]),
    ):
        reason = review_calls([call], tools, [user(taller)], grounding=True)
        assert reason is None or "converts the 5 ft alone" not in reason


def test_amounts_in_two_currencies_in_one_calculation_are_sent_back_to_convert() -> None:
    pay = "I'm paid 2,300 USD a month and my rent is 1,400 euros. How many dollars are left?"
    tools = [CALCULATE, CURRENCY]
    for expression in ("2300 - 1400", "1400 - 2300", "1400 / 2300", "2300 + 1400"):
        reason = _calculated(expression, pay, tools)
        assert isinstance(reason, Correction), expression
        assert reason.endswith("Call convert_currency first to convert 1400 EUR to USD."), reason
    # into the currency asked: euros, this time
    euros = pay.replace("How many dollars", "How many euros")
    reason = _calculated("2300 - 1400", euros, tools)
    assert reason is not None
    assert reason.endswith("Call convert_currency first to convert 2300 USD to EUR."), reason
    # the currency asked in at the message's end
    difference = "Pay is 2,300 USD and rent 1,400 euros: what's the difference in dollars?"
    reason = _calculated("2300 - 1400", difference, tools)
    assert reason is not None
    assert reason.endswith("convert 1400 EUR to USD."), reason
    # a number given in two currencies is in the first
    twice = "Dinner was $45, the taxi 45 euros and the tip 12 euros. How many dollars in all?"
    reason = _calculated("45 + 12", twice, tools)
    assert reason is not None
    assert reason.endswith("convert 12 EUR to USD."), reason
    # symbols, and a name before or after
    coffee = "Lunch was $45 and the coffee €12. How much in dollars was that?"
    reason = _calculated("45 + 12", coffee, tools)
    assert reason is not None
    assert reason.endswith("convert 12 EUR to USD."), reason
    # one currency, a number in none, no currency tool, or a conversion made: not this
    # reason (another rule may have one)
    converted = [
        user(pay),
        function_call("c1", "convert_currency", args(amount=1400, from_currency="EUR")),
        function_output("c1", "1400 EUR = 1523.2 USD"),
    ]
    for expression, message, offered in (
        ("2300 - 1400", pay.replace("1,400 euros", "1,400 USD"), tools),
        ("2300 - 12", pay.replace("1,400 euros", "12 months"), tools),
        ("2300 - 1400", pay, [CALCULATE]),
        ("2300 - 1400", converted, tools),
        # "pounds" may be a weight: only "£", "quid" or "GBP" are money
        ("52 + 30", "The bag is 52 pounds and the fee 30 euros. What's 52 + 30?", tools),
    ):
        reason = _calculated(expression, message, offered)
        assert reason is None or "but my message gives" not in reason, (expression, message)
    # a converter's own call is no calculation, nor is a note of the sum
    money = [("convert_currency", args(amount=1400, from_currency="EUR", to_currency="USD"))]
    assert review_calls(money, tools, [user(pay)], grounding=True) is None
    ledger = {
        "type": "function",
        "name": "log_expense",
        "description": "Write a line into the household ledger.",
        "parameters": {"type": "object", "properties": {"line": {"type": "string"}}},
    }
    line = args(line="2300 - 1400")
    assert _mixed_currencies("log_expense", line, ledger, [ledger, CURRENCY], [user(pay)]) is None
    sums = args(expression="2300 - 1400")
    assert _mixed_currencies("calculate", sums, CALCULATE, tools, [user(pay)]) is not None


def test_a_conversion_out_of_the_unit_asked_is_sent_back_the_other_way() -> None:
    stone = "I'm 11 stone at the moment and aiming for 65 kg. How far off am I, in kilograms?"
    away = [("convert_units", args(value=65, from_unit="kg", to_unit="st"))]
    reason = review_calls(away, [CALCULATE, UNITS], [user(stone)], grounding=True)
    assert isinstance(reason, Correction)
    assert reason == (
        "My message asks for kg, and 65 is in kg already. Call convert_units to convert "
        "11 st to kg instead."
    )
    # two units in one calculation: the one not asked for is converted
    for expression in ("65 - 11", "11 - 65", "65 * 0.5"):
        calc = [("calculate", args(expression=expression))]
        reason = review_calls(calc, [CALCULATE, UNITS], [user(stone)], grounding=True)
        assert reason is not None
        assert reason.endswith("Call convert_units first to convert 11 st to kg."), reason
    # the right way, or a message that asks in no unit, or has no other unit
    right = [("convert_units", args(value=11, from_unit="stone", to_unit="kg"))]
    assert review_calls(right, [CALCULATE, UNITS], [user(stone)], grounding=True) is None
    unasked = stone.replace(", in kilograms?", "?")
    assert review_calls(away, [CALCULATE, UNITS], [user(unasked)], grounding=True) is None
    alone = "I weigh 65 kg. What is that in kilograms?"
    assert review_calls(away, [CALCULATE, UNITS], [user(alone)], grounding=True) is None
    # a call that does not take the message's kilograms out of kilograms
    for value, source in ((65, "lb"), (11, "kg")):
        other = [("convert_units", args(value=value, from_unit=source, to_unit="st"))]
        assert review_calls(other, [UNITS], [user(stone)], grounding=True) is None
    # the other number is one of the dimension asked for, not a height
    tall = f"I'm 180 cm tall. {stone}"
    reason = review_calls(away, [UNITS], [user(tall)], grounding=True)
    assert reason is not None
    assert "convert 11 st to kg" in reason
    # the unit asked in is the last words' ("in kilograms?"), not any "in kg"
    assert _asked_unit("Weighed the bags in kg, lol. What a day") is None
    assert _asked_unit("How heavy is it, in pounds?") == "lb"


@pytest.mark.parametrize(
    ("message", "written", "meant"),
    [
        ("at quarter past five remind me the bins go out tonight", "19:30", "17:15"),
        ("can you remind me to call her back at half three this afternoon", "15:00", "15:30"),
        ("Remind me at quarter to nine tomorrow morning to stretch", "9:45", "08:45"),
        ("Remind me at half past 11 about lunch", "11:00", "11:30"),
        # no word of the time of day: hours before 7 are the afternoon's
        ("remind me at seven o'clock to water the plants", "19:30", "07:00"),
        ("remind me at 4 o'clock to water the plants", "19:30", "16:00"),
        ("Remind me at half five in the morning to leave", "06:00", "05:30"),
        ("Remind me at half five am to leave", "06:00", "05:30"),
        ("I am out till then, remind me at half five to leave", "06:00", "17:30"),
        ("Remind me at quarter past 14 to call", "14:00", "14:15"),
        ("Remind me at quarter to one", "13:00", "12:45"),
        # minutes in words, or in digits before "minutes"
        ("set a reminder for twenty to nine tomorrow morning: water it", "22:00", "08:40"),
        ("remind me at ten past six tonight to call", "18:00", "18:10"),
        ("remind me at twenty-five past four in the afternoon", "16:00", "16:25"),
        ("remind me at twenty five to ten in the morning", "10:00", "09:35"),
        ("remind me at 20 minutes past 8 in the morning", "08:00", "08:20"),
        ("remind me at five to nine in the morning", "09:00", "08:55"),
    ],
)
def test_a_time_said_in_words_is_the_one_a_call_takes(
    message: str, written: str, meant: str
) -> None:
    reminder = {
        **REMINDER,
        "parameters": {
            "type": "object",
            "properties": {"text": {"type": "string"}, "time": {"type": "string"}},
        },
    }
    call = [("create_reminder", args(text="x", time=written))]
    reason = review_calls(call, [reminder], [user(message)], grounding=True)
    assert isinstance(reason, Correction)
    assert reason.endswith(f"Call create_reminder again with {meant}."), reason
    # that time, on either clock, goes out
    for right in (meant, f"{(int(meant[:2]) + 12) % 24:02d}{meant[2:]}"):
        ok = [("create_reminder", args(text="x", time=right))]
        assert review_calls(ok, [reminder], [user(message)], grounding=True) is None


def test_a_time_in_digits_or_no_time_in_words_is_not_judged() -> None:
    reminder = {
        **REMINDER,
        "parameters": {
            "type": "object",
            "properties": {"text": {"type": "string"}, "time": {"type": "string"}},
        },
    }
    call = [("create_reminder", args(text="x", time="19:30"))]
    for message in ("Remind me at 19:30 to call Bob", "Remind me to buy 5 apples later"):
        assert review_calls(call, [reminder], [user(message)], grounding=True) is None
    assert _spoken_times("Cut it in half an hour, then 5 more") == []
    assert _spoken_times("a quarter past 30 laps") == [], "no hour of the day"
    assert _spoken_times("the shop is open 9 to 5") == [], "minutes in digits need 'minutes'"


def test_a_calculation_that_takes_the_amount_converted_for_the_same_message_is_sent_back() -> None:
    hotel = (
        "The hotel in Montreal is 138 CAD a night. What's that in euros, and what do "
        "4 nights plus 13% tax come to in euros?"
    )
    money = args(amount=138, from_currency="CAD", to_currency="EUR")
    converted = [
        user(hotel),
        function_call("c1", "convert_currency", money),
        function_output("c1", "138 CAD = 93.35 EUR"),
    ]
    tools = [CALCULATE, CURRENCY]
    taxed = [("calculate", args(expression="138 * 4 * 1.13"))]
    reason = review_calls(taxed, tools, converted, grounding=True)
    assert isinstance(reason, Correction)
    assert reason == (
        "Your call to calculate uses 138, the amount you converted (138 CAD = 93.35 EUR), "
        "and my request goes on with what it came to. Call calculate again with 93.35 in "
        "place of 138."
    )
    # with what it came to, the call goes out
    for expression in ("93.35 * 4 * 1.13", "93.35 / 138"):
        right = [("calculate", args(expression=expression))]
        assert review_calls(right, tools, converted, grounding=True) is None
    # a message that names the amount's unit again may want a figure in it too
    again = [{**converted[0], "content": [{"type": "input_text", "text": f"{hotel} And in CAD?"}]}]
    assert review_calls(taxed, tools, [*again, *converted[1:]], grounding=True) is None
    # a failed conversion converted nothing
    failed = [*converted[:2], function_output("c1", "Error: no rate for 138 CAD in 2026")]
    assert review_calls(taxed, tools, failed, grounding=True) is None
    # a unit conversion's amount counts too; an earlier turn's is `_took_the_input`'s
    miles = [
        user("Convert 5 miles to km, then add 3 to the result."),
        function_call("u1", "convert_units", args(value=5, from_unit="mi", to_unit="km")),
        function_output("u1", "5 mi = 8.04672 km"),
    ]
    plus = [("calculate", args(expression="5 + 3"))]
    reason = review_calls(plus, [CALCULATE, UNITS], miles, grounding=True)
    assert reason is not None
    assert "with 8.04672 in place of 5" in reason


def test_a_calculation_on_that_result_which_takes_its_input_is_sent_back() -> None:
    items = _after_dollars_in_euros("Now multiply that by 4.")
    reason = review_calls(
        [("calculate", args(expression="50 * 4"))], [CALCULATE, CURRENCY], items, grounding=True
    )
    assert isinstance(reason, Correction)
    assert reason == (
        "My message works on the last result, 46.00 (50 USD = 46.00 EUR), and your call to "
        "calculate uses 50, the number that result came from. Call calculate again with "
        "46.00 in place of 50."
    )
    # a small number of its own is not the result (1 is not 92, whatever 100 % is)
    hundred = args(amount=100, from_currency="USD", to_currency="EUR")
    turn = _answered_turn(
        "Convert 100 USD.", "convert_currency", hundred, "100 USD = 92.00 EUR", "92 EUR."
    )
    off = [("calculate", args(expression="100 * (1 - 0.25)"))]
    later = [*turn, user("Now take 25% off that.")]
    assert review_calls(off, [CALCULATE, CURRENCY], later, grounding=True) is not None
    # the result is the last one with a figure, not a later call's line (a clock's)
    clock = [function_call("t1", "current_time", args(timezone="Europe/Paris"))]
    clock.append(function_output("t1", "Thursday 2026-12-03 11:05 Europe/Paris"))
    timed = [*items[:3], *clock, *items[3:]]
    times = [("calculate", args(expression="50 * 4"))]
    assert review_calls(times, [CALCULATE, CURRENCY], timed, grounding=True) == reason
    for right in ("46 * 4", "46.00 * 4"):
        assert (
            review_calls(
                [("calculate", args(expression=right))],
                [CALCULATE, CURRENCY],
                items,
                grounding=True,
            )
            is None
        )
    # with the result in it, or for a message that does not work on "that", the
    # earlier numbers may be used
    both = _after_dollars_in_euros("Add that to what I started with.")
    plus = [("calculate", args(expression="46 + 50"))]
    assert review_calls(plus, [CALCULATE, CURRENCY], both, grounding=True) is None
    anew = _after_dollars_in_euros("Double the amount I converted.")
    double = [("calculate", args(expression="50 * 2"))]
    assert review_calls(double, [CALCULATE, CURRENCY], anew, grounding=True) is None
    # a conversion of the input is the same quantity as one of the result
    units = _answered_turn(
        "Convert 5 km to miles.",
        "convert_units",
        args(value=5, from_unit="km", to_unit="mi"),
        "5 km = 3.10686 mi",
        "3.1 miles.",
    )
    feet = [*units, user("Now convert that to feet.")]
    assert (
        review_calls(
            [("convert_units", args(value=5, from_unit="km", to_unit="ft"))],
            [UNITS],
            feet,
            grounding=True,
        )
        is None
    )


def test_a_failed_call_uses_up_none_of_the_message_s_numbers() -> None:
    message = "Add 7 to 5, then multiply by 3."
    failed = "Error: tool 'calculate' raised ValueError: invalid syntax"
    items = [
        *_after_calculation(message, "(7 + 5) x 3", failed),
        function_call("c2", "calculate", args(expression="7 + 5")),
        function_output("c2", "7 + 5 = 12"),
    ]
    step = [("calculate", args(expression="12 * 3"))]
    assert review_calls(step, [CALCULATE], items, grounding=True) is None
    # had the first call worked, 3 would have been used already
    done = [*_after_calculation(message, "(7 + 5) * 3", "(7 + 5) * 3 = 36"), *items[3:]]
    assert review_calls(step, [CALCULATE], done, grounding=True) is not None


FORECAST = {
    **WEATHER,
    "name": "forecast",
    "description": "The current weather for a city and its forecast.",
}
LOCAL_TIME = {**WEATHER, "name": "get_time", "description": "Get the current local time in a city."}


@pytest.mark.parametrize(
    ("tool", "message", "other_day"),
    [
        (WEATHER, "What's the weather forecast for Berlin tomorrow?", True),
        (WEATHER, "Will it rain in Paris next weekend?", True),
        (WEATHER, "How cold was it in Oslo yesterday?", True),
        (WEATHER, "Was it sunny in Berlin back in 2010?", True),
        (WEATHER, "How warm was Berlin two years ago?", True),
        (
            {**STOCK, "description": "Current price of a share."},
            "How did Apple's price do last week?",
            True,
        ),
        (WEATHER, "What's the weather in Berlin?", False),
        (WEATHER, "Is it raining in London right now?", False),
        # a tool that gives another day, or a clock (a time on another day is worked out)
        (FORECAST, "What's the weather forecast for Berlin tomorrow?", False),
        (LOCAL_TIME, "What's the time in Tokyo tomorrow when it's noon here?", False),
        # a tool that is not of the present
        (UNITS, "I'll run 5 miles a day next week: how many km is that?", False),
    ],
)
def test_a_call_to_a_tool_of_the_present_for_another_day_is_not_asked_for(
    tool: dict[str, Any], message: str, other_day: bool
) -> None:
    arguments = json.dumps({"city": "Berlin"})
    items = [user(message)]
    reason = review_calls([(str(tool["name"]), arguments)], [tool], items, grounding=True)
    assert (reason is not None) is other_day
    assert unrelated([(str(tool["name"]), arguments)], [tool], items) is other_day
    # and a figure in the first reply is one no offered tool gives
    assert untooled_topic([tool], items) is other_day


def test_another_day_is_not_asked_for_even_after_the_tool_answered_today() -> None:
    items = [
        *_answered_turn(
            "What's the weather in Berlin?",
            "get_weather",
            '{"city": "Berlin"}',
            '{"city": "Berlin", "temp_c": 9}',
            "It's 9°C in Berlin.",
        ),
        user("And tomorrow?"),
    ]
    assert unrelated([("get_weather", '{"city": "Berlin"}')], [WEATHER], items)
    assert followup_tools([WEATHER], items) == [], "not held to a call"
    again = [*items[:-1], user("And in Paris?")]
    assert followup_tools([WEATHER], again) == ["get_weather"]


def _called_for(message: str, calls: list[tuple[str, str]]) -> list[dict[str, Any]]:
    items = [user(message)]
    for index, (name, arguments) in enumerate(calls):
        items += [function_call(f"c{index}", name, arguments), function_output(f"c{index}", "x")]
    return items


TOKYO = ("get_weather", '{"city": "Tokyo"}')


@pytest.mark.parametrize(
    ("tools", "message", "calls", "uncalled"),
    [
        (
            [WEATHER],
            "Which is warmer right now, Tokyo or Sydney?",
            [TOKYO],
            ("get_weather", ["Sydney"]),
        ),
        ([WEATHER], "Is Tokyo warmer than Sydney?", [TOKYO], ("get_weather", ["Sydney"])),
        ([WEATHER], "Is it colder in Tokyo than in Sydney?", [TOKYO], ("get_weather", ["Sydney"])),
        (
            [WEATHER],
            "Compare the weather in Tokyo, London and Rome.",
            [TOKYO],
            ("get_weather", ["London", "Rome"]),
        ),
        (
            [CLOCK],
            "What time is it in New York and Los Angeles?",
            [("current_time", '{"timezone": "America/New_York"}')],
            ("current_time", ["Los Angeles"]),
        ),
        (
            [WEATHER],
            "Tokyo or Sydney: which is warmer?",
            [TOKYO, ("get_weather", '{"city": "Sydney"}')],
            None,
        ),
        # a name that is in no list, or a list none of whose names was called
        ([WEATHER], "Hi, I'm Bob. What's the weather in Tokyo?", [TOKYO], None),
        ([WEATHER], "What's the weather in Tokyo, Japan?", [TOKYO], None),
        ([WEATHER], "Alice and Bob asked: what's the weather in Tokyo?", [TOKYO], None),
        # a list's name called with another tool only
        (
            [WEATHER, CLOCK],
            "Which is warmer, Tokyo or Sydney?",
            [("current_time", '{"timezone": "Asia/Tokyo"}')],
            ("current_time", ["Sydney"]),
        ),
        ([WEATHER], "Which is warmer, Tokyo or Sydney?", [], None),
        # names in other words: as many calls as names, or fewer
        (
            [CLOCK],
            "What's the time gap between London and Mumbai?",
            [("current_time", '{"timezone": "Asia/Kolkata"}')],
            ("current_time", ["London", "Mumbai"]),
        ),
        (
            [CLOCK],
            "What's the time gap between London and Mumbai?",
            [
                ("current_time", '{"timezone": "Asia/Kolkata"}'),
                ("current_time", '{"timezone": "Europe/London"}'),
            ],
            None,
        ),
        (
            [STOCK],
            "Is Apple doing better than Microsoft?",
            [("stock_price", '{"symbol": "AAPL"}')],
            ("stock_price", ["Apple", "Microsoft"]),
        ),
        # more words before "than", and "double" after it
        (
            [STOCK],
            "Is Meta's share price more than double Google's right now?",
            [("stock_price", '{"symbol": "GOOGL"}')],
            ("stock_price", ["Meta", "Google"]),
        ),
        # places apart, and a figure worked out of both ("from" a place too)
        (
            [CLOCK],
            "Working from Dubai, with a standup in New York. How many hours behind me are they?",
            [("current_time", '{"timezone": "America/New_York"}')],
            ("current_time", ["Dubai"]),
        ),
        (
            [CLOCK],
            "I'm in Sydney and my brother's in Los Angeles. How many hours ahead of him am I?",
            [("current_time", '{"timezone": "Australia/Sydney"}')],
            ("current_time", ["Los Angeles"]),
        ),
        (
            [CLOCK],
            "I'm in Sydney and my brother's in Los Angeles. What time is it for him?",
            [("current_time", '{"timezone": "America/Los_Angeles"}')],
            None,
        ),
        # a call that takes no name (a calculation) is not one for the list
        (
            [CALCULATE],
            "Add 5 and 3, then compare Paris and London.",
            [("calculate", '{"expression": "5 + 3"}')],
            None,
        ),
        # a call to a function no tool has is not one to make again
        (
            [WEATHER],
            "Which is warmer, Tokyo or Sydney?",
            [("weather_now", '{"city": "Tokyo"}')],
            None,
        ),
    ],
)
def test_a_list_s_names_no_call_has_had(
    tools: list[dict[str, Any]],
    message: str,
    calls: list[tuple[str, str]],
    uncalled: tuple[str, list[str]] | None,
) -> None:
    assert uncalled_names(tools, _called_for(message, calls)) == uncalled


@pytest.mark.parametrize(
    ("items", "tools"),
    [
        ([user("Is it raining in London?")], ["get_weather"]),
        ([user("Is the Apple stock up today?")], ["stock_price"]),
        # a name that opens in lower case
        ([user("what's one share in the company that makes the iPhone worth?")], ["stock_price"]),
        ([user("Is it past noon in Tokyo?")], ["current_time"]),
        # nothing named, another day for a tool of the present, the writer's own news
        ([user("Do you like rainy days?")], []),
        ([user("Good morning! How's the weather where you are?")], []),
        # a currency converter gives amounts and rates, not what a country uses
        ([user("How many yen is 100 Swiss francs?")], ["convert_currency"]),
        ([user("What currency do they use in Peru?")], []),
        ([user("What's the weather forecast for Berlin tomorrow?")], []),
        ([user("I love the weather in Lisbon.")], []),
        # another tool asked for too, or the tool already called: `followup_tools`
        ([user("What is 15 times 12? Then convert that many dollars to pounds.")], []),
        (
            [
                *_answered_turn(
                    "What's the weather in Oslo?",
                    "get_weather",
                    '{"city": "Oslo"}',
                    '{"temp_c": -3}',
                    "It's -3°C in Oslo.",
                ),
                user("Thanks! Was it sunny in Oslo, then?"),
            ],
            [],
        ),
        # a call made for the message already: an answer turn
        (_called_for("Is it raining in London?", [("get_weather", '{"city": "London"}')]), []),
    ],
)
def test_a_lookup_a_tool_gives_for_something_named_wants_its_call(
    items: list[dict[str, Any]], tools: list[str]
) -> None:
    offered = [WEATHER, CLOCK, STOCK, UNITS, CALCULATE, CURRENCY]
    assert topic_tools(offered, items) == tools


@pytest.mark.parametrize(
    ("message", "due"),
    [
        ("ping me at 16:40 to leave for school pickup pls", True),
        ("Nudge me at 9 tomorrow about the dentist", True),
        ("don't let me forget the bins at 7pm", True),
        ("Remind me to call mum at 18:00", True),
        ("Set a reminder for 08:30: standup", True),
        # a definition, a memory, or a message with nothing to set it for: no call is
        # due (a word of the tool's, "remind", may still allow one: `_asks_for`)
        ("remind me what ubiquitous means again", False),
        ("That reminds me of my school days", False),
        ("I keep forgetting to water my plants", False),
    ],
)
def test_a_reminder_asked_in_other_words_wants_the_reminder_tool(message: str, due: bool) -> None:
    alarm = {**REMINDER, "name": "set_alarm", "description": "Set an alarm for a time."}
    for tool in (REMINDER, alarm):
        assert asks_for_any([tool], [user(message)]) or not due
        assert topic_tools([tool, CALCULATE], [user(message)]) == ([tool["name"]] if due else [])


def test_a_lookup_for_a_message_that_names_nothing_to_look_up_is_a_guess() -> None:
    # greeted, the 1.5B looked up London's weather
    arguments = '{"city": "London"}'
    hoped = "Hi there, hope it's sunny wherever you are!"
    assert ungrounded_values(arguments, WEATHER, hoped, hoped) == ["London"]
    assert unasked([("get_weather", arguments)], [WEATHER], [user(hoped)])
    asked = "Is it sunny in London?"
    assert ungrounded_values(arguments, WEATHER, asked, asked) == []
    # a clock may give a zone nobody said for a message that names none (the chat's
    # instructions may hold the user's)
    plain = "What time is it?"
    assert ungrounded_values('{"timezone": "Europe/Paris"}', CLOCK, plain, plain) == []
