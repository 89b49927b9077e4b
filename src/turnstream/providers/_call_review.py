"""Checks a small model's function call before it is emitted (pure, no I/O).

The 1.5B model copies example values out of tool descriptions (`calculate` called
with the docstring's `(17 * 23) + sqrt(2) / 4` when asked for 17 plus 25), and in a
chain it often repeats the call it has just been answered instead of making the
next one. Both are visible before the call leaves the provider: `review_calls`
returns the reason to reject such a call, which the provider hands back to the
model once so that it re-samples with the reason in front of it.

- A *copied example value* is an argument value (a string, or a number) that occurs
  in the tool's description texts (its description, its parameters' descriptions
  and `examples`) but nowhere in the conversation (instructions, messages, earlier
  calls and their outputs), and that the conversation does not name in other words
  either: `Asia/Tokyo` asked for "Tokyo", or `AAPL` for "Apple", is the value the
  model should derive, which happens to be the description's example (`_named`).
  Values are compared case-insensitively as whole tokens.
- A *repeated call* has the same name and arguments as a call already in the
  conversation that has its output.
- A call to a *name no tool has*: the model named a function it imagined (asked
  for a story, it calls `write_long_story`; greeted, it calls `greeting`). Told
  which functions exist, it mostly answers in text.
- A *number nobody said* (`grounding=True`): a precise number from the model's
  memory (a conversion factor in a calculator expression) where a chain's first
  tool would give it (`unsaid_numbers`).
- An *ungrounded call* (`grounding=True`): a string argument that nobody in the
  conversation said in any form (greeted, the 1.5B calls the clock for
  `America/New_York`), to a tool that the user's latest message does not ask for
  either (`ungrounded_values`). Both halves are needed: a model rightly maps
  "Mumbai" to `Asia/Kolkata` or "Apple" to `AAPL`, and then the user did ask for
  the clock or the stock price.
- An *unrelated call* (`grounding=True`): a first call for a message that asks for
  none of the tools (in words, or in the words of a common kind of tool: `_KINDS`,
  `_TOPICS`), to a tool no earlier turn called, even with every value said: "Say
  hello in French." -> `define_word({"word": "hello"})`.

The provider reviews the re-sample too; one rejected again ends in plain text,
unless its reason is a `Correction` (a mistake in the arguments the model can mend:
a failed call repeated, a later step taken first, a number paired with the wrong
unit), which gets up to two more re-samples.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

__all__ = [
    "Correction",
    "asked_with",
    "conversation_text",
    "copied_example_values",
    "description_text",
    "error_text",
    "figure_tools",
    "final_results",
    "followup_tools",
    "latest_outputs",
    "latest_request",
    "left_out",
    "may_reject",
    "only_failures",
    "other_day_tools",
    "review_calls",
    "said_numbers",
    "tells_only",
    "topic_tools",
    "unasked",
    "uncalled_names",
    "uncalled_tools",
    "unconverted_scale",
    "underived",
    "ungrounded_values",
    "unrelated",
    "unsaid_figures",
    "unsaid_numbers",
    "unsaid_times",
    "untooled_topic",
]


class Correction(str):
    """A review's reason that asks for a call with corrected arguments (or for the
    call the request's first step needs): a re-sample rejected with one gets one more
    try before the text pass, since the mistake it names is one the model can mend."""

    __slots__ = ()


def _leaves(value: Any) -> Iterator[Any]:
    if isinstance(value, Mapping):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    elif value is not None and not isinstance(value, bool):
        yield value


def _spelled(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return " ".join(str(value).lower().split())


def _schema_texts(schema: Any) -> Iterator[str]:
    """Description and example texts of a JSON schema, at any depth (not enums)."""
    if isinstance(schema, Mapping):
        for key, value in schema.items():
            if key == "description" and isinstance(value, str):
                yield value
            elif key in ("examples", "example"):
                yield json.dumps(value, ensure_ascii=False)
                yield from (str(leaf) for leaf in _leaves(value))
            elif key != "enum":
                yield from _schema_texts(value)
    elif isinstance(schema, list):
        for item in schema:
            yield from _schema_texts(item)


def description_text(tool: Mapping[str, Any]) -> str:
    """Everything a tool definition tells the model in prose: where examples live."""
    parts = [str(tool.get("description") or "")]
    parts += _schema_texts(tool.get("parameters") or {})
    return " ".join(" ".join(parts).lower().split())


def _tool_text(tool: Mapping[str, Any]) -> str:
    """A tool's name in words, then its `description_text`: what it says it does."""
    return f"{str(tool.get('name') or '').replace('_', ' ')} {description_text(tool)}"


def _occurs(value: str, text: str) -> bool:
    # whole tokens only: "4" is not in "45", "paris" is in "paris, france"
    return re.search(r"(?<![\w.])" + re.escape(value) + r"(?![\w])", text) is not None


def copied_example_values(arguments: str, tool: Mapping[str, Any], conversation: str) -> list[str]:
    """Argument values that the tool's description holds and the conversation does not.

    `arguments` is the call's JSON text; `conversation` the text of everything the
    model was shown apart from the tool definitions (`conversation_text`). Values
    shorter than two characters are never reported (too common to mean anything).
    """
    try:
        parsed = json.loads(arguments or "{}")
    except json.JSONDecodeError:
        return []
    described = description_text(tool)
    said = " ".join(conversation.lower().split())
    said_words = set(_words(said))
    copied = []
    for leaf in _leaves(parsed):
        value = _spelled(leaf)
        if len(value) < 2 or not _occurs(value, described) or _occurs(value, said):
            continue
        if not _named(value, said_words):
            copied.append(str(leaf))
    return copied


def _named(value: str, said: set[str]) -> bool:
    """The conversation names what `value` stands for, in other words: a value the
    model derived, which only happens to be a description's example too.

    Every number in it was said, and it has no words besides (`17 * 23` for
    "Calculate 17 times 23.", where the description's example is `(17 * 23) +
    sqrt(2) / 4`), or one of its content words (four letters or more) was said too
    (`Asia/Tokyo` for "Tokyo"), or it is one word that shortens
    a word that was said (`AAPL` for "Apple"). A copy shares no such word with the
    conversation (`buy milk` for "buy bread"), or brings numbers of its own (the
    calculator's `(17 * 23) + sqrt(2) / 4` for "17 plus 25").
    """
    words = _words(value)
    if any(any(ch.isdigit() for ch in w) and w not in said for w in words):
        return False
    if words and all(w.isdigit() for w in words):
        return True  # the user's numbers alone: "17 * 23" for "Calculate 17 times 23."
    content = [w for w in words if len(w) >= 4 and w.isalpha() and w not in _STOPWORDS]
    if any(w in said for w in content):
        return True
    return (
        len(words) == 1
        and len(content) == 1
        and len(value) <= 5
        and any(_abbreviates(content[0], other) for other in said)
    )


_WORD = re.compile(r"[^\W_]+")
# Too common to tie a request to a tool ("what", "tell", "please"); words of four
# letters or more only, so "the", "is" and "me" never count anyway.
_STOPWORDS = frozenset(
    re.findall(
        r"\w+",
        "about after again also because been before being could does doing down each from "
        "have having here into just like make many more most much need only other over "
        "please same should some such tell than that their them then there these they this "
        "those through very want what when where which while whom will with would your",
    )
)


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _abbreviates(short: str, word: str) -> bool:
    """`short` is a shortening of `word`: same first letter, its letters in order
    (km/kilometres, MSFT/Microsoft, AAPL/Apple)."""
    short = re.sub(r"(.)\1+", r"\1", short)  # a doubled letter for one: AAPL/Apple
    if len(word) <= len(short) or word[0] != short[0]:
        return False
    rest = iter(word)
    return all(ch in rest for ch in short)


def _grounded(value: str, said: set[str]) -> bool:
    words = _words(value)
    if not words:
        return True
    if len(words) == 1 and words[0].isalpha():
        word = words[0]
        if len(word) <= 3:
            return True  # a code or a unit symbol (F, kg, JPY): spelled from knowledge
        if len(word) <= 5 and any(_abbreviates(word, other) for other in said):
            return True  # a ticker or a unit by the word it shortens (MSFT, kmh)
    # "America/New_York" by "New York", "12.5% * 640" by "640"
    return any(word in said and (len(word) >= 3 or word.isdigit()) for word in words)


def _related(a: str, b: str) -> bool:
    """The same word, or forms of one (calculate/calculation, convert/converts)."""
    shorter = min(len(a), len(b))
    common = next((i for i in range(shorter) if a[i] != b[i]), shorter)
    return a == b or (common >= 5 and common >= 0.7 * shorter)


def _content_words(text: str) -> set[str]:
    return {w for w in _words(text) if len(w) >= 4 and w.isalpha() and w not in _STOPWORDS}


# a request for a figure worked out from what the tools give: "how many hours apart
# are they", "how many hours behind me is she", "the time gap", "how many kilos over
# the limit", "altogether", "the average temperature", "what pace per mile", "more
# than double Google's", "each person's share", "split between us", a price by the
# litre for a tank given in gallons
_DERIVED = re.compile(
    r"\b(?:difference|gap|apart|altogether|combined|in total|total|sum|average|pace|split"
    r"|per (?:person|head)|each (?:person|of us)"
    # ("How many minutes have I got left to kill?": up to four words between)
    r"|how (?:much|many)(?: \w+){0,4} (?:more|less|fewer|over|under|short|left|warmer|colder"
    r"|cheaper|ahead|behind)"
    r"|by how much|(?:more|less) than (?:double|twice|half)"
    # "How far off am I, in kilograms?" (11 stone against a goal of 65 kg)
    r"|how far (?:off|over|under|short|away|from)"
    # a price or a rate by the unit: "fuel here is 1.85 a litre", "$3 per gallon"
    r"|\d+(?:[.,]\d+)?\s*(?:a|an|per)\s+(?:litre|liter|gallon|kilo|kg|pound|lb|ounce|hour|night|day|week"
    r"|month|mile|km|kilometre|kilometer|metre|meter|person|head|ticket|piece|item))\b",
    re.I,
)


_KINDS: tuple[tuple[frozenset[str], frozenset[str], re.Pattern[str] | None], ...] = (
    (
        frozenset(re.findall(r"\w+", "arithmetic math maths calculator calculate calculation")),
        frozenset(
            re.findall(
                r"\w+",
                "plus minus times multiply multiplied divide divided subtract add sum product "
                "percent percentage power squared square root total average half double twice "
                "cubed cube sqrt factorial logarithm log ln sine cosine tangent sin cos tan "
                "exponent exponential modulo remainder quotient reciprocal round rounded "
                "solve compute split halve",
            )
        ),
        # "the mean of 4, 8 and 15", not "What does serendipity mean?" (which the
        # terminal chat's 1.5B answered after calling `calculate("sqrt(4) + 3")`)
        re.compile(
            r"\d\s*(?:[-+*/×÷^]|\*\*)\s*\d|\d\s*(?:%|per cent\b)|\d\s*!"
            r"|\b(?:sqrt|log|ln|sin|cos|tan|exp)\s*\("
            r"|\b(?:mean|median)\s+(?:of|value)\b|\b(?:arithmetic|geometric)\s+mean\b"
            rf"|{_DERIVED.pattern}",
            re.I,
        ),
    ),
    (
        frozenset(re.findall(r"\w+", "unit units measurement measurements")),
        frozenset(
            re.findall(
                r"\w+",
                "km kilometer kilometers kilometre kilometres meter meters metre metres cm mm "
                "mile miles mi ft feet foot inch inches yard yards kg kilogram kilograms gram "
                "grams lb lbs pound pounds ounce ounces oz ton tons liter liters litre litres "
                "ml gallon gallons cup cups pint pints quart quarts celsius fahrenheit kelvin "
                "mph kmh hour hours minute minutes "
                # as they are often misspelt, and the older name
                "celcius farenheit fahrenheight centigrade",
            )
        ),
        None,
    ),
)
"""Two kinds of tool whose requests rarely share a word with their description: a
calculator ("Evaluate an arithmetic expression") asked "What is 17 plus 25?", and a
unit converter ("Convert a quantity between units ...") asked "How many kilograms is
150 pounds?". Each is (words of such a tool's name or description, words of such a
request, a pattern of such a request)."""


def _words_of(text: str) -> frozenset[str]:
    return frozenset(re.findall(r"\w+", text))


# the names and descriptions of weather, clock, dictionary and stock tools
_DAYS = "monday|tuesday|wednesday|thursday|friday|saturday|sunday"
_WEATHER_TOOL = re.compile(r"\bweather\b|\bforecast\b")
_CLOCK_TOOL = re.compile(r"\b(current|local) (date and )?time\b|\btime ?zones?\b|\bclock\b")
_DICTIONARY_TOOL = re.compile(r"\bdefinitions?\b|\bdefine\b|\bdictionary\b|\bmeanings?\b")
_CURRENCY_TOOL = re.compile(r"\bcurrenc(y|ies)\b|\bexchange rates?\b|\bmoney\b")
_STOCK_TOOL = re.compile(r"\bstocks?\b|\bticker\b|\bshares?\b")
_REMINDER_TOOL = re.compile(r"\bremind(?:ers?)?\b|\balarms?\b")

_CURRENCY_WORDS = _words_of(
    "currency currencies exchange money dollar dollars euro euros yen pound pounds "
    "sterling franc francs rupee rupees yuan peso pesos usd eur gbp jpy cad aud chf "
    "cny inr mxn"
)
_CURRENCY_AMOUNT = re.compile(r"[$€£¥]\s*\d|\d\s*[$€£¥]")

# a character within a sentence: no ".", "!" or "?", but a decimal point ("187.50")
_IN_SENTENCE = r"(?:[^.!?]|(?<=\d)\.(?=\d))"
_SOFT_CLOCK = (
    r"(?:breakfast|lunch|dinner|supper|wake|waking|woken|too late|too early"
    # "Our supplier is in Mexico City. Would anyone there be at work yet?"
    r"|at work|at this hour|still up(?! for)|business hours|office hours)"
)
# a place named after "in" or "at" (a capital, whatever the pattern's case rule)
_PLACED = r"\b(?:in|at)\s+(?-i:[A-Z])"

_TOPICS: tuple[tuple[re.Pattern[str], frozenset[str], re.Pattern[str] | None], ...] = (
    (
        _WEATHER_TOOL,
        _words_of(
            "weather forecast warm cold hot chilly freezing temperature degrees rain raining "
            "rainy snow snowing sunny cloudy wind windy humid humidity umbrella storm stormy "
            # "Which is warmer right now, Tokyo or Sydney?"
            "warmer warmest colder coldest hotter hottest cooler coolest sunnier sunniest "
            "rainier cloudier windier"
        ),
        # "Is it breezy out there at the moment?" (Lisbon); in a question only:
        # "Greetings from a very foggy San Francisco!" asks for nothing
        # "jacket or no jacket? what's it like outside rn", "do I need my coat?"
        re.compile(
            r"\b(?:breezy|breeze|gusty|gusts?|foggy|fog|misty|drizzl\w*|icy|frosty|muggy"
            r"|sunshine|outside|coat|jacket|sweater|jumper|scarf|sunscreen)\b"
            rf"(?={_IN_SENTENCE}*(?:\?|$))",
            re.I,
        ),
    ),
    (
        _CLOCK_TOOL,
        # not "morning", "today" or "night" alone: "Good morning!", "How are you
        # today?", "Good night!" are greetings, which the 1.5B answers with the clock
        _words_of("time clock noon midnight date"),
        # "Is it already Friday in Auckland?", "Would my friend in San Francisco still
        # be awake?", "Is it lunchtime in Rome yet?", "How many hours ahead is Tokyo?",
        # "Would my pen pal in Seoul be sitting down to dinner about now?", "Would a
        # call now wake him up?" (Lima), "Is it too late to text my mate in
        # Reykjavik?", "is their office even open at this hour?"; those words in a
        # question (or a last sentence left open: "... dont want to wake him up")
        # only: "Kids are finally asleep, ...", "Three hours to kill before
        # boarding." had the clock called (and not "sleep": "Good morning! Did you
        # sleep well?")
        re.compile(
            r"o'clock|\bis it (?:still |already |yet )?(?:morning|afternoon|evening|night|day|dark"
            rf"|{_DAYS}|the weekend)\b"
            rf"|\b(?:awake|asleep|lunchtime|bedtime|dinnertime|hours?)\b(?={_IN_SENTENCE}*(?:\?|$))"
            # meals, waking and lateness in a question, with a place named in it or
            # before it ("5 of us at dinner, ... how much does everyone owe?" asks for
            # no clock)
            rf"|{_PLACED}.*?\b{_SOFT_CLOCK}\b(?={_IN_SENTENCE}*(?:\?|$))"
            rf"|\b{_SOFT_CLOCK}\b{_IN_SENTENCE}*{_PLACED}{_IN_SENTENCE}*(?:\?|$)",
            re.I,
        ),
    ),
    (
        _DICTIONARY_TOOL,
        _words_of("mean means meaning meanings define definition definitions synonym synonyms"),
        None,
    ),
    (
        _CURRENCY_TOOL,
        _CURRENCY_WORDS,
        _CURRENCY_AMOUNT,
    ),
    (
        _STOCK_TOOL,
        _words_of("stock stocks share shares ticker market trading nasdaq nyse"),
        None,
    ),
    (
        _REMINDER_TOOL,
        _words_of("reminder reminders"),
        # "ping me at 16:40 to leave for school pickup pls", which the 1.5B refused
        # with a reminder tool on offer: "I can't find a function to create a reminder."
        # Not "remind me what ubiquitous means": a definition
        re.compile(
            r"\b(?:ping|nudge|buzz|poke|alert|notify)\s+me\b|\bdon[’']?t let me forget\b"
            r"|\bremind\s+(?:me|us|him|her|them)\s+(?:to|at|in|on|about|that|tomorrow)\b",
            re.I,
        ),
    ),
)
"""Tools whose requests rarely share a word with their description, by a pattern of
such a tool's name and description, the words of such a request and a pattern of
one: the weather ("Is it raining in London?" for "Get the current weather for a
city"), a clock ("Is it morning in New York?"), a dictionary ("What's the meaning of
gregarious?"), currencies ("How many yen is 100 dollars?"), stocks and reminders
("ping me at 16:40"). Unlike `_KINDS`, they compute no figure a reply could make up
(`figure_tools`)."""


# "I ran 5 km this morning, feeling great!", "We spent a week in Tokyo last summer.",
# "Just finished a 10 km run in 48 minutes.": a message that opens with its writer (or
# leaves the writer out after "Just") and asks nothing; a word of these makes it a
# request after all ("I need 5 km in miles.", "I meant 15 km.")
_OWN_NEWS = re.compile(r"\s*(?:just\b|(?:i|i'm|i’m|i've|i’ve|we|we're|we’re|we've|my|our)\b)", re.I)
# "Hey! Just got one of those old calculator watches.": a greeting before the news
_GREETING = re.compile(r"\s*(?:hey|hi|hello|hiya|oh|wow|well)\b(?: there)?\s*[!,.]+\s*", re.I)
_REQUEST_WORDS = _words_of(
    "please want wanted need needed like wonder wondering curious know tell help show "
    "find check convert calculate compute work figure add subtract multiply divide "
    "remind set count define search give meant mean instead actually"
)
# "look up", "look for", "look into" ask; "Look at us now, ha." does not
_LOOK_UP = re.compile(r"\blook(?:ing)?\s+(?:up|for|into)\b", re.I)


# a message that tells of someone or something else ("Alice finally answered my email
# after two weeks, what a relief.", "Kids are finally asleep", "Got sunburnt in
# Lisbon, classic me."): a verb of a statement (was, is, 's, has, got, a past in -ed
# or one of the common irregular ones), and no opening that asks or bids ("Now
# double that.", "Get me the NVIDIA share price.", "How many words are in this: ...")
_STATES = re.compile(
    r"\b(?:am|is|are|was|were|has|have|had|got|gotten|been|went|came|brought|bought|ran"
    r"|ate|spent|made|took|gave|left|felt|forgot|found|won|lost|saw|met|finished|\w{3,}ed)\b"
    r"|\b(?:it|that|he|she|there|here|you|we|they|i)[’'](?:s|re|m|ve)\b",
    re.I,
)
_OPENERS = re.compile(r"\s*(?:(?:now|so|ok|okay|and|then|also|right|alright)\b[\s,]*)*(\w+)", re.I)
_BIDS = _words_of(
    "how what which when where who whom whose why is are am was were do does did can could "
    "would will should shall may might must has have had "
    "get give put take double halve triple compare split convert calculate add subtract "
    "multiply divide tell show find check look set remind count define search make write "
    "book send translate play order turn explain recommend summarize summarise proofread "
    "cancel delete email text call list name spell round work figure try let go use run "
    "keep change swap switch do note save schedule plan pick choose sum total estimate"
)


def _tells_of_others(request: str) -> bool:
    """Whether the message tells of someone or something with a verb of a statement
    (`_STATES`) and opens with no word that asks or bids (`_BIDS`)."""
    opening = _OPENERS.match(_GREETING.sub("", request, count=1))
    if opening is None or opening.group(1).lower() in _BIDS:
        return False
    if _LATER_QUESTION.search(request):
        return False  # "Paris was lovely yesterday, how is it today" (no question mark)
    return bool(_STATES.search(request))


# a question after the news, its mark left off
# (not an exclamation: "..., what a relief.", "..., how lovely!")
_LATER_QUESTION = re.compile(
    r"[,;.!]\s*(?:so\s+|and\s+|but\s+)?(?:what(?!\s+an?\b)|which|when|where|who|why|is|are"
    r"|can|could|would|will|do|does|did|should"
    r"|how\s+(?:is|are|was|were|do|does|did|much|many|long|far|about|can|could|would|will))\b",
    re.I,
)


def tells_only(request: str) -> bool:
    """Whether the user's message only tells about its writer, or of someone or
    something else, and asks for nothing: no question mark, no word of a request
    (`_REQUEST_WORDS`, "look up"), and opens with "I", "We", "My", "Our" or "Just", or
    tells with a verb of a statement and no opening that asks or bids
    (`_tells_of_others`: "Alice finally answered my email after two weeks, what a
    relief." had the contacts searched and the words counted). Such a message asks
    for no tool (`_asks_for`), however
    many units or places it names (after a greeting too: "Hey! Just got one of those
    old calculator watches." made four calculator calls): told "I ran 5 km this
    morning, feeling great!",
    the 1.5B called `calculate("5 * 1000")`, and told "I just got back from Paris, it
    was lovely." it wrote a call to convert temperatures."""
    if "?" in request or set(_words(request)) & _REQUEST_WORDS or _LOOK_UP.search(request):
        return False
    return bool(_OWN_NEWS.match(_GREETING.sub("", request, count=1))) or _tells_of_others(request)


_NAMED_TOPICS: tuple[tuple[re.Pattern[str], re.Pattern[str]], ...] = (
    (
        _WEATHER_TOOL,
        # "do I need my coat?": what to wear is what the weather is
        re.compile(
            r"\bweather\b|\bforecast\b|\bis it (?:raining|snowing|sunny)\b"
            r"|\b(?:need|bring|take|wear|pack)\b[^.?!]*\b(?:coat|jacket|umbrella|sunscreen"
            r"|sweater|jumper|scarf|gloves)\b",
            re.I,
        ),
    ),
    (
        _CLOCK_TOOL,
        re.compile(
            r"\bwhat time\b|\bthe (?:local |current )?time\b|\btime is it\b"
            r"|\btime (?:in|there)\b",
            re.I,
        ),
    ),
    (_DICTIONARY_TOOL, re.compile(r"\bdefine\b|\bdefinition\b|\bmeaning of\b", re.I)),
    (_STOCK_TOOL, re.compile(r"\b(?:stock|share) price\b|\btrading at\b", re.I)),
    # "how many euros will 300 dollars get me?": an amount asked for in a currency
    # (not "pounds", a weight's name too)
    (
        _CURRENCY_TOOL,
        re.compile(
            r"\b(?:how (?:many|much)|in|into|to)\s+(?:"
            + "|".join(
                sorted(
                    _CURRENCY_WORDS - _words_of("currency currencies exchange money pound pounds")
                )
            )
            + r")\b",
            re.I,
        ),
    ),
)
"""Weather, clock, dictionary, stock and currency tools (by the pattern of such a
tool), each with a pattern of a request that names what it gives outright: stricter
than `_TOPICS`' words, where "degrees" or "hours" alone would do ("Convert 30
degrees Celsius to Fahrenheit" asks for no weather)."""


def uncalled_tools(
    tools: Sequence[Mapping[str, Any]], items: Sequence[Mapping[str, Any]]
) -> list[str]:
    """The offered tools of a kind the user's latest message names outright
    (`_NAMED_TOPICS`: the weather, the time, a definition, a stock price, an amount
    in a currency) when calls
    were made for the message, none of them to a tool of that kind. Asked "What's the
    weather in Madrid, and what time is it there?", the 1.5B called the weather, then
    answered with a time it made up ("It's 12:34 PM there."). None once a call was
    made that the message does not ask for (`_asks_for`): the call this asked for
    went astray, and asking again would only repeat it until the turns run out."""
    called = _called_since(items)
    request = latest_request(items)
    by_name = {str(tool.get("name")): tool for tool in tools}
    if not called or any(not _asks_for(by_name[n], request) for n in called if n in by_name):
        return []
    missing: list[str] = []
    for tool_shape, named in _NAMED_TOPICS:
        kind = [str(t.get("name")) for t in tools if tool_shape.search(_tool_text(t))]
        if named.search(request) and kind and not called & set(kind):
            missing += kind
    return missing


# "Tokyo or Sydney", "Paris, London and Rome", "New York vs. Chicago": names in a list
_LIST_NAME = r"[A-Z][\w’'.-]*(?:\s+[A-Z][\w’'-]*)*"
_LIST_SEP = (
    r"\s*,\s*(?:and\s+|or\s+)?|\s+(?:and|or|vs\.?|versus)\s+"
    # "Is Paris warmer than (in) London?", "Is Meta's share price more than double
    # Google's?"
    r"|\s+(?:[a-z]\w*\s+){0,4}than\s+(?:double\s+|twice\s+|half\s+)?(?:in\s+|at\s+)?"
)
_NAME_LIST = re.compile(rf"{_LIST_NAME}(?:(?:{_LIST_SEP}){_LIST_NAME})+")
_POSSESSIVE = re.compile(r"[’']s$")
_JOINED = re.compile(r"\s(?:and|or|vs\.?|versus|than)\s")


def _list_name(text: str) -> str:
    """A list's name as written, without a possessive or the capitalised question word
    before it ("Is Tokyo" in "Is Tokyo warmer than Sydney?")."""
    words = _POSSESSIVE.sub("", text.strip(" .")).split()
    while len(words) > 1 and words[0].lower() in _OWN_QUESTION:
        words.pop(0)
    return " ".join(words)


def _in_arguments(name: str, arguments: str) -> bool:
    """Whether a call's arguments hold `name` ("Tokyo" in "Asia/Tokyo", "New York" in
    "America/New_York")."""
    spelled = " ".join(arguments.replace("_", " ").split()).lower()
    return re.search(rf"(?<!\w){re.escape(name.lower())}(?!\w)", spelled) is not None


def uncalled_names(
    tools: Sequence[Mapping[str, Any]], items: Sequence[Mapping[str, Any]]
) -> tuple[str, list[str]] | None:
    """A tool called for the user's latest message with one name of a list the message
    gives ("Which is warmer right now, Tokyo or Sydney?"), and the list's names no
    call to it has had: (the tool, those names), or None. The 1.5B answered the
    comparison from one city's weather, or from none. A tool that took names in other
    words (a time zone for a city) counts by its calls: fewer than the list's names
    leave some out."""
    latest = _latest_user_index(items)
    calls = [
        (str(item.get("name")), str(item.get("arguments") or ""))
        for item in items[latest:]
        if item.get("type") == "function_call"
    ]
    offered = {str(tool.get("name")) for tool in tools}
    request = latest_request(items)
    # each list: its names, and whether the message asks about them (not "Alice and
    # Bob asked: ...")
    lists = [
        (
            list(dict.fromkeys(_list_name(n) for n in re.split(_LIST_SEP, match.group()))),
            bool(_ASKED_ABOUT.search(request[: match.start()]) or "than" in match.group()),
        )
        for match in _NAME_LIST.finditer(request)
        if _JOINED.search(match.group())  # not "Paris, France", "Portland, Oregon": one place
    ]
    places = list(dict.fromkeys(_IN_PLACE.findall(request)))
    if _DERIVED.search(request):
        # "I'm in Sydney and my brother's in Los Angeles. How many hours ahead of him
        # am I?": places apart, and a figure worked out of both
        lists.append((places, True))
    for names, asked_about in lists:
        for tool in dict.fromkeys(called for called, _ in calls):
            done = [args for called, args in calls if called == tool]
            left = [n for n in names if not any(_in_arguments(n, args) for args in done)]
            if tool not in offered or not left or len(done) >= len(names):
                continue
            if len(left) < len(names):
                return tool, left
            # no name of the list in its calls, which took a name in other words
            # ("Asia/Kolkata" for "Mumbai", "AAPL" for "Apple"): fewer calls than names
            # leave one out ("the time gap between London and Mumbai": Kolkata alone),
            # where the list is what the message asks about
            if asked_about and all(_takes_a_name(args) for args in done):
                return tool, left
    return None


_ASKED_ABOUT = re.compile(
    r"\b(?:between|in|at|for|of|from|compare|comparing|versus)\s+(?:the\s+)?$", re.I
)
# (and "Working from Dubai": a capital and a small letter after "from", not "from USD")
_IN_PLACE = re.compile(
    r"\b(?:(?:in|at)\s+|from\s+(?=[A-Z][a-z]))([A-Z][\w’'.-]*(?:\s+[A-Z][\w’'-]*)*)"
)


def _places_for(tool: Mapping[str, Any], arguments: str, request: str) -> list[str]:
    """The places the user's message names ("in Kathmandu", `_IN_PLACE`) that a call to
    a weather or clock tool the message asks for (`_asks_for`) left out of its
    `arguments`: what a call that copied its description's example should take."""
    text = _tool_text(tool)
    if not (_WEATHER_TOOL.search(text) or _CLOCK_TOOL.search(text)):
        return []
    places = [
        p for p in dict.fromkeys(_IN_PLACE.findall(request)) if not _in_arguments(p, arguments)
    ]
    return places if places and _asks_for(tool, request) else []


def _takes_a_name(arguments: str) -> bool:
    """Whether a call's arguments hold a name: a string that opens with a capital
    letter (a city, a time zone, a ticker), not an expression or an amount."""
    return any(
        isinstance(value, str) and value[:1].isupper()
        for value in (_object(arguments) or {}).values()
    )


# what a lookup is for: a name ("in London", "Apple's"; not a sentence's first word;
# "the company that makes the iPhone"), a code ("AAPL", "USD"), a quoted word
# ("'gregarious'") or an amount ("100 dollars")
_LOOKUP_VALUE = re.compile(
    r"(?<![.!?:]\s)(?<=\s)[A-Z][a-z][\w’'-]*|\b[a-z]+[A-Z][\w’'-]*|\b[A-Z]{2,5}\b"
    r"|[\"“‘'][a-z]+[\"”’']|\d",
    re.M,
)


_AMOUNT = re.compile(r"\d|\brates?\b", re.I)


def topic_tools(
    tools: Sequence[Mapping[str, Any]], items: Sequence[Mapping[str, Any]]
) -> list[str]:
    """The offered weather, clock, dictionary, currency, stock or reminder tools (`_TOPICS`) that
    the user's latest message asks about for something it names (`_LOOKUP_VALUE`),
    before any call was made for it: a first reply to it must be a call, since what
    those tools give cannot be known without them. Asked a yes/no question about the
    weather or the time somewhere ("Which is warmer right now, Tokyo or Sydney?"),
    the 1.5B answered "Tokyo is warmer right now." from nothing. Not for a message
    that only tells about its writer, one about another day than today for a tool
    of the present (`_other_day`), or one that names nothing to look up ("Do you like
    rainy days?"), or one that asks for another tool too (a calculation) on numbers
    of its own, or about a tool an earlier turn called (`followup_tools` judges
    those)."""
    latest = _latest_user_index(items)
    if any(item.get("type") == "function_call" for item in items[latest:]):
        return []
    request = latest_request(items)
    if tells_only(request) or not _LOOKUP_VALUE.search(request):
        return []
    topical = {
        str(tool.get("name"))
        for tool in tools
        if any(shape.search(_tool_text(tool)) for shape, _, _ in _TOPICS)
    }
    if _NUMBER.search(request) and any(
        _asks_for(t, request) for t in tools if str(t.get("name")) not in topical
    ):
        # a calculation or a conversion of the message's own numbers too ("What is
        # 12.5% of 640? Then tell me the time in Paris."), which may come first; with
        # no number of its own, what it calculates or converts are the lookups' results
        # ("the average temperature across Rome, Madrid and Lisbon")
        return []
    earlier = {name for name, _ in answered_calls(items[:latest])}
    return [
        str(tool.get("name"))
        for tool in tools
        for tool_shape, words, shape in _TOPICS
        if tool_shape.search(_tool_text(tool))
        and _requested(request, words, shape)
        and not _other_day(tool, request)
        and str(tool.get("name")) not in earlier  # "What was the temperature again?"
        # a converter of currencies gives amounts and rates, not what a country uses
        and (tool_shape is not _CURRENCY_TOOL or _AMOUNT.search(request) is not None)
    ]


# "in Fahrenheit", "to degrees Celsius", "in °F": the temperature scale a message asks for
# a temperature scale's names, as often misspelt too
_SCALE_WORDS = "fahrenheit|farenheit|fahrenheight|celsius|celcius|centigrade|kelvin"
_ASKED_SCALE = re.compile(
    rf"\b(?:in|to|into)\s+(?:degrees\s+)?(?:({_SCALE_WORDS})\b|°\s?([fck])\b)", re.I
)
# a temperature the message gives: "68°F", "20 degrees C", "70 fahrenheit", "68 F" (a
# capital alone: "50c" may be cents)
_GIVEN_SCALE = re.compile(
    rf"\d\s?(?:(?i:°\s?|degrees?\s+)((?i:{_SCALE_WORDS}|f|c))|((?i:{_SCALE_WORDS})|[FC]))\b"
)
_SCALE_NAMES = {
    "f": "fahrenheit",
    "c": "celsius",
    "k": "kelvin",
    **dict.fromkeys(("farenheit", "fahrenheight"), "fahrenheit"),
    **dict.fromkeys(("celcius", "centigrade"), "celsius"),
}
# how a result shows a scale: its name, a degree sign, a JSON key's suffix (`temp_c`)
_SCALE_MARKS = {
    "fahrenheit": re.compile(r"fahrenheit|°\s?f\b|_f\b|\bdeg ?f\b|\d\s?f\b", re.I),
    "celsius": re.compile(r"celsius|°\s?c\b|_c\b|\bdeg ?c\b|\d\s?c\b", re.I),
    "kelvin": re.compile(r"kelvin|\d\s?k\b", re.I),
}


def unconverted_scale(
    tools: Sequence[Mapping[str, Any]], items: Sequence[Mapping[str, Any]]
) -> tuple[str, str, bool] | None:
    """(a unit converter's name, the scale, whether the message asks for it) when the
    user's latest message asks for a temperature in a scale ("in Fahrenheit"), or
    gives one in it ("set to 68 F"), that no result for it is in, while a result is
    in another (a weather tool's `temp_c`), and no converter was called for the
    message. Asked "What's the temperature in Oslo in Fahrenheit?", the 1.5B called
    the weather alone and answered "-3 degrees Fahrenheit": Oslo's -3 °C with the
    asked scale's name; told "thermostat in my flat is set to 68 F. is it warmer in
    here or outside in Paris right now?", it answered "18°C, which is warmer than
    68°F"."""
    request = latest_request(items)
    converters = [str(tool.get("name")) for tool in tools if _converter(tool)]
    asked = _ASKED_SCALE.search(request)
    shape = asked or _GIVEN_SCALE.search(request)
    if shape is None or not converters:
        return None
    word = (shape.group(1) or shape.group(2)).lower()
    scale = _SCALE_NAMES.get(word, word)
    if _called_since(items) & set(converters):
        return None
    results = [str(item.get("output") or "") for item in latest_outputs(items)]
    shown = {name for name, mark in _SCALE_MARKS.items() if any(mark.search(r) for r in results)}
    if scale in shown or not shown:
        return None
    return converters[0], scale, asked is not None


def underived(tools: Sequence[Mapping[str, Any]], items: Sequence[Mapping[str, Any]]) -> str | None:
    """An offered calculator's name when the user's latest message asks for a figure
    worked out (`_DERIVED`, an operation: `_OPERATION`, or how much or how many of
    numbers of its own: `_worked_question`), calls were made for it,
    every result (not error) they gave has a number, and none of them was to a
    calculator: the step that works the figure out from the results is still to
    come. Asked "What time is it in Los
    Angeles and in Tokyo, and how many hours apart are they?", the 1.5B called the
    clock twice and answered with the two times and a conversion of one hour to
    minutes; asked for a pace per mile after converting 5 km, it answered "0.1222
    miles per minute" from its own arithmetic."""
    calculators = [str(tool.get("name")) for tool in tools if _calculator(tool)]
    request = latest_request(items)
    if not calculators or tells_only(request):
        return None
    if not (_DERIVED.search(request) or _OPERATION.search(request) or _worked_question(request)):
        return None
    if _called_since(items) & set(calculators):
        return None
    outputs = [str(item.get("output") or "") for item in latest_outputs(items)]
    results = [output for output in outputs if not output.startswith("Error")]
    if not results or not all(_NUMBER.search(result) for result in results):
        return None  # "the difference between affect and effect": definitions
    return calculators[0]


def _asks_for(tool: Mapping[str, Any], request: str) -> bool:
    """Whether the user's message names what the tool does (a word of its name or
    description, in some form), or asks for a calculation or a unit that a
    calculator's or a unit converter's description says it takes (`_KINDS`), or for
    what a weather, clock, dictionary, currency or stock tool gives (`_TOPICS`); never
    for a message that only tells about its writer (`tells_only`)."""
    if tells_only(request):
        return False
    request = _UNTIMED.sub(" ", request)
    text = _tool_text(tool)
    offered = _content_words(text)
    if any(_related(a, b) for a in _content_words(request) for b in offered):
        return True
    return _asks_for_kind(tool, request)


# a clock time or an hour of the day, which counts as no number of a calculation
_CLOCK_READING = re.compile(r"\b\d{1,2}:\d{2}\b|\b\d{1,2}\s*(?:am|pm)\b", re.I)
# "how much", "how many", and the same asked otherwise: "What does each can work
# out to?", "What's my part?", "what do 4 nights plus tax come to?"
_HOW_MUCH = re.compile(
    r"\bhow (?:much|many)\b|\bworks? out (?:to|at)\b(?!\s+be\b)"
    r"|\bwhat(?:['’]s| is)\s+(?:my|our|each|every)\s+(?:\w+\s+)?(?:share|part|cut)\b"
    r"|\b(?:does|do|would|will)\s+(?:[\w.,]+\s+){0,5}come to\b"
    # "The garden hose puts out about 9 litres a minute. How long will it take to
    # fill the 150 gallon stock tank?"
    r"|\bhow long (?:will|would|does|do|did|is) (?:it|they|that|this) (?:\w+ )?(?:take|last)\b",
    re.I,
)


def _worked_question(request: str) -> bool:
    """Whether `request` asks "how much" or "how many" of two numbers or more of its
    own (clock times aside): "I'm paying off 4,380 over 24 months, how much is each
    payment?", "How many 330 ml cans would it take to fill my 2 gallon cooler jug?".
    The 1.5B worked those out in prose, formulas and all, with a calculator on offer."""
    if not _HOW_MUCH.search(request):
        return False
    return len(_NUMBER.findall(_THOUSANDS.sub("", _CLOCK_READING.sub(" ", request)))) >= 2


def _asks_for_kind(tool: Mapping[str, Any], request: str) -> bool:
    """`_asks_for` by `_KINDS` and `_TOPICS` alone: the message asks for what this
    kind of tool gives, not only shares a word with its description ("convert"), or
    a calculator, for a figure of its own numbers (`_worked_question`)."""
    text = _tool_text(tool)
    if _calculator(tool) and _worked_question(request):
        return True
    described = set(_words(text))
    if any(
        described & tool_words and _requested(request, request_words, shape)
        for tool_words, request_words, shape in _KINDS
    ):
        return True
    return any(
        tool_shape.search(text) and _requested(request, request_words, shape)
        for tool_shape, request_words, shape in _TOPICS
    )


def _requested(request: str, words: frozenset[str], shape: re.Pattern[str] | None) -> bool:
    """Whether `request` has one of a kind's request `words`, or its `shape`."""
    request = _UNTIMED.sub(" ", _UNSTOCKED.sub(" ", request))
    return bool(set(_words(request)) & words) or bool(shape and shape.search(request))


# "share" and "stock" that ask for no stock price: a part ("What's my share?", "each
# person's share in euros"), sharing, and goods ("in stock", "the 150 gallon stock
# tank"). With no stock tool on offer, "What's my share?" counted as asking for what
# no tool gives, and its answer's figures as made up
_UNSTOCKED = re.compile(
    r"\b(?:my|our|your|his|her|their|each|every|a|the|fair|equal|even)\s+(?:\w+['’]s\s+)?"
    r"share\b(?!\s+(?:prices?|of\s+[A-Z]|in\s+[A-Z]))"
    r"|\bshare\s+(?:the|it|this|that|a|an|my|our|with)\b"
    r"|\b(?:in|out of)\s+stock\b|\bstock\s+(?:tanks?|pots?|cubes?|rooms?|up on)\b"
    # "stock up" as a verb: "Time to stock up: 5 kg at 2.40 a kilo", "stocking up"
    # (the word before it left for `_UNTIMED`: "Time to")
    r"|(?:(?<=\bto )|(?<=\bgotta )|(?<=['’]ll ))stock\s+up\b|\bstocking\s+up\b",
    re.I,
)
# "time" that asks for no clock: "When's the best time of year to visit Lisbon?" had
# the clock called for Lisbon (but "Is it a good time to call Sydney?" does ask)
_UNTIMED = re.compile(
    r"\b(?:free|spare|hard|tough|long|first|last|next|some|no) times?\b"
    r"|\btimes? of (?:the )?(?:year|season|life)\b|\b(?:on|in) time\b"
    # a span of time: "How much time will 5 km at 6 km/h take?", "the total time for
    # 3 laps"; and the idiom "Time to stock up: ..." (with no clock on offer, each
    # had counted as asking for what no tool gives)
    r"|\bhow much time\b|\btime (?:it|they|that) (?:takes?|took)\b"
    r"|\b(?:total|travel|journey|flight|driving|cooking|running|walking|finish|lap) times?\b"
    r"|^\s*time to\b",
    re.I,
)


def ungrounded_values(
    arguments: str, tool: Mapping[str, Any], conversation: str, request: str
) -> list[str]:
    """String argument values that nobody said, in a call the user did not ask for.

    A value is *grounded* when one of its words (three letters or more, or a number)
    occurs in `conversation` (everything said: instructions, messages, calls and
    outputs), when it is one word that shortens a word that does (`MSFT`), or one
    short code (`F`, `kg`, `JPY`). Ungrounded values are returned only if `request`
    (the user's latest message) shares no word with the tool's name and
    descriptions: a user who asks for the time may get `Asia/Kolkata` for Mumbai;
    or if it names nothing a weather, dictionary or stock tool could look up
    (`_guessed_lookup`).
    """
    try:
        parsed = json.loads(arguments or "{}")
    except json.JSONDecodeError:
        return []
    said = set(_words(conversation))
    loose = [
        leaf for leaf in _leaves(parsed) if isinstance(leaf, str) and not _grounded(leaf, said)
    ]
    if not loose or (_asks_for(tool, request) and not _guessed_lookup(tool, request)):
        return []
    return loose


def _guessed_lookup(tool: Mapping[str, Any], request: str) -> bool:
    """Whether a call to `tool`, a weather, dictionary or stock tool, for `request`
    can only have guessed what to look up: the message names nothing to look up
    (`_LOOKUP_VALUE`). Greeted "Hi there, hope it's sunny wherever you are!", the
    1.5B looked up London's weather, and told "The weather here has been gorgeous"
    that of "YourCityName". (Not a clock: "What time is it?" may have UTC's.)"""
    text = _tool_text(tool)
    lookup = (_WEATHER_TOOL, _DICTIONARY_TOOL, _STOCK_TOOL)
    return any(shape.search(text) for shape in lookup) and not _LOOKUP_VALUE.search(request)


_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def _significant_digits(number: str) -> int:
    return len(number.replace(".", "").strip("0"))


def _decimals(number: str) -> int:
    return len(number.partition(".")[2])


def _said_number(number: str, said: Sequence[float]) -> bool:
    """`number` is one that was said, rounded, or as a percentage (0.125 for 12.5%),
    or a percentage added or taken off (1.15 for "a 15% service charge", 0.75 for
    "25% off")."""
    value = float(number)
    tolerance = 0.51 * 10 ** -_decimals(number)
    forms = [(value, 1.0), (value / 100, 0.01)]
    if _decimals(number):
        # a fraction read as a percentage; not a whole number, whose tolerance times
        # 100 would be half a hundred ("00" of a clock time taken for 80)
        forms += [(value * 100, 100.0), ((value - 1) * 100, 100.0), ((1 - value) * 100, 100.0)]
    return any(abs(form - other) <= tolerance * scale for other in said for form, scale in forms)


def unsaid_numbers(arguments: str, conversation: str) -> list[str]:
    """Numbers in a call that nobody said: a number argument (other than 0 and 1),
    or a precise number (three significant digits or more) inside a text argument.

    Asked to convert 5 miles and add 3, the 1.5B writes `5 * 1.60934 + 3` for the
    calculator: a conversion factor from memory where a tool would give it; asked for
    Cairo's temperature in Fahrenheit, it converts a temperature of 25 that no tool
    returned. A number counts as said when the conversation has it (in digits or as
    a word up to twenty), rounded (`8.05` after `8.04672`) or as a percentage
    (`0.125` for `12.5%`); in an expression short ones (`60`, `0.5`) are free.
    """
    try:
        parsed = json.loads(arguments or "{}")
    except json.JSONDecodeError:
        return []
    said = said_numbers(conversation)
    unsaid = []
    for leaf in _leaves(parsed):
        if isinstance(leaf, int | float):
            number = str(abs(leaf))
            if "e" not in number and abs(leaf) > 1 and not _said_number(number, said):
                unsaid.append(str(leaf))
            continue
        for number in _NUMBER.findall(str(leaf)):
            if _significant_digits(number) >= 3 and not _said_number(number, said):
                unsaid.append(number)
    return unsaid


_NUMBER_WORDS = re.findall(
    r"\w+",
    "zero one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen twenty",
)


def said_numbers(conversation: str) -> list[float]:
    """The numbers `conversation` says: in digits (thousands separators aside), as
    words ("twelve", "two thousand three hundred": `_spoken_numbers`), scaled ("2.5k",
    "5 grand", "1.5 million") or as the totals of a measure given in two units ("5
    foot 9" says 69 inches and 5.75 feet: `compound_measures`)."""
    plain, words = _THOUSANDS.sub("", conversation), _words(conversation)
    said = [float(n) for n in _NUMBER.findall(plain)]
    said += [float(_NUMBER_WORDS.index(w)) for w in words if w in _NUMBER_WORDS]
    said += _spoken_numbers(words)
    said += [float(n) * _SCALES[word.lower()] for n, word in _SCALED.findall(plain)]
    for measure in compound_measures(conversation):
        said += [measure.in_minor, measure.in_major]
    return said


class Measure(NamedTuple):
    """A measure a message gives in two units of one kind: 5 ft 9 in, 11 st 4 lb."""

    major: float
    major_unit: str
    minor: float
    minor_unit: str
    factor: int
    """Minor units to one major unit: 12 inches to the foot."""

    @property
    def in_minor(self) -> float:
        return self.major * self.factor + self.minor

    @property
    def in_major(self) -> float:
        return round(self.major + self.minor / self.factor, 4)


# a major unit, and its minor unit with how many of it make one major:
# "5 foot 9", "6ft 2in", "5'9\"", "11 stone 4", "1 lb 4 oz"
_COMPOUNDS = (
    ("ft", r"ft|foot|feet|'|′|’", "in", r"in|inch|inches|\"|″|”|''", 12),
    ("st", r"st|stone|stones", "lb", r"lb|lbs|pounds?", 14),
    ("lb", r"lb|lbs|pounds?", "oz", r"oz|ounces?", 16),
)
_COMPOUND = [
    (
        major,
        minor,
        factor,
        re.compile(
            rf"(?<![\d.])(\d+)\s*(?:{major_names})\s*(?:and\s+)?(\d+(?:\.\d+)?)"
            # the minor unit, or nothing more of a number: "5 foot 9 and my daughter",
            # not "a 10 foot 2 by 4"
            rf"(?:\s*(?:{minor_names})(?![a-z])|(?=\s*(?:[^\w\s]|$|(?:and|tall|now)\b)))",
            re.I,
        ),
    )
    for major, major_names, minor, minor_names, factor in _COMPOUNDS
]


def compound_measures(text: str) -> list[Measure]:
    """The measures `text` gives in a major and a minor unit ("5 foot 9": 5 ft 9 in),
    the minor part less than one major unit.

    Told "I'm 5 foot 9 and my daughter is 142 cm", the 1.5B converted 5 ft alone."""
    found = []
    for major, minor, factor, shape in _COMPOUND:
        for whole, part in shape.findall(text):
            if float(part) < factor:
                found.append(Measure(float(whole), major, float(part), minor, factor))
    return found


# number words past the units, and the words that scale them
_TENS = {
    word: 10 * tens
    for tens, word in enumerate(
        re.findall(r"\w+", "twenty thirty forty fifty sixty seventy eighty ninety"), 2
    )
}
_SCALES = {"hundred": 100, "thousand": 1000, "grand": 1000, "k": 1000, "million": 1_000_000}
# "2.5k", "5 grand", "1.5 million", "3 hundred"
_SCALED = re.compile(r"(\d+(?:\.\d+)?)\s*(k|grand|hundred|thousand|million)\b", re.I)


class _SpokenNumber:
    """A number being read from its words, one at a time (`takes`)."""

    def __init__(self) -> None:
        self.total = self.current = self.words = 0
        self.last = ""  # what it ends in: "unit", "tens", "scale", or "a" (a hundred)

    def takes(self, word: str, following: str) -> bool:
        """Whether `word` goes on with this number (and if so, reads it)."""
        if word in _NUMBER_WORDS[:20]:
            unit = _NUMBER_WORDS.index(word)
            if self.last == "unit" or (self.last == "tens" and not 1 <= unit <= 9):
                return False  # "one two": two numbers
            self.current, self.last = self.current + unit, "unit"
        elif word in _TENS:
            if self.last in ("unit", "tens"):
                return False
            self.current, self.last = self.current + _TENS[word], "tens"
        elif word == "hundred" and (self.current or self.last == "a"):
            self.current, self.last = (self.current or 1) * 100, "scale"
        elif word in ("thousand", "million") and (self.words or self.last == "a"):
            self.total += (self.current or 1) * _SCALES[word]
            self.current, self.last = 0, "scale"
        elif word in ("a", "an") and not self.words and following in _SCALES:
            self.last = "a"
            return True
        else:
            return word == "and" and bool(self.words)  # "a hundred and twenty"
        self.words += 1
        return True

    def value(self) -> float | None:
        """The number read, if it is more than one word or past twenty."""
        value = self.total + self.current
        return float(value) if self.words > 1 or value > 20 else None


def _spoken_numbers(words: Sequence[str]) -> list[float]:
    """The values of the numbers `words` write out in more than one word, or past
    twenty ("fifty quid", "two thousand three hundred", "a hundred and twenty",
    "twenty-five"); single words up to twenty are `said_numbers`' own.

    Told "I'm putting away 85 a week for a bike that costs two thousand three
    hundred", the 1.5B called `2300 / 85`: a number said, in words."""
    values: list[float] = []
    number = _SpokenNumber()
    for index, word in enumerate(words):
        following = words[index + 1] if index + 1 < len(words) else ""
        if number.takes(word, following):
            continue
        if (value := number.value()) is not None:
            values.append(value)
        number = _SpokenNumber()
        number.takes(word, following)  # it may open the next
    if (value := number.value()) is not None:
        values.append(value)
    return values


_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
_LIST_MARKER = re.compile(r"^\s*\d+[.)]\s", re.M)
_CODE = re.compile(r"```.*?(```|\Z)|`[^`\n]*`", re.S)


def unsaid_figures(text: str, said: Sequence[float]) -> list[str]:
    """Numbers a reply states that are not among the `said` ones (`said_numbers`) in
    any form that `unsaid_numbers` accepts (rounded, as a percentage); 0 and 1, list
    markers (`1. `) and code aside.

    With a converter offered, asked "And 42 km?" after 10 km had been converted, the
    1.5B answered "42 km is 26.21371 miles." with no call: the earlier result's
    digits, made up. Asked for Madrid in Fahrenheit, it converted 25 °C to 77 °F in
    its head where `convert_units` was offered for it.
    """
    text = _LIST_MARKER.sub(" ", _CODE.sub(" ", _THOUSANDS.sub("", text)))
    return list(
        dict.fromkeys(
            n
            for n in _NUMBER.findall(text)
            if float(n) not in (0.0, 1.0) and not _said_number(n, said)
        )
    )


_CLOCK_TIME = re.compile(r"(?<![\d:.])(\d{1,2}):(\d{2})(?![\d])")


def unsaid_times(text: str, conversation: str) -> list[str]:
    """Clock times (`14:30`) a reply states that the conversation does not hold, on a
    24- or 12-hour clock (`15:35:00` holds "15:35" and "3:35"). After a currency
    conversion, the 1.5B's text pass answered "The current time in London is 14:30."
    """
    said = {
        (int(hour) % 12, minute)
        for hour, minute in re.findall(r"(?<!\d)(\d{1,2}):(\d{2})(?!\d)", conversation)
    }
    return list(
        dict.fromkeys(
            f"{hour}:{minute}"
            for hour, minute in _CLOCK_TIME.findall(text)
            if (int(hour) % 12, minute) not in said
        )
    )


# a word of a plain result that shows an answer used it ("Saturday", "TSLA", "lasting")
_WORD_MARK = re.compile(r"[a-z][a-z'’-]{3,}")


def _marks(output: str) -> tuple[list[str], list[str]]:
    """What shows that an answer used a result: (its numbers, its words, in lower
    case). A result after "=" is its figure ("12.5% * 640 = 80": 80); a JSON object's
    values are its fields (a temperature and "sunny"); otherwise every number and
    every word of four letters or more in it (a clock's date, time and weekday; a
    ticker; a definition's words)."""
    try:
        value = json.loads(output)
    except json.JSONDecodeError:
        value = None
    if isinstance(value, dict):
        leaves = list(_leaves(value))
        numbers = [_spelled(v) for v in leaves if isinstance(v, int | float)]
        return numbers, [_spelled(v) for v in leaves if isinstance(v, str)]
    if "=" in output:
        return _NUMBER.findall(_THOUSANDS.sub("", output.rpartition("=")[2])), []
    return _NUMBER.findall(_THOUSANDS.sub("", output)), _WORD_MARK.findall(output.lower())


def final_results(items: Sequence[Mapping[str, Any]]) -> list[str]:
    """The results of the calls made for the user's latest message that no later
    call went on with (none of their figures in a later successful call's arguments):
    what the answer reports. Asked "What is 12.5% of 640? Then tell me the time in
    Paris.", the 1.5B answered with Paris's time alone, the 80 dropped."""
    since = items[_latest_user_index(items) :]
    outputs = {
        str(item.get("call_id")): str(item.get("output") or "")
        for item in since
        if item.get("type") == "function_call_output"
    }
    calls = [
        (str(item.get("arguments") or ""), outputs.get(str(item.get("call_id")), ""))
        for item in since
        if item.get("type") == "function_call"
    ]
    results = []
    for index, (_, output) in enumerate(calls):
        numbers, words = _marks(output)
        if output.startswith("Error") or not (numbers or words):
            continue
        later = " ".join(a for a, o in calls[index + 1 :] if o and not o.startswith("Error"))
        if not any(_occurs(n, _THOUSANDS.sub("", later)) for n in numbers):
            results.append(output)
    return list(dict.fromkeys(results))


def asked_with(items: Sequence[Mapping[str, Any]]) -> str:
    """The user's latest message and the arguments of the calls made for it: what an
    answer may repeat without showing anything of a result (`left_out`'s `request`).
    Asked "And the company behind Windows?" after Amazon's price, the 1.5B called
    `MSFT` and answered "Microsoft (MSFT) is the company behind Windows.": the
    ticker it called with, not the price."""
    since = items[_latest_user_index(items) :]
    arguments = [str(i.get("arguments") or "") for i in since if i.get("type") == "function_call"]
    return "\n".join([latest_request(items), *arguments])


# a question answered yes or no: "Is it sunnier in Cairo?", "Would Rome count as warm?"
_YES_NO = re.compile(
    r"\s*(?:is|are|was|were|will|would|should|do|does|did|can|could|has|have)\b", re.I
)


def left_out(text: str, results: Sequence[str], request: str = "") -> list[str]:
    """The `results` that an answer shows nothing of: none of their numbers (rounded
    as `unsaid_numbers` allows) and none of their words but those the user's
    `request` has (a city's name, which the answer may only repeat). A result with
    nothing to look for counts as shown. Asked "Is it sunnier in Cairo?" after
    Cairo's weather came back, the 1.5B answered "Yes, it is sunnier in Cairo.",
    which shows nothing of it."""
    low = " ".join(text.lower().split())
    asked = " ".join(request.lower().split())
    stated = _NUMBER.findall(_THOUSANDS.sub("", low))
    # asked what it is, not whether ("Tell me the weather in Berlin", not "Is it
    # sunnier in Cairo?"), an answer shows a JSON result's figures: "The weather in
    # Berlin is overcast." left the 9 °C out
    figures_due = bool(request.strip()) and not _YES_NO.match(request)
    missing = []
    for result in results:
        numbers, words = _marks(result)
        words = [w for w in words if w and w not in asked]
        if figures_due and numbers and _object(result) is not None:
            words = []
        said = [float(n) for n in numbers]
        if not (numbers or words):
            continue
        if any(_said_number(n, said) for n in stated) or any(w in low for w in words):
            continue
        missing.append(result)
    return missing


def figure_tools(
    tools: Sequence[Mapping[str, Any]], items: Sequence[Mapping[str, Any]]
) -> list[str]:
    """The offered tools that compute figures (a calculator's or a unit converter's
    kind, `_KINDS`), those the user's latest message asks for first, if it asks for
    one of them: a reply to it must not state a figure that none of them returned
    (`unsaid_figures`)."""
    computing = [
        tool
        for tool in tools
        if any(set(_words(_tool_text(tool))) & tool_words for tool_words, _, _ in _KINDS)
    ]
    request = latest_request(items)
    asked = [tool for tool in computing if _asks_for(tool, request)]
    if not asked:
        return []
    # the ones it asks for first: named "calculate or convert_units" for "And 42 km?",
    # the 1.5B called the calculator with a conversion factor from memory
    return [str(tool.get("name")) for tool in asked + [t for t in computing if t not in asked]]


def conversation_text(instructions: str | None, items: Iterable[Mapping[str, Any]]) -> str:
    """The text of instructions and every item: messages, call arguments, outputs."""
    from turnstream.providers._chat_request import text_of

    parts = [instructions or ""]
    for item in items:
        kind = item.get("type", "message")
        if kind == "message":
            parts.append(text_of(item.get("content")))
        elif kind == "function_call":
            parts.append(str(item.get("arguments") or ""))
        elif kind == "function_call_output":
            output = item.get("output")
            parts.append(output if isinstance(output, str) else text_of(output))
    return "\n".join(parts)


def _canonical(arguments: str) -> str:
    try:
        return json.dumps(json.loads(arguments or "{}"), sort_keys=True)
    except json.JSONDecodeError:
        return arguments.strip()


def answered_calls(items: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], str]:
    """(name, canonical arguments) -> output, for every call in `items` that has one."""
    calls: dict[str, tuple[str, str]] = {}
    answered: dict[tuple[str, str], str] = {}
    for item in items:
        kind = item.get("type")
        if kind == "function_call":
            key = (str(item.get("name")), _canonical(str(item.get("arguments") or "")))
            calls[str(item.get("call_id"))] = key
        elif kind == "function_call_output" and str(item.get("call_id")) in calls:
            output = item.get("output")
            answered[calls[str(item.get("call_id"))]] = str(output)
    return answered


def latest_request(items: Sequence[Mapping[str, Any]]) -> str:
    """The text of the user's latest message (empty if there is none)."""
    from turnstream.providers._chat_request import text_of

    for item in reversed(items):
        if item.get("type", "message") == "message" and item.get("role") == "user":
            return text_of(item.get("content"))
    return ""


def _sources(tools: Mapping[Any, Mapping[str, Any]], name: str, request: str) -> list[str]:
    """The other tools the request asks for that take no number, so may be where a
    number comes from: asked for Cairo's temperature in Fahrenheit, the 1.5B converted
    a temperature of 25 that it made up; told only that "another function" might give
    it, it made it up again, where the weather tool was the one to call first."""
    return [
        str(other)
        for other, tool in tools.items()
        if other != name
        and _asks_for(tool, request)
        and not any(
            prop.get("type") in ("number", "integer")
            for prop in ((tool.get("parameters") or {}).get("properties") or {}).values()
            if isinstance(prop, Mapping)
        )
    ]


def _latest_user_index(items: Sequence[Mapping[str, Any]]) -> int:
    """The index of the user's latest message (0 if there is none)."""
    for index in range(len(items) - 1, -1, -1):
        item = items[index]
        if item.get("type", "message") == "message" and item.get("role") == "user":
            return index
    return 0


def _called_since(items: Sequence[Mapping[str, Any]]) -> set[str]:
    """The names of the functions called since the user's latest message."""
    return {
        str(item.get("name"))
        for item in items[_latest_user_index(items) :]
        if item.get("type") == "function_call"
    }


def latest_outputs(items: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The function call outputs since the user's latest message."""
    return [
        item
        for item in items[_latest_user_index(items) :]
        if item.get("type") == "function_call_output"
    ]


_RAISED = re.compile(r"^Error:\s*(?:tool '[^']*' raised \w+:\s*)?")


def error_text(output: str) -> str:
    """A failed call's output (the runtime's `Error: tool 'x' raised ValueError: ...`)
    as the tool's own words: "unknown ticker 'FB'"."""
    return _RAISED.sub("", output).strip()


def only_failures(items: Sequence[Mapping[str, Any]]) -> bool:
    """Whether calls were made for the user's latest message and every one failed
    (its output is an error: the runtime's `Error: ...`)."""
    outputs = [str(item.get("output") or "") for item in latest_outputs(items)]
    return bool(outputs) and all(output.startswith("Error") for output in outputs)


def untooled_topic(tools: Sequence[Mapping[str, Any]], items: Sequence[Mapping[str, Any]]) -> bool:
    """Whether the user's latest message asks for what a weather, clock, dictionary,
    currency or stock tool gives (`_TOPICS`) and no offered tool is of that kind: the
    chat apps' calculator, clock and converter asked for Apple's stock price; or asks
    for what a tool gives on another day than today, and that tool gives only what
    holds now (`_other_day`)."""
    request = latest_request(items)
    texts = [_tool_text(tool) for tool in tools]
    if other_day_tools(tools, items):
        return True  # tomorrow's forecast, with only the current weather on offer
    return any(
        _requested(request, request_words, shape)
        and not any(tool_shape.search(text) for text in texts)
        for tool_shape, request_words, shape in _TOPICS
    )


# "And in London?", "What about Cairo?", "How about 250?", "And Bob's?": the lead, then
# a few words that name new values; none of them asks something of its own
# a word of thanks or approval before a follow-up: "nice, and over in Vancouver?",
# "Thanks! And in London?"
_NODS = (
    r"(?:(?:nice|great|cool|ok|okay|thanks|thank you|perfect|awesome|lovely|good|wow|oh|ah)"
    r"[\s,!.]+)?"
)
_ELLIPTICAL = re.compile(
    rf"{_NODS}(?:and|what about|how about)\s+({_IN_SENTENCE}+?)\s*[?.!]*", re.I
)
_OWN_QUESTION = _words_of(
    "what why how who whom whose when where which does do did is are was were can could "
    "would should will shall that this these those it its you your me my i we us then "
    "thanks thank mean means else more"
)


def followup_tools(
    tools: Sequence[Mapping[str, Any]], items: Sequence[Mapping[str, Any]]
) -> list[str]:
    """The offered tools the previous turn called, when the user's latest message only
    names new values for its request ("And in London?" after the time in Tokyo), or
    names a new place or thing for it in a question of its own (`_names_new_value`)
    that asks for one of those tools or goes on from it (`_GOES_ON`: "Could you look
    up Berlin too?", "Is Tesla doing better?"): it asks for them again. The 1.5B
    answered such messages from the earlier answers: "It's 19:05 in London."
    (Tokyo's time), "Bob's number is 555-0202." (made up)."""
    latest = _latest_user_index(items)
    previous = _latest_user_index(items[:latest]) if latest else 0
    by_name = {str(tool.get("name")): tool for tool in tools}
    calls = [item for item in items[previous:latest] if item.get("type") == "function_call"]
    request = latest_request(items).strip()
    called = [
        name
        for name in dict.fromkeys(str(c.get("name")) for c in calls)
        if name in by_name and not _other_day(by_name[name], request)  # "And tomorrow?"
    ]
    match = _ELLIPTICAL.fullmatch(request)
    if match is not None:
        rest = _words(match.group(1))
        if 1 <= len(rest) <= 4 and not set(rest) & _OWN_QUESTION:
            return called
    if _names_new_value(request, calls, items[:latest]) and (
        _GOES_ON.search(request)
        or any(_asks_for(by_name[name], request) for name in called)
        or (
            _FOLLOW_OPENER.match(request)
            and _NEW_PLACE.search(request)
            and not _NAME_LIST.search(request)  # one place, not a list of them
        )
    ):
        return called
    return []


# "Could you look up Berlin too?", "Is Tesla doing better?", "Is it sunnier in Cairo?",
# "How many hours ahead of London is that?": words that set a new value beside the
# previous request's
_GOES_ON = re.compile(
    r"\b(?:too|also|as well|either|instead|compared?|than|ahead|behind|difference"
    r"|better|worse|more|less)\b|\b\w{3,}(?:er|ier)\s+(?:in|at|there|today|now)\b",
    re.I,
)
_NAME = re.compile(r"(?<=\s)[A-Z][\w'’-]*")
# "What about for my friend in Buenos Aires?", "And my cousin in Honolulu, is it even
# the same day for her?", "nice, and over in Vancouver? my cousin lives there": a
# follow-up's opening, and a place named in it
_FOLLOW_OPENER = re.compile(rf"\s*{_NODS}(?:and|what about|how about)\b", re.I)
_NEW_PLACE = re.compile(_PLACED)


def _names_new_value(
    request: str, calls: Sequence[Mapping[str, Any]], before: Sequence[Mapping[str, Any]]
) -> bool:
    """Whether `request` is a question or a request that names something by a capital
    word (not its first) that nobody said before it, after a turn whose calls took a
    name or a code (a city, a ticker, a time zone, a currency): "Is it warmer in
    Madrid?" after the weather in Rome. The 1.5B answered such messages with no call
    and a made-up figure ("Yes, it's warmer in Madrid: 24°C.")."""
    if "?" not in request and not set(_words(request)) & _REQUEST_WORDS:
        return False
    if not any(_takes_a_name(str(call.get("arguments") or "")) for call in calls):
        return False
    said = set(_words(conversation_text(None, before)))
    return any(
        word.lower() != "i" and not set(_words(word)) <= said for word in _NAME.findall(request)
    )


def _unrelated(
    name: str, tools: Sequence[Mapping[str, Any]], items: Sequence[Mapping[str, Any]]
) -> bool:
    """A first call for the user's latest message to a tool, when that message asks
    for none of the tools (`asks_for_any`) and no earlier turn called this one (so
    "And in Berlin?" after the weather in Paris may call the weather again). Its
    values may all have been said: "Say hello in French." -> `define_word({"word":
    "hello"})`, "What language do they speak in Brazil?" -> `get_weather({"city":
    "Brazil"})`, "I'm feeling a bit tired today." -> `word_count` of the message.
    Asked whether such a call gives what the message asks for, the 1.5B said yes
    (`confirm_body`); the answer it then wrote from the result was mostly the one it
    knew anyway ("Bonjour", "Portuguese").

    Also such a call to a tool the message does not ask for (`_asks_for`) when it
    names outright what no offered tool gives (`_NAMED_TOPICS`): asked "What time is
    it in Berlin?" with a weather tool and a converter (whose description says
    "time"), the 1.5B called the weather, said yes when asked whether that gives the
    time, converted the temperature and answered that Berlin's time was 48.2 °F.

    And any first call for the message to a tool that gives only what holds now, for a
    message about another day (`_other_day`), or to a tool that does not do what the
    message tells it to (`_undone_action`), even where an earlier turn called it."""
    latest = _latest_user_index(items)
    if any(item.get("type") == "function_call_output" for item in items[latest:]):
        return False
    request = latest_request(items)
    tool = next((t for t in tools if t.get("name") == name), None)
    if tool is not None and (_other_day(tool, request) or _undone_action(tool, request)):
        return True
    if any(called == name for called, _ in answered_calls(items[:latest])):
        return False
    if not asks_for_any(tools, items):
        return True
    return tool is not None and not _asks_for(tool, request) and _untooled_named(tools, request)


# a message that tells the assistant to act ("Delete Bob from my address book.",
# "Cancel my reminder about the dentist.", "Translate 'good night' into German."):
# the verb it opens with, after "please" or "can you"
_ACTION = re.compile(
    r"\s*(?:(?:please|kindly|can you|could you|would you|will you)\s+)*"
    r"(delete|remove|erase|cancel|book|reserve|order|buy|purchase|send|email|e-mail|text"
    r"|message|call|phone|ring|play|pay|transfer|translate|post|tweet|upload|download"
    r"|install|print|forward|unsubscribe|rename"
    # "Set a timer for 20 minutes." went to `calculate("20 * 60")`
    # (not "turn" or "switch" alone: "Turn 5 miles into km" asks for the converter)
    r"|set|stop|schedule|mute|unmute|lock|unlock|turn (?:on|off)|switch (?:on|off))\b",
    re.I,
)


# a message that opens with a noun that is a verb too, its subject: "phone plan is 45
# euros a month. how many US dollars is that?" (not "Phone Bob.")
_NOUN_OPENING = re.compile(r"\s*\w+(?:\s+\w+)?\s+(?:is|are|was|were|costs?|has|had)\b", re.I)


def _undone_action(tool: Mapping[str, Any], request: str) -> bool:
    """Whether `request` tells the assistant to act (`_ACTION`) and `tool`'s name and
    description never say that verb in any form: told "Delete Bob from my address
    book.", the 1.5B searched the contacts (whose description speaks of the address
    book) and answered "I will delete Bob from my address book."; told to cancel a
    reminder it would create one."""
    action = _ACTION.match(request)
    if action is None or _NOUN_OPENING.match(request):
        return False
    verb = action.group(1).lower().split()[0]  # "turn" of "turn off"
    verbs = {verb, *_SAME_ACTS.get(verb, ())}
    return not any(_related(v, word) for v in verbs for word in _words(_tool_text(tool)))


# acts a tool may say in other words: "Set a reminder to submit the report at 17:00."
# is what `create_reminder` ("Create a reminder") does
_SAME_ACTS = {
    "set": ("create", "add", "make", "new"),
    "schedule": ("create", "add", "make", "new", "book"),
    "book": ("reserve",),
    "reserve": ("book",),
}


def _untooled_named(tools: Sequence[Mapping[str, Any]], request: str) -> bool:
    """Whether `request` names outright what a weather, clock, dictionary or stock tool
    gives (`_NAMED_TOPICS`) and no offered tool is of that kind."""
    texts = [_tool_text(tool) for tool in tools]
    return any(
        named.search(request) and not any(shape.search(text) for text in texts)
        for shape, named in _NAMED_TOPICS
    )


_OTHER_DAY = re.compile(
    r"\b(?:tomorrow|yesterday|the day (?:after|before)|(?:next|last|coming) "
    rf"(?:week|month|year|weekend|night|{_DAYS})|this (?:coming )?weekend|on (?:{_DAYS})"
    r"|in (?:\d+|a few|two|three) (?:days|weeks)"
    # "what was apple's share price back in 2010?" had today's price answered as 2010's
    r"|(?:back )?in (?:19|20)\d\d|(?:\d+|a few|two|three|some) (?:days|weeks|months|years) ago)\b",
    re.I,
)
_NOW_ONLY = re.compile(r"\b(?:current|currently|today's|latest|live|right now)\b", re.I)
_ANY_DAY = re.compile(
    r"\b(?:forecasts?|tomorrow|yesterday|history|historical|past|future|dates?|days?)\b", re.I
)


def other_day_tools(
    tools: Sequence[Mapping[str, Any]], items: Sequence[Mapping[str, Any]]
) -> list[str]:
    """The offered tools the user's latest message asks for about another day than
    today, which give only what holds now (`_other_day`)."""
    request = latest_request(items)
    return [
        str(tool.get("name"))
        for tool in tools
        if _other_day(tool, request) and _asks_for(tool, request)
    ]


def _other_day(tool: Mapping[str, Any], request: str) -> bool:
    """Whether `request` asks about another day than today ("What's the weather
    forecast for Berlin tomorrow?", "What was Apple's stock price last week?") and
    `tool` says it gives only what holds now ("Get the current weather for a city"),
    and is no clock (which a time on another day is worked out from). The 1.5B called
    the weather for tomorrow's forecast and gave today's as tomorrow's."""
    text = _tool_text(tool)
    return (
        bool(_OTHER_DAY.search(request))
        and bool(_NOW_ONLY.search(text))
        and not _ANY_DAY.search(text)
        and not _CLOCK_TOOL.search(text)
    )


def unrelated(
    calls: Sequence[tuple[str, str]],
    tools: Sequence[Mapping[str, Any]],
    items: Sequence[Mapping[str, Any]],
    instructions: str | None = None,
) -> bool:
    """Whether `review_calls` (with `grounding`) rejects one of these calls only as an
    unrelated call (`_unrelated`): a real tool, every value said, for a message that
    asks for none of the tools."""
    by_name = {tool.get("name"): tool for tool in tools}
    said = conversation_text(instructions, items)
    request = latest_request(items)
    for name, arguments in calls:
        tool = by_name.get(name)
        if tool is None or unsaid_numbers(arguments, said):
            continue
        if ungrounded_values(arguments, tool, said, request):
            continue
        if _unrelated(name, tools, items):
            return True
    return False


def _unasked_next(
    tool: Mapping[str, Any], request: str, items: Sequence[Mapping[str, Any]]
) -> bool:
    """A call to `tool`, which the user's latest message does not ask for, after a call
    made for that message has returned a result (not an error): asked to remind them
    to water the plants, the 1.5B set the reminder, then searched the contacts for
    "plants" and counted the words of the result; told "I'm feeling a bit tired",
    it counted the words, then searched the contacts for "Tired"."""
    if _asks_for(tool, request):
        return False
    since = items[_latest_user_index(items) :]
    return any(
        item.get("type") == "function_call_output"
        and not str(item.get("output", "")).startswith("Error")
        for item in since
    )


_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*(?:%|percent\b|per cent\b)", re.I)
_HUNDREDTHS = re.compile(r"/\s*100(?![\d.])|\*\s*0?\.01(?!\d)")


def _whole_percent(arguments: str, tool: Mapping[str, Any], request: str) -> str | None:
    """A percentage of the user's message (`3.5 percent`) that a calculator call uses
    as a whole number: asked "What's 3.5 percent of 2000?", the 1.5B called
    `3.5 * 2000` and answered 7000. Written `3.5%`, `3.5 / 100` or `0.035` it is
    right (as is any expression that divides by 100 somewhere)."""
    if not _calculator(tool):
        return None
    try:
        parsed = json.loads(arguments or "{}")
    except json.JSONDecodeError:
        return None
    for expression in (leaf for leaf in _leaves(parsed) if isinstance(leaf, str)):
        if _HUNDREDTHS.search(expression):
            continue
        percents = [str(n) for n in _PERCENT.findall(request)]
        for number in dict.fromkeys(percents):
            if _NUMBER.findall(request).count(number) > percents.count(number):
                continue  # also said as a plain number: "Increase 50 by 50%" -> 50 * 1.5
            fraction = float(number) / 100
            if any(abs(float(n) - fraction) < 1e-9 for n in _NUMBER.findall(expression)):
                continue  # as a fraction: 0.035 for 3.5 percent
            bare = re.search(rf"(?<![\d.]){re.escape(number)}(?![\d.])(?!\s*%)", expression)
            if bare:
                return number
    return None


_OPERATOR = re.compile(r"^(\*\*|[-+*/%^])")


def _reapplied(arguments: str, items: Sequence[Mapping[str, Any]]) -> tuple[str, str] | None:
    """(expression, result) of a call made for the user's latest message whose result
    this call's `arguments` take and apply the expression's own last step to again,
    with a number the message says fewer times than the calls would then use it; or
    take with nothing new from the message (`_used_up`).

    Asked to "Calculate 45 times 12 minus 30", the 1.5B called `45 * 12 - 30` (510),
    then `510 - 30`, then divided by 3: each result taken for a step still to do.
    ("2 + 2, then add 2 more" may take `+ 2` twice: the message says 2 three times.)
    """
    try:
        parsed = json.loads(arguments or "{}")
    except json.JSONDecodeError:
        return None
    written = ["".join(str(leaf).split()) for leaf in _leaves(parsed) if isinstance(leaf, str)]
    since = items[_latest_user_index(items) :]
    mentioned = _NUMBER.findall(latest_request(items))
    outputs = {
        str(item.get("call_id")): str(item.get("output") or "")
        for item in since
        if item.get("type") == "function_call_output"
    }
    # the numbers the calls made for the latest message have used: not a failed
    # call's, which worked nothing out
    used = _NUMBER.findall(
        " ".join(
            str(item.get("arguments") or "")
            for item in since
            if item.get("type") == "function_call"
            and not outputs.get(str(item.get("call_id")), "").startswith("Error")
        )
    )
    # every expression the answered calls for the message evaluated, in order
    done: list[str] = []
    for item in since:
        if item.get("type") != "function_call" or str(item.get("call_id")) not in outputs:
            continue
        result = outputs[str(item.get("call_id"))].rpartition("=")[2].strip()
        try:
            earlier = json.loads(str(item.get("arguments") or "{}"))
        except json.JSONDecodeError:
            continue
        expressions = [leaf for leaf in _leaves(earlier) if isinstance(leaf, str)]
        done += expressions
        if not _NUMBER.fullmatch(result):
            continue
        for expression in expressions:
            for text in written:
                if _used_up(text, result, used, mentioned):
                    return expression, result
                tail = text[len(result) :] if text.startswith(result) else ""
                # the step this result's own expression ended with, or one an earlier
                # call for the message did: "187.50 * 1.10", "206.25 / 5", then
                # "41.25 * 1.10" (a 10% tip, on the bill and again on each share)
                for step, before in enumerate(done):
                    compact = "".join(before.split())
                    if not (_OPERATOR.match(tail) and compact.endswith(tail) and compact != tail):
                        continue
                    operand = _NUMBER.findall(tail)[-1:]
                    uses = _NUMBER.findall(compact).count(operand[0]) + 1 if operand else 0
                    if operand and _times_said(operand[0], latest_request(items)) < uses:
                        return " and then ".join(done[step:]), result
    return None


def _times_said(number: str, request: str) -> int:
    """How many times `request` says `number`: as itself, or as the factor of a
    percentage it says (10% as 0.1, 1.1 or 0.9)."""
    value = float(number)
    plain = [float(n) for n in _NUMBER.findall(request)].count(value)
    factors = [float(p) / 100 for p in _PERCENT.findall(request)]
    return plain + sum(1 for f in factors if any(abs(value - v) < 1e-9 for v in (f, 1 + f, 1 - f)))


def _used_up(text: str, result: str, used: Sequence[str], mentioned: Sequence[str]) -> bool:
    """Whether `text` takes `result` and, of the message's numbers, only ones the calls
    made for it have used as often as the message says them: asked "What's 20% of
    150?", the 1.5B called `20% of 150` (30), then `30 * 150 / 100` and answered 45.
    ("Take 15% of 80, then add it to 80" may use 80 twice: the message says it twice;
    `45 * 12` then `540 - 30` brings in 30, which no call has used.)"""
    numbers = _NUMBER.findall(text)
    if result not in numbers:
        return False
    numbers.remove(result)
    said = [n for n in numbers if n in mentioned]
    return bool(said) and all(used.count(n) + numbers.count(n) > mentioned.count(n) for n in said)


_OPERATION = re.compile(
    r"square root|\bsqrt\b|\bsquared?\b|\bcubed?\b|\bplus\b|\bminus\b|\btimes\b"
    r"|\bmultipl\w*|\bdivid\w*|\bsubtract\w*|\badd\b|\bsum\b|\bproduct\b"
    r"|\bpercent(?:age)?\b|\bper cent\b|%|\bpower\b|\bfactorial\b|\bhalf\b|\bdouble\b"
    r"|\btwice\b|\blog\w*|\bln\b|\bsin\b|\bcos\b|\btan\b|\d\s*!"
    r"|(?<=\d)\s*(?:\*\*|[-+*/×÷^])(?=\s*\(?\d)",
    re.I,
)
# words of a request with steps its one operation word does not show: an average
# or a mean divides by a count nobody says, "rounded" or "then" is a step of its own
_MORE_STEPS = re.compile(
    r"\b(?:average|mean|median|total|round\w*|then|after|afterwards|next|result|"
    r"finally|also|convert\w*|and then)\b",
    re.I,
)


def calculated(tools: Sequence[Mapping[str, Any]], items: Sequence[Mapping[str, Any]]) -> bool:
    """Whether an offered calculator was called for the user's latest message."""
    return bool(_called_since(items) & calculators(tools))


def asked_tools(tools: Sequence[Mapping[str, Any]], items: Sequence[Mapping[str, Any]]) -> set[str]:
    """The names of the offered tools the user's latest message asks for (`_asks_for`)."""
    request = latest_request(items)
    return {str(tool.get("name")) for tool in tools if _asks_for(tool, request)}


def calculators(tools: Sequence[Mapping[str, Any]]) -> set[str]:
    """The names of the offered calculators."""
    return {str(t.get("name")) for t in tools if _calculator(t)}


def _calculator(tool: Mapping[str, Any]) -> bool:
    """Whether `tool` is of the calculator's kind (`_KINDS`)."""
    described = _tool_text(tool)
    return bool(set(_words(described)) & _KINDS[0][0])


def _converter(tool: Mapping[str, Any]) -> bool:
    """Whether `tool` is of the unit converter's kind (`_KINDS`)."""
    return bool(set(_words(_tool_text(tool))) & _KINDS[1][0])


def _one_step_done(
    name: str, tool: Mapping[str, Any], items: Sequence[Mapping[str, Any]]
) -> tuple[str, str] | None:
    """(expression, result) of a calculator call for the user's latest message when
    that message asks for one operation (one operation word or sign, no word of a
    further step: `_MORE_STEPS`), the calls made for it have used every number it
    says, and this call to `name` would be another calculation: asked "What's 20% of
    150?", the 1.5B called `20% * 150` (30), then `30 * 2` and `60 / 100`, and
    answered 0.6. ("What is 25% of 80 plus 12?" asks for two operations, "the
    average of 4, 8 and 12" divides by a count the message does not say.)"""
    if not _calculator(tool):
        return None
    request = latest_request(items)
    if len(_OPERATION.findall(request)) != 1 or _MORE_STEPS.search(request):
        return None
    since = items[_latest_user_index(items) :]
    calls = {
        str(item.get("call_id")): item
        for item in since
        if item.get("type") == "function_call" and item.get("name") == name
    }
    used = _NUMBER.findall(" ".join(str(c.get("arguments") or "") for c in calls.values()))
    if any(number not in used for number in _NUMBER.findall(_THOUSANDS.sub("", request))):
        return None
    for item in since:
        if item.get("type") != "function_call_output" or str(item.get("call_id")) not in calls:
            continue
        result = str(item.get("output") or "").rpartition("=")[2].strip()
        try:
            arguments = json.loads(str(calls[str(item.get("call_id"))].get("arguments") or "{}"))
        except json.JSONDecodeError:
            continue
        expression = next((leaf for leaf in _leaves(arguments) if isinstance(leaf, str)), None)
        if expression is not None and _NUMBER.fullmatch(result):
            return expression, result
    return None


# where a request's first step ends: "Convert 50 F to Celsius, then add 5 to it.",
# "... and then ...", "What is 12.5% of 640? Then ..."
_NEXT_STEP = re.compile(r"(?:[,.;:?!]\s*|\s+)(?:and\s+)?then\b|,\s+", re.I)


def _out_of_order(
    name: str,
    tools: Sequence[Mapping[str, Any]],
    items: Sequence[Mapping[str, Any]],
) -> tuple[str, list[str]] | None:
    """(the request's first step, the tools it asks for) when a call for the user's
    latest message, before any other, takes a later step instead: asked to "Convert
    50 F to Celsius, then add 5 to it.", the 1.5B called `50 + 5` first, converted 55 F
    and answered 12.78. Only where the first step asks for other tools than `name`
    and a later step asks for `name` (`_asks_for`)."""
    if latest_outputs(items):
        return None
    request = latest_request(items).strip()
    parts = _NEXT_STEP.split(request, maxsplit=1)
    if len(parts) < 2:
        return None
    head, rest = parts[0].strip(), parts[1]
    tool = next((t for t in tools if t.get("name") == name), None)
    if tool is None or _asks_for(tool, head) or not _asks_for(tool, rest):
        return None
    first = [t for t in tools if t is not tool and _asks_for(t, head)]
    # "Convert 60 EUR to USD" shares "convert" with a unit converter too: offered
    # both, the 1.5B took the unit converter, which refused euros
    fitting = [t for t in first if _asks_for_kind(t, head)] or first
    return (head, [str(t.get("name")) for t in fitting]) if first else None


def _misbound(arguments: str, tool: Mapping[str, Any], request: str) -> tuple[str, str] | None:
    """(the expression, how to write it) when a calculator expression binds a request's
    last step to one number where the request applies it to the steps before: asked
    to "Convert 60 EUR to USD, subtract 10, then divide the result by 2", the 1.5B
    called `65.22 - 10 / 2` (60.22). Only for `a + b * n` or `a - b / n` (and the
    like) where the request's last step, after "then" or a comma, says n and not b."""
    steps = _NEXT_STEP.split(request.strip())
    if len(steps) < 2 or not _calculator(tool):
        return None
    last = _NUMBER.findall(steps[-1])
    try:
        parsed = json.loads(arguments or "{}")
    except json.JSONDecodeError:
        return None
    for expression in (leaf for leaf in _leaves(parsed) if isinstance(leaf, str)):
        try:
            tree = ast.parse(expression.strip(), mode="eval").body
        except SyntaxError:
            continue
        if not (
            isinstance(tree, ast.BinOp)
            and isinstance(tree.op, ast.Add | ast.Sub)
            and isinstance(tree.right, ast.BinOp)
            and isinstance(tree.right.op, ast.Mult | ast.Div)
            and isinstance(tree.right.right, ast.Constant)
        ):
            continue
        inner, step = tree.right.left, tree.right.right
        said = ast.get_source_segment(expression.strip(), step)
        bound = ast.get_source_segment(expression.strip(), inner)
        if said in last and not (bound and set(_NUMBER.findall(bound)) & set(last)):
            sign = "+" if isinstance(tree.op, ast.Add) else "-"
            times = "*" if isinstance(tree.right.op, ast.Mult) else "/"
            left = ast.get_source_segment(expression.strip(), tree.left)
            return expression.strip(), f"({left} {sign} {bound}) {times} {said}"
    return None


def _object(arguments: str) -> dict[str, Any] | None:
    """A call's arguments as a JSON object, or None."""
    try:
        parsed = json.loads(arguments or "{}")
    except json.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _answered_calls_to(
    name: str, items: Sequence[Mapping[str, Any]]
) -> Iterator[tuple[str, dict[str, Any], str]]:
    """(arguments as written, as an object, output) of each call to `name` in `items`
    that came back with a result (not an error)."""
    outputs = {
        str(item.get("call_id")): str(item.get("output") or "")
        for item in items
        if item.get("type") == "function_call_output"
    }
    for item in items:
        output = outputs.get(str(item.get("call_id")))
        if item.get("type") != "function_call" or item.get("name") != name:
            continue
        earlier = _object(str(item.get("arguments") or ""))
        if output and not output.startswith("Error") and earlier is not None:
            yield str(item.get("arguments")), earlier, output


def _strings(arguments: Mapping[str, Any]) -> dict[str, str]:
    return {k: _spelled(v) for k, v in arguments.items() if isinstance(v, str)}


def _last_result(items: Sequence[Mapping[str, Any]]) -> str | None:
    """The last result (not an error) of a call made for the user's latest message."""
    results = [
        str(item.get("output") or "")
        for item in items[_latest_user_index(items) :]
        if item.get("type") == "function_call_output"
    ]
    return next((o for o in reversed(results) if o and not o.startswith("Error")), None)


def _converted_again(
    name: str, arguments: str, items: Sequence[Mapping[str, Any]]
) -> tuple[str, str] | None:
    """(the earlier call's arguments, the last result) when a call for the user's
    latest message repeats an earlier call for it with the same words (units,
    currencies, place) on a number the message does not say: asked to "Convert 250
    GBP to EUR, then subtract 100 from it", the 1.5B converted, subtracted (191.14),
    then converted 191.14 "GBP" to EUR again and answered with that."""
    parsed = _object(arguments)
    if parsed is None:
        return None
    numbers = [_spelled(v) for v in parsed.values() if isinstance(v, int | float)]
    request = _THOUSANDS.sub("", latest_request(items))
    if not _strings(parsed) or not numbers or all(_occurs(n, request) for n in numbers):
        return None
    since = items[_latest_user_index(items) :]
    last = _last_result(items)
    for written, earlier, output in _answered_calls_to(name, since):
        if _strings(parsed) == _strings(earlier):
            return written, last or output
    return None


def _mispaired(name: str, arguments: str, items: Sequence[Mapping[str, Any]]) -> str | None:
    """Why a call pairs an earlier call's number with that call's target word (unit,
    currency) instead of its source, or None: asked "And to yen?" after "Convert 20
    GBP to EUR.", the 1.5B converted 20 EUR to JPY."""
    parsed = _object(arguments)
    if parsed is None:
        return None
    for _, earlier, output in _answered_calls_to(name, items):
        number = next(
            (
                _spelled(v)
                for k, v in parsed.items()
                if isinstance(v, int | float)
                and not isinstance(v, bool)
                and _spelled(earlier.get(k)) == _spelled(v)
            ),
            None,
        )
        words = set(_strings(earlier).values())
        if number is None or words == set(_strings(parsed).values()):
            continue  # no number of its own, or the same words swapped ("the other way?")
        for key, value in parsed.items():
            was = earlier.get(key)
            if not (isinstance(value, str) and isinstance(was, str)):
                continue
            if _spelled(value) != _spelled(was) and _spelled(value) in words:
                return Correction(
                    f"In your call to {name}, {number} is in {value}, but {number} was in "
                    f"{was}: {output.strip()}\nMy latest message is: "
                    f"{latest_request(items).strip()}\nCall {name} for it with {number} in "
                    f"{was}, or with the amount in {value} that this result gives."
                )
    return None


def _unit_word(word: str) -> str:
    word = word.strip().lower().lstrip("°")
    return word[:-1] if len(word) > 2 and word.endswith("s") else word


def _unchanged(arguments: str) -> tuple[str, str] | None:
    """(from, to) when a call converts to what it converts from (`from_unit` "hours",
    `to_unit` "hour"): asked "How many hours ahead of London is that?" after Tokyo's
    time, the 1.5B converted 19 hours to hours and answered "19 hours ahead"."""
    parsed = _object(arguments) or {}
    for key, value in parsed.items():
        other = parsed.get("to_" + key.removeprefix("from_"))
        if (
            key.startswith("from_")
            and isinstance(value, str)
            and isinstance(other, str)
            and _unit_word(value) == _unit_word(other)
        ):
            return value, other
    return None


# "Now multiply that by 4.", "Add 10% to it.", "Divide the result by 3."
_EARLIER_RESULT = re.compile(r"\b(?:that|it|this|the result|the answer|the total)\b", re.I)


def _took_the_input(
    arguments: str, tool: Mapping[str, Any], items: Sequence[Mapping[str, Any]]
) -> tuple[str, str, str] | None:
    """(the number used, the result meant, that result's output) when a calculator
    call for a message that works on "that" (the previous turn's result) uses the
    previous turn's input instead of its result: after "50 USD is 46.00 EUR.", asked
    "Now multiply that by 4.", the 1.5B called `50 * 4`. A unit conversion is the
    same quantity either way, so only a calculator's call."""
    request = latest_request(items)
    if not _calculator(tool) or not _EARLIER_RESULT.search(request):
        return None
    latest = _latest_user_index(items)
    previous = _latest_user_index(items[:latest]) if latest else 0
    answered = answered_calls(items[previous:latest])
    results = [(called, output) for (_, called), output in answered.items() if "=" in output]
    if not results:
        return None
    earlier, output = results[-1]
    figures = _NUMBER.findall(_THOUSANDS.sub("", output.rpartition("=")[2]))
    if not figures:
        return None
    result = figures[0]
    used = _NUMBER.findall(arguments)
    # the result is in it, rounded ("46 + 50" for "Add that to what I started with."); not
    # `_said_number`, whose percentage forms take the 1 of `100 * (1 - 0.25)` for 92
    if any(abs(float(n) - float(result)) <= 0.51 * 10 ** -_decimals(n) for n in used):
        return None
    inputs = set(_NUMBER.findall(earlier))
    taken = next((n for n in used if n in inputs), None)
    return None if taken is None else (taken, result, " ".join(output.split()))


def _unconverted(
    arguments: str,
    tool: Mapping[str, Any],
    tools: Sequence[Mapping[str, Any]],
    items: Sequence[Mapping[str, Any]],
) -> tuple[str, str, str] | None:
    """(the number used, the result meant, that result's output) when a calculator
    call uses an amount that a conversion made for the same message converted, and
    not what it converted to: "The hotel in Montreal is 138 CAD a night. What's that
    in euros, and what do 4 nights plus 13% tax come to in euros?" went to
    `convert_currency(138 CAD -> EUR)` = 93.35, then `138 * 1.13`. Not when the
    message names the amount's unit twice or more, so may ask for a figure in it too
    ("... and the total in CAD?")."""
    if not _calculator(tool):
        return None
    converting = {
        str(other.get("name"))
        for other in tools
        if _converter(other) or _CURRENCY_TOOL.search(_tool_text(other))
    }
    used = [n for leaf in _leaves(_object(arguments) or {}) for n in _NUMBER.findall(str(leaf))]
    request = latest_request(items)
    latest = _latest_user_index(items)
    for (called, converted), output in answered_calls(items[latest:]).items():
        if called not in converting or _RAISED.search(output):
            continue
        leaves = list(_leaves(_object(converted) or {}))
        inputs = {float(n) for leaf in leaves for n in _NUMBER.findall(str(leaf))}
        figures = _NUMBER.findall(_THOUSANDS.sub("", output))
        result = next((n for n in figures if float(n) not in inputs), None)
        if result is None or any(float(n) == float(result) for n in used):
            continue
        units = [leaf for leaf in leaves if isinstance(leaf, str) and leaf.strip()]
        if units and len(re.findall(rf"\b{re.escape(units[0])}\b", request, re.I)) > 1:
            continue
        taken = next((n for n in used if float(n) in inputs), None)
        if taken is not None:
            return taken, result, " ".join(output.split())
    return None


_HOURS = "|".join(_NUMBER_WORDS[1:13])
# "quarter past five", "half past 3", "quarter to six", "twenty to nine", "10 minutes
# past 6", "half three" (half past, in British speech), "seven o'clock": a time of
# day in words (minutes in digits only before "minutes": "open 9 to 5" is a span)
_SPOKEN_TIME = re.compile(
    r"\b(?:(quarter|half|five|ten|twenty(?:[- ]five)?|\d{1,2}\s+minutes)\s+(past|to)\s+"
    rf"|(half)\s+)?(\d{{1,2}}|{_HOURS})\b(\s*o['’]clock)?",
    re.I,
)
_SPOKEN_MINUTES = {"quarter": 15, "half": 30, "five": 5, "ten": 10, "twenty": 20}
_AFTERNOON = re.compile(r"\b(?:afternoon|evening|tonight|night|pm|p\.m\.)\b", re.I)
# ("am" as the morning's, not in "I am busy")
_MORNING = re.compile(r"\bmorning\b|\ba\.m\.|(?<!\bi )\bam\b", re.I)


def _spoken_times(request: str) -> list[tuple[str, int, int]]:
    """The times of day `request` says in words: (as written, hour, minute)."""
    times = []
    for match in _SPOKEN_TIME.finditer(request):
        part, way, half, hour_text, oclock = match.groups()
        if not (part or half or oclock):
            continue  # a number alone is no time
        hour = int(hour_text) if hour_text.isdigit() else _NUMBER_WORDS.index(hour_text.lower())
        if hour > 23:
            continue
        if part:  # "twenty-five" is twenty and five; "10 minutes", ten
            digits = _NUMBER.findall(part)
            words = re.findall(r"[a-z]+", part.lower())
            minute = int(digits[0]) if digits else sum(_SPOKEN_MINUTES[w] for w in words)
        else:
            minute = 30 if half else 0
        if way and way.lower() == "to":
            hour, minute = (hour - 1) % 24, 60 - minute
        times.append((match.group().strip(), hour, minute))
    return times


def _misheard_time(name: str, arguments: str, items: Sequence[Mapping[str, Any]]) -> str | None:
    """Why a call's clock time is none the user's latest message says in words, or
    None: told "at quarter past five remind me the bins go out tonight", the 1.5B set
    the reminder for 19:30; "half three this afternoon" went to 15:00."""
    request = latest_request(items)
    spoken = _spoken_times(request)
    if not spoken:
        return None
    said = {(int(h) % 12, int(m)) for h, m in _CLOCK_TIME.findall(request)}
    said |= {(hour % 12, minute) for _, hour, minute in spoken}
    for leaf in _leaves(_object(arguments) or {}):
        for hour, minute in _CLOCK_TIME.findall(str(leaf)):
            if (int(hour) % 12, int(minute)) in said:
                continue
            words, told, at = spoken[0]
            later = _AFTERNOON.search(request) or (told < 7 and not _MORNING.search(request))
            meant = f"{told if told > 12 else told % 12 + (12 if later else 0):02d}:{at:02d}"
            return Correction(
                f"Your call to {name} uses {hour}:{minute}, but my message says "
                f'"{words}", which is {meant}. Call {name} again with {meant}.'
            )
    return None


def _argument_mistake(
    name: str,
    arguments: str,
    tool: Mapping[str, Any],
    tools: Sequence[Mapping[str, Any]],
    items: Sequence[Mapping[str, Any]],
) -> str | None:
    """`_grounding_reason`'s reason for a step written wrongly (`_misbound`,
    `_divided_total`, `_split_share`, `_mispaired`, `_mixed_units`,
    `_mixed_currencies`, `_unconverted`, `_unasked_unit`, `_wrong_way`,
    `_part_measure`, `_took_the_input`), done again (`_converted_again`) or changing
    nothing (`_unchanged`), or None."""
    misheard = _misheard_time(name, arguments, items)
    if misheard is not None:
        return misheard
    unchanged = _unchanged(arguments)
    if unchanged is not None:
        # after results, in words that lead to the answer: told only that the call
        # "changes nothing", the 1.5B answered with that ("The function convert_units
        # did not change the units.") where it had the answer, 9656.06 m
        source, target = unchanged
        last = _last_result(items)
        answer = (
            f"answer in plain sentences with the last result: {last}"
            if last
            else "answer in plain sentences"
        )
        return (
            f"Your call to {name} converts {source} to {target}, which changes nothing: "
            f"the value is in {target} already. If a step of my request is still not done, "
            f"call the function for it; otherwise {answer}"
        )
    misbound = _misbound(arguments, tool, latest_request(items))
    if misbound is not None:
        expression, meant = misbound
        return Correction(
            f"In {expression}, the last step applies only to the number before it, "
            "but my request applies that step to the result of the steps before it. "
            f"Call {name} again with those steps in parentheses: {meant}"
        )
    divided = _divided_total(arguments, tool, latest_request(items))
    if divided is not None:
        expression, total = divided
        return Correction(
            f"My message asks for a total, and {expression} divides it, which my message "
            f"does not ask for. Call {name} again with the total alone: {total}"
        )
    shared = _split_share(arguments, tool, latest_request(items))
    if shared is not None:
        expression, meant, why = shared
        return Correction(f"In {expression}, {why}. Call {name} again with {meant}")
    mispaired = _mispaired(name, arguments, items)
    if mispaired is not None:
        return mispaired
    mixed = _mixed_units(name, arguments, tool, tools, items) or _mixed_currencies(
        name, arguments, tool, tools, items
    )
    if mixed is not None:
        return mixed
    unconverted = _unconverted(arguments, tool, tools, items)
    if unconverted is not None:
        taken, result, output = unconverted
        return Correction(
            f"Your call to {name} uses {taken}, the amount you converted ({output}), "
            f"and my request goes on with what it came to. Call {name} again with "
            f"{result} in place of {taken}."
        )
    unasked_unit = (
        _unasked_unit(name, arguments, tool, tools, items)
        or _wrong_way(name, arguments, tool, items)
        or _part_measure(name, arguments, tool, items)
    )
    if unasked_unit is not None:
        return unasked_unit
    took = _took_the_input(arguments, tool, items)
    if took is not None:
        taken, result, output = took
        return Correction(
            f"My message works on the last result, {result} ({output}), and your call to "
            f"{name} uses {taken}, the number that result came from. Call {name} again "
            f"with {result} in place of {taken}."
        )
    again = _converted_again(name, arguments, items)
    if again is not None:
        earlier, result = again
        return (
            f"You already called {name} with {earlier} for my request, and its result "
            "went on to the next step. Do not do it again: if a step of my request is "
            "still not done, call the function for it; otherwise answer in plain "
            f"sentences with the last result: {result}"
        )
    return None


# "three flatmates and I", "2 friends and me", "four of my colleagues and I": a party
# counted without its writer; "split the bill evenly", "each person's share": a sum
# shared out
_PARTY = re.compile(
    rf"\b(\d+|{'|'.join(_NUMBER_WORDS)})\s+((?:[a-z]+\s+){{0,2}}[a-z]+s)\s+and\s+(?:i|me|myself)\b",
    re.I,
)
_SHARED = re.compile(
    r"\b(?:split|evenly|equally|each|per (?:person|head)|divided? (?:among|between))\b",
    re.I,
)


_TOTAL = re.compile(r"\b(?:total|altogether|combined|in all)\b", re.I)
# what asks for a division: a share, a mean, a rate, a part
_DIVIDED = re.compile(
    r"\b(?:divid\w*|split|average|mean|median|per|each|half|halve|quarter|third|ratio"
    r"|(?:my|your|our|his|her|their) share|percent(?:age)?|apiece|between|among)\b|%|/",
    re.I,
)


def _divided_total(arguments: str, tool: Mapping[str, Any], request: str) -> tuple[str, str] | None:
    """(the expression, its total undivided) when a calculator expression divides a
    sum by a number while the request asks for a total and for no division
    (`_DIVIDED`). Asked "If I bought one Apple share and one Microsoft share right
    now, what would I pay in total?", the 1.5B called `(189.5 + 415.2) / 2` after
    the two prices came back."""
    if not _calculator(tool) or not _TOTAL.search(request) or _DIVIDED.search(request):
        return None
    for expression in (
        leaf.strip() for leaf in _leaves(_object(arguments) or {}) if isinstance(leaf, str)
    ):
        try:
            tree = ast.parse(expression, mode="eval").body
        except SyntaxError:
            continue
        if (
            isinstance(tree, ast.BinOp)
            and isinstance(tree.op, ast.Div)
            and isinstance(tree.right, ast.Constant)
            and isinstance(tree.left, ast.BinOp)
            and isinstance(tree.left.op, ast.Add)
        ):
            return expression, ast.get_source_segment(expression, tree.left) or ""
    return None


def _shared_before(amount: str, request: str) -> bool:
    """Whether `request` says it shares something out (`_SHARED`) before it says
    `amount` (one number of an expression)."""
    said = _THOUSANDS.sub("", request)
    shared = _SHARED.search(said)
    at = re.search(rf"(?<![\d.]){re.escape(amount.strip())}(?![\d.])", said)
    return shared is not None and at is not None and shared.start() < at.start()


def _measure_word(word: str) -> bool:
    """Whether `word` names a unit, a span of time or money, not people ("3 kms and
    I", "two hours and I", "50 dollars and I")."""
    word = word.lower()
    return bool({word, word.removesuffix("s")} & (set(_UNIT_NAMES) | _TIME_SPANS | _CURRENCY_WORDS))


_TIME_SPANS = _words_of(
    "second seconds minute minutes hour hours day days week weeks month months year years times"
)


def _split_share(
    arguments: str, tool: Mapping[str, Any], request: str
) -> tuple[str, str, str] | None:
    """(the expression, how to write it, what is wrong) when a calculator expression
    shares out a sum the request splits among a party of people: dividing by the
    party it counts without its writer ("three flatmates and I" are four), or
    dividing only the sum's last number (`a + b / n`). Told "Three flatmates and I
    split the 2,150 rent plus a 96 internet bill evenly. What's my part?", the 1.5B
    called `2150 + 96 / 3`."""
    party = _PARTY.search(request)
    if not _calculator(tool) or not _SHARED.search(request):
        return None
    others, named = None, ""
    if party is not None and not _measure_word(party.group(2).split()[-1]):
        count = party.group(1).lower()
        others = int(count) if count.isdigit() else _NUMBER_WORDS.index(count)
        named = f"{party.group(1).lower()} {party.group(2)}"
    for expression in (
        leaf.strip() for leaf in _leaves(_object(arguments) or {}) if isinstance(leaf, str)
    ):
        try:
            tree = ast.parse(expression, mode="eval").body
        except SyntaxError:
            continue
        division, left = tree, ""
        if isinstance(tree, ast.BinOp) and isinstance(tree.op, ast.Add):
            division, left = tree.right, ast.get_source_segment(expression, tree.left) or ""
        # the sum shared out whole only where the share is said before its first amount
        # ("split the 2,150 rent plus a 96 internet bill"); "tickets are 30 each plus a
        # 12 fee split three ways" shares the fee alone
        partial = bool(left) and _shared_before(left, request)
        if not (
            isinstance(division, ast.BinOp)
            and isinstance(division.op, ast.Div)
            and isinstance(division.right, ast.Constant)
            and isinstance(division.right.value, int | float)
        ):
            continue
        by = division.right.value
        people = others + 1 if others is not None and by == others else by
        if not partial and people == by:
            continue
        shared = ast.get_source_segment(expression, division.left) or ""
        if partial:
            whole = f"({left} + {shared})"
        else:
            whole = shared if isinstance(division.left, ast.Constant) else f"({shared})"
            whole = f"{left} + {whole}" if left else whole
        why = []
        if partial:
            why.append(f"only {shared} is divided, but my message shares out the whole sum")
        if people != by:
            why.append(f"my message names {named} and me: {people:g} people, not {by:g}")
        return expression, f"{whole} / {people:g}", "; and ".join(why)
    return None


# a unit's names, each to one name: what a number in a message is measured in
_UNIT_NAMES = {
    name: unit
    for unit, names in (
        ("km", "km kilometer kilometers kilometre kilometres"),
        ("m", "m meter meters metre metres"),
        ("cm", "cm centimeter centimeters centimetre centimetres"),
        ("mi", "mi mile miles"),
        ("ft", "ft foot feet"),
        ("in", "inch inches"),
        ("kg", "kg kgs kilo kilos kilogram kilograms kilogramme kilogrammes"),
        ("g", "g gram grams gramme grammes"),
        ("lb", "lb lbs pound pounds"),
        ("oz", "oz ounce ounces"),
        ("st", "stone stones"),
        ("l", "l liter liters litre litres"),
        ("ml", "ml milliliter milliliters millilitre millilitres"),
        ("cup", "cup cups"),
        ("pt", "pint pints"),
        ("gal", "gal gallon gallons"),
        ("c", "°c celsius celcius centigrade"),
        ("f", "°f fahrenheit farenheit fahrenheight"),
    )
    for name in names.split()
}
# in a call's arguments a unit's short names are no other word ("in", "st", "C")
_ARGUMENT_UNITS = {**_UNIT_NAMES, "in": "in", "st": "st", "c": "c", "f": "f"}
_MEASURED = re.compile(r"(\d+(?:\.\d+)?)\s*(°?[a-z]+)", re.I)
_SUM_OR_DIFFERENCE = re.compile(r"(\d+(?:\.\d+)?)\s*[-+]\s*(\d+(?:\.\d+)?)")


def _mixed_pairs(
    expression: str, units: Mapping[str, str]
) -> Iterator[tuple[str, str, str, str, str]]:
    """(what it does, first, second, first's unit, second's unit) for each sum,
    difference or ratio in `expression` of two numbers that `units` (number -> unit or
    currency, `_measured`, `_priced`) gives in different units."""
    for does, shape in (("adds or subtracts", _SUM_OR_DIFFERENCE), ("divides", _RATIO)):
        for first, second in shape.findall(expression):
            one, other = units.get(first), units.get(second)
            if one is not None and other is not None and one != other:
                yield does, first, second, one, other


def _one_way(
    first: str, second: str, one: str, other: str, asked: str | None
) -> tuple[str, str, str]:
    """(number, from, to) of the conversion that puts a mixed pair in one unit: into
    the one the message asks in, if it names one of the two, else the second's."""
    return (second, other, one) if asked == one else (first, one, other)


def _mixed_units(
    name: str,
    arguments: str,
    tool: Mapping[str, Any],
    tools: Sequence[Mapping[str, Any]],
    items: Sequence[Mapping[str, Any]],
) -> str | None:
    """Why a calculator's expression adds or subtracts two numbers of the user's latest
    message that it measures in different units (or divides one by the other, of one
    dimension: a percentage of 165 lb that 40 kg is), while a unit converter is offered
    and no call for the message has used it, or None: told "My suitcase weighs 52
    pounds and the airline allows 23 kg. How many kilos over the limit am I?", the
    1.5B called `52 - 23`, then converted the 29 "pounds" to kilograms."""
    converters = [str(other.get("name")) for other in tools if _converter(other)]
    if not _calculator(tool) or not converters:
        return None
    if _called_since(items) & set(converters):
        return None
    request = latest_request(items)
    measured = _measured(request)
    for leaf in _leaves(_object(arguments) or {}):
        for does, first, second, one, other in _mixed_pairs(str(leaf), measured):
            if does == "divides" and _DIMENSIONS.get(one) != _DIMENSIONS.get(other):
                continue  # km by hours is a speed, not a slip
            number, source, target = _one_way(first, second, one, other, _asked_unit(request))
            return Correction(
                f"Your call to {name} {does} {first} and {second}, but my message gives "
                f"{first} in {one} and {second} in {other}. Call {converters[0]} first to "
                f"convert {number} {source} to {target}."
            )
        # any other use of a number the message measures in one of two units of a
        # dimension: "62 inches" against "158 cm total" went to `62 / 12 * 158`
        # (unless the message writes the operation between them: "52 pounds times
        # 23 kg"; "What percentage of my bodyweight is that?" writes none)
        said_how = _WRITTEN_OPERATION.search(request)
        used = [n for n in _NUMBER.findall(str(leaf)) if n in measured and not said_how]
        for number in used:
            unit = measured[number]
            for other_number, other in measured.items():
                if other != unit and _DIMENSIONS.get(other) == _DIMENSIONS.get(unit):
                    converted = (
                        f"{other_number} {other} to {unit}"
                        if _asked_unit(request) == unit
                        else f"{number} {unit} to {other}"
                    )
                    return Correction(
                        f"Your call to {name} uses {number} {unit}, but my message gives "
                        f"{other_number} in {other}. Call {converters[0]} first to convert "
                        f"{converted}."
                    )
    return None


# "how many ml short or over am I?", "how much more kg", "How far off am I, in
# kilograms?": the unit a message asks in
_ASKED_UNIT = re.compile(
    r"\bhow (?:many|much)\s+(?:more\s+|fewer\s+|less\s+)?(°?[a-z]+)"
    r"|\bin\s+(°?[a-z]+)\s*[?.!]*\s*$",
    re.I,
)


def _asked_unit(request: str) -> str | None:
    """The unit (`_UNIT_NAMES`) the message asks its figure in, or None."""
    asked = _ASKED_UNIT.search(request.strip())
    word = asked and (asked.group(1) or asked.group(2))
    return _UNIT_NAMES.get(word.lower()) if word else None


def _measured(request: str) -> dict[str, str]:
    """The message's numbers that it gives in a unit: number -> unit (the first, for
    a number given twice)."""
    measured: dict[str, str] = {}
    for number, word in _MEASURED.findall(_THOUSANDS.sub("", request)):
        unit = _UNIT_NAMES.get(word.lower())
        if unit is not None:
            measured.setdefault(number, unit)
    return measured


def _wrong_way(
    name: str, arguments: str, tool: Mapping[str, Any], items: Sequence[Mapping[str, Any]]
) -> str | None:
    """Why a unit conversion converts a number of the message's out of the unit the
    message asks its figure in, while another of its numbers is in another unit of
    that dimension, or None: asked "I'm 11 stone at the moment and aiming for 65 kg.
    How far off am I, in kilograms?", the 1.5B converted the 65 kg to stone and
    answered "10.2357 stone away"."""
    parsed = _object(arguments)
    request = latest_request(items)
    unit = _asked_unit(request)
    if not _converter(tool) or parsed is None or unit is None:
        return None
    units = [_ARGUMENT_UNITS.get(v.lower()) for v in parsed.values() if isinstance(v, str)]
    values = [_spelled(v) for v in parsed.values() if isinstance(v, int | float)]
    if len(units) != 2 or units[0] != unit or units[1] == unit or not values:
        return None
    measured = _measured(request)
    if measured.get(values[0]) != unit:
        return None
    for number, other in measured.items():
        if other != unit and _DIMENSIONS[other] == _DIMENSIONS[unit]:
            return Correction(
                f"My message asks for {unit}, and {values[0]} is in {unit} already. Call "
                f"{name} to convert {number} {other} to {unit} instead."
            )
    return None


def _part_measure(
    name: str, arguments: str, tool: Mapping[str, Any], items: Sequence[Mapping[str, Any]]
) -> str | None:
    """Why a unit conversion converts only the major part of a measure the user's
    latest message gives in two units (`compound_measures`), or None: told "I'm 5
    foot 9 and my daughter is 142 cm. how much taller than her am I, in cm?", the
    1.5B converted 5 ft to cm, took 142 from it and answered "0.341207 feet". (A
    conversion of the major part into the minor unit, 5 ft to inches, is a step
    toward the whole, not this mistake.)"""
    parsed = _object(arguments)
    if not _converter(tool) or parsed is None:
        return None
    units = [_ARGUMENT_UNITS.get(v.lower()) for v in parsed.values() if isinstance(v, str)]
    values = [v for v in parsed.values() if isinstance(v, int | float)]
    if len(units) != 2 or not values:
        return None
    for measure in compound_measures(latest_request(items)):
        if (
            float(values[0]) == measure.major
            and units[0] == measure.major_unit
            and units[1] != measure.minor_unit
        ):
            given = f"{measure.major:g} {measure.major_unit} {measure.minor:g} {measure.minor_unit}"
            whole = f"{measure.in_minor:g} {measure.minor_unit}"
            return Correction(
                f"My message gives {given}: that is {whole}, and your call to {name} "
                f"converts the {measure.major:g} {measure.major_unit} alone. Call {name} "
                f"to convert {whole} to {units[1] or 'the unit I ask for'}."
            )
    return None


def _unasked_unit(
    name: str,
    arguments: str,
    tool: Mapping[str, Any],
    tools: Sequence[Mapping[str, Any]],
    items: Sequence[Mapping[str, Any]],
) -> str | None:
    """Why a calculator's expression uses a number the user's latest message measures
    in another unit of the dimension it asks for ("how many ml"), after a unit
    conversion for the message, or None: told "Recipe wants 2.5 cups of milk and all
    ive got is a 500 ml carton. how many ml short or over am I?", the 1.5B converted
    the 500 ml to cups and answered `2.5 - 2.11338` = 0.38662, in cups. (Before any
    conversion, two units in one expression are `_mixed_units`'; a conversion written
    as a calculation, `5 * 1000` for "How many metres is 5 km?", is no mistake.)"""
    converters = [str(other.get("name")) for other in tools if _converter(other)]
    request = latest_request(items)
    unit = _asked_unit(request)
    if not _calculator(tool) or not _called_since(items) & set(converters) or unit is None:
        return None
    measured = _measured(request)
    for leaf in _leaves(_object(arguments) or {}):
        for number in _NUMBER.findall(str(leaf)):
            other = measured.get(number)
            if other is not None and other != unit and _DIMENSIONS[other] == _DIMENSIONS[unit]:
                return Correction(
                    f"My message asks how many {unit}, and your call to {name} uses "
                    f"{number} {other}. Call {converters[0]} first to convert {number} "
                    f"{other} to {unit}."
                )
    return None


_RATIO = re.compile(r"(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)")
# an operation written between two numbers (a unit's name after the first aside)
_WRITTEN_OPERATION = re.compile(
    r"\d\s*(?:[a-z]+\s+)?(?:times|plus|minus|multiplied by|divided by|over|[-+*/×÷x])\s*\d",
    re.I,
)
# what each unit of `_UNIT_NAMES` measures: a ratio of two of the same is a number
# only once both are in one unit ("40 kg of my 165 lb": convert first)
_DIMENSIONS = {
    **dict.fromkeys(("km", "m", "cm", "mi", "ft", "in"), "length"),
    **dict.fromkeys(("kg", "g", "lb", "oz", "st"), "mass"),
    **dict.fromkeys(("l", "ml", "cup", "pt", "gal"), "volume"),
    **dict.fromkeys(("c", "f"), "temperature"),
}


# money named in a message other than by "pound", which is a weight's name too
_MONEY_WORDS = _CURRENCY_WORDS - {"pound", "pounds"}


# a currency's names in a message, each to its code ("pound" is a weight's too; "£" is not)
_CURRENCY_NAMES = {
    name: code
    for code, names in (
        ("USD", "usd $ dollar dollars bucks"),
        ("EUR", "eur € euro euros"),
        ("GBP", "gbp £ quid sterling"),
        ("JPY", "jpy ¥ yen"),
        ("CHF", "chf franc francs"),
        ("CAD", "cad"),
        ("AUD", "aud"),
        ("INR", "inr rupee rupees"),
        ("CNY", "cny yuan"),
        ("MXN", "mxn peso pesos"),
    )
    for name in names.split()
}
_SYMBOLS = re.escape("$€£¥")
# "2,300 USD", "1,400 euros", "$45", "45$", "€1.20": an amount and its currency
_PRICED = re.compile(
    rf"([{_SYMBOLS}])\s?(\d+(?:\.\d+)?)|(\d+(?:\.\d+)?)\s?([{_SYMBOLS}]|[a-z]+\b)", re.I
)
# "How many dollars are left?", "How much in dollars?", "what's that in euros?": the
# currency asked in
_ASKED_MONEY = re.compile(
    r"\bhow (?:many|much)\s+(?:more\s+|fewer\s+|less\s+)?(?:in\s+)?([a-z]+)"
    r"|\bin\s+([a-z]+)\s*[?.!]*\s*$",
    re.I,
)


def _priced(request: str) -> dict[str, str]:
    """The message's numbers that it gives in a currency: number -> code (the first,
    for a number given twice)."""
    priced: dict[str, str] = {}
    for symbol, after, number, word in _PRICED.findall(_THOUSANDS.sub("", request)):
        code = _CURRENCY_NAMES.get((symbol or word).lower())
        if code is not None:
            priced.setdefault(after or number, code)
    return priced


def _mixed_currencies(
    name: str,
    arguments: str,
    tool: Mapping[str, Any],
    tools: Sequence[Mapping[str, Any]],
    items: Sequence[Mapping[str, Any]],
) -> str | None:
    """Why a calculator's expression adds, subtracts or divides two amounts of the
    user's latest message that it gives in different currencies, while a currency
    tool is offered and no call for the message has used it, or None: told "I'm paid
    2,300 USD a month and my rent here is 1,400 euros. How many dollars are left after
    rent?", the 1.5B called `2300 - 1400`. (`_mixed_units` does the same for units.)"""
    exchanges = [str(t.get("name")) for t in tools if _CURRENCY_TOOL.search(_tool_text(t))]
    if not _calculator(tool) or not exchanges or _called_since(items) & set(exchanges):
        return None
    request = latest_request(items)
    priced = _priced(request)
    asked = _ASKED_MONEY.search(request.strip())
    into = asked and _CURRENCY_NAMES.get((asked.group(1) or asked.group(2)).lower())
    for leaf in _leaves(_object(arguments) or {}):
        for _, first, second, one, other in _mixed_pairs(str(leaf), priced):
            number, source, target = _one_way(first, second, one, other, into)
            return Correction(
                f"Your call to {name} uses {first} and {second}, but my message gives "
                f"{first} in {one} and {second} in {other}. Call {exchanges[0]} first to "
                f"convert {number} {source} to {target}."
            )
    return None


def _remembered_factors(
    tool: Mapping[str, Any],
    arguments: str,
    tools: Sequence[Mapping[str, Any]],
    items: Sequence[Mapping[str, Any]],
    said: str,
) -> tuple[list[str], list[str]]:
    """(the fractions, the converters) when a calculator's expression holds a fraction
    of two significant digits or more that nobody said (`0.85`, `1.6`: short enough to
    pass `unsaid_numbers`), while the user's latest message asks for a currency or unit
    converter that no call for it has used: a rate or a factor from memory, where the
    converter gives it. Asked "I have 150 Swiss francs and 80 British pounds. How many
    euros is that altogether?", the 1.5B called `150 + 80 * 0.85` first."""
    if not _calculator(tool):
        return [], []
    request = latest_request(items)
    called = _called_since(items)
    asked = [
        other
        for other in tools
        if (_converter(other) or _CURRENCY_TOOL.search(_tool_text(other)))
        and _asks_for_kind(other, request)
    ]
    # "pounds" is a unit's word too: where the message names money in other words
    # ("euros", "$"), only a currency converter gives the rate
    money = [other for other in asked if _CURRENCY_TOOL.search(_tool_text(other))]
    if money and _requested(request, _MONEY_WORDS, _CURRENCY_AMOUNT):
        asked = money
    converters = [str(other.get("name")) for other in asked if str(other.get("name")) not in called]
    if not converters:
        return [], []
    numbers = said_numbers(said)
    fractions = [
        number
        for leaf in _leaves(_object(arguments) or {})
        for number in _NUMBER.findall(str(leaf))
        if "." in number and _significant_digits(number) >= 2 and not _said_number(number, numbers)
    ]
    return (fractions, converters) if fractions else ([], [])


def _grounding_reason(
    name: str,
    arguments: str,
    tool: Mapping[str, Any] | None,
    tools: Sequence[Mapping[str, Any]],
    items: Sequence[Mapping[str, Any]],
    said: str,
) -> str | None:
    """`review_calls`'s reason from the rules of `grounding`, or None."""
    by_name = {tool.get("name"): tool for tool in tools}
    request = latest_request(items)
    if tool is not None:
        unsaid = unsaid_numbers(arguments, said)
        fractions, converters = _remembered_factors(tool, arguments, tools, items, said)
        if unsaid or fractions:
            numbers = ", ".join(unsaid or fractions)
            # a number from memory: whatever could give it; a fraction: the converters
            givers = _sources(by_name, name, request) if unsaid else converters
            sources = " or ".join(givers) or "a conversion"
            return (
                f"Your call to {name} used {numbers}, which nobody in this conversation "
                f"said. If another function gives that value ({sources}, say), call "
                f"that function first; otherwise call {name} with the numbers from my "
                "request."
            )
        loose = ungrounded_values(arguments, tool, said, request)
        if loose and name not in followup_tools(tools, items):
            # (a follow-up asks for the earlier turn's tool in its words: "And the
            # company behind Windows?" after Amazon's price, whose held re-sample's
            # `MSFT` had been sent to the text pass, which answered with the name)
            values = ", ".join(json.dumps(v, ensure_ascii=False) for v in loose)
            return (
                f"Your call to {name} used {values}, which nobody in this conversation "
                f"said, and my message does not ask for what {name} does. Answer me "
                f"directly in plain text, unless my request really needs {name}: then "
                "call it with values from my words."
            )
        if _unrelated(name, tools, items):
            return (
                f"My message does not ask for what {name} does. Answer me directly in "
                f"plain text, unless my request really needs {name}: then call it with "
                "values from my words."
            )
        percent = _whole_percent(arguments, tool, request)
        if percent is not None:
            return Correction(
                f"My message says {percent} percent, and your call to {name} uses {percent} "
                f"as a whole number. Call {name} again with it written as {percent}% or "
                f"{percent} / 100."
            )
    if tool is not None:
        mistake = _argument_mistake(name, arguments, tool, tools, items)
        if mistake is not None:
            return mistake
    reapplied = _reapplied(arguments, items)
    if reapplied is None and tool is not None:
        reapplied = _one_step_done(name, tool, items)
    if reapplied is not None:
        expression, result = reapplied
        return (
            f"{expression} = {result} has already done that step: {result} is the "
            "result. Answer me in plain sentences with it."
        )
    if tool is not None and _unasked_next(tool, request, items):
        return (
            f"My message does not ask for what {name} does, and the function you "
            "called has already returned what it asks for. Answer me in plain "
            "sentences with that result."
        )
    return None


def review_calls(
    calls: Sequence[tuple[str, str]],
    tools: Sequence[Mapping[str, Any]],
    items: Sequence[Mapping[str, Any]],
    instructions: str | None = None,
    *,
    grounding: bool = False,
) -> str | None:
    """Why the model should try again, or None when its calls may go out.

    Args:
        calls: The calls the model made, as (name, arguments JSON).
        tools: The tool definitions it was offered (Responses `function` tools).
        items: The conversation it was shown.
        instructions: The request's instructions.
        grounding: Also reject ungrounded calls (`ungrounded_values`).
    """
    by_name = {tool.get("name"): tool for tool in tools}
    said = conversation_text(instructions, items)
    request = latest_request(items)
    answered = answered_calls(items)
    earlier = answered_calls(items[: _latest_user_index(items)])
    for index, (name, arguments) in enumerate(calls):
        tool = by_name.get(name)
        order = _out_of_order(name, tools, items) if grounding and index == 0 else None
        # a reply that makes the first step's call too, after this one, goes out
        if order is not None and not any(called in order[1] for called, _ in calls):
            head, first = order
            return Correction(
                f'The first step of my request is "{head}", and {name} is for a later step. '
                f"Call {' or '.join(first)} for the first step now: the later steps use "
                "its result."
            )
        if tool is None and by_name:
            names = ", ".join(str(n) for n in by_name)
            return (
                f"There is no function named {name}. The functions are: {names}. If one "
                "of them provides what I asked for, call it; otherwise answer me directly "
                "in plain text."
            )
        if tool is not None:
            copied = copied_example_values(arguments, tool, said)
            if copied:
                values = ", ".join(json.dumps(v, ensure_ascii=False) for v in copied)
                copy = (
                    f"Your call to {name} used {values}, which only appear as an example in "
                    f"the description of {name}: nobody in this conversation said "
                    f"{'them' if len(copied) > 1 else 'it'}."
                )
                places = _places_for(tool, arguments, request)
                if places:
                    # "Calling a trekking agency in Kathmandu, is their office even open
                    # at this hour?": the 1.5B called `get_time("Asia/Tokyo")`, and told
                    # only to use "the values from my request" it answered "No office
                    # even open at this hour." with no call
                    return Correction(
                        f"{copy} My request names {' and '.join(places)}: call {name} "
                        f"with {'each' if len(places) > 1 else 'it'}."
                    )
                return (
                    f"{copy} Call {name} again with the values from my request, or, if my "
                    "request does not need it, answer in plain text."
                )
        reason = _grounding_reason(name, arguments, tool, tools, items, said) if grounding else None
        if reason is not None:
            return reason
        output = answered.get((name, _canonical(arguments)))
        if output is not None and (name, _canonical(arguments)) in earlier:
            # asked "And to yen?" after a conversion to euros, the 1.5B repeated the
            # euro call; told to "call the next function with this result", it wrote
            # prose instead of the new call
            return Correction(
                f"You called {name} with these arguments for my earlier message, and it "
                f"returned: {output}\nMy latest message is: {request.strip()}\nIf it needs "
                f"{name} again, call it with the new values from my latest message; "
                "otherwise answer in plain sentences."
            )
        if output is not None and output.startswith("Error"):
            # asked for Facebook's stock price, the 1.5B called `stock_price("FB")`,
            # was told the ticker is unknown, and called it again with "FB"; told only
            # not to repeat it, its forced re-sample copied the description's example
            # into another tool (`define_word("serendipity")`)
            error = error_text(output)
            return Correction(
                f"Your call to {name} with these arguments failed: {error}\n"
                f"The same arguments fail again. Call {name} with corrected arguments for "
                "what my request names (its proper code, symbol or full name), or, if no "
                "arguments would work, answer that you could not find it out."
            )
        if output is not None:
            return (
                f"You already called {name} with these arguments, and it returned: {output}\n"
                "Do not call it again. If my request needs another step, call the next "
                "function with this result; otherwise answer in plain sentences."
            )
    return None


def doubtful(
    name: str, tools: Sequence[Mapping[str, Any]], items: Sequence[Mapping[str, Any]]
) -> bool:
    """Whether a call to `name` (a real tool) is one the user's latest message does not
    ask for in words (`_asks_for`), so worth a check before it runs: "What language do
    they speak in Brazil?" -> `get_weather({"city": "Brazil"})` passes every other
    rule (Brazil was said)."""
    tool = next((t for t in tools if t.get("name") == name), None)
    return tool is not None and not _asks_for(tool, latest_request(items))


def may_reject(
    name: str,
    tools: Sequence[Mapping[str, Any]],
    items: Sequence[Mapping[str, Any]],
    *,
    grounding: bool = False,
) -> bool:
    """Whether `review_calls` could reject some call to `name`, before its arguments are
    known: its tool's description holds text a value could be copied from, a call
    to it has been answered already, or (`grounding`) the user's latest message does
    not ask for what it does."""
    tool = next((t for t in tools if t.get("name") == name), None)
    if tool is None or description_text(tool):
        return True
    if grounding and not _asks_for(tool, latest_request(items)):
        return True
    return any(called == name for called, _ in answered_calls(items))


def asks_for_any(tools: Sequence[Mapping[str, Any]], items: Sequence[Mapping[str, Any]]) -> bool:
    """Whether the user's latest message asks for what one of `tools` does."""
    request = latest_request(items)
    return any(_asks_for(tool, request) for tool in tools)


def unasked(
    calls: Sequence[tuple[str, str]],
    tools: Sequence[Mapping[str, Any]],
    items: Sequence[Mapping[str, Any]],
    instructions: str | None = None,
) -> bool:
    """Whether `review_calls` (with `grounding`) rejects these calls as ones nobody
    asked for: values nobody said, to a tool the user's message does not ask for, or
    a function no tool has, for a message that asks for none of the tools ("Hi!" ->
    `greeting`, a story -> `write_long_story`).

    The reason then asks the model for a plain-text answer, and that is what a
    re-sample nearly always writes; the provider can write it at once instead, on
    the first prompt, which llama.cpp still holds (no re-sample prompt to evaluate).
    A misnamed function for a message that does ask for a tool (`get_time` when
    asked the time, with `current_time` offered) is left to the re-sample, whose
    reason lists the real names.
    """
    by_name = {tool.get("name"): tool for tool in tools}
    request = latest_request(items)
    if any(name not in by_name for name, _ in calls):
        return bool(by_name) and not asks_for_any(tools, items)
    if review_calls(calls, tools, items, instructions) is not None:
        return False  # copied or repeated: the reason names what to do instead
    said = conversation_text(instructions, items)
    loose = False
    for name, arguments in calls:
        if unsaid_numbers(arguments, said):
            return False  # the reason asks for the function that gives the number
        tool = by_name.get(name)
        if tool is not None and _unasked_next(tool, request, items):
            return True
        if _reapplied(arguments, items) is not None or (
            tool is not None and _one_step_done(name, tool, items) is not None
        ):
            return True  # the reason asks for the answer in plain sentences
        if tool is not None and _unrelated(name, tools, items):
            return True
        loose = loose or bool(tool and ungrounded_values(arguments, tool, said, request))
    return loose
