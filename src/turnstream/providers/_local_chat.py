"""Between Responses-shaped requests and llama.cpp's Chat Completions, for the local model.

Pure: `build_chat_request` turns a `GenerationRequest` into the request dict that
xllamacpp's `handle_chat_completions` takes, and `ChunkTranslator` turns the chunks
it streams back into engine deltas. Both are unit-tested without the model. Neither
translates on its own: messages come from the bridge's `_chat_request.chat_messages`
(with this model's `ChatDialect`) and chunks are read by the bridge's
`_chat_stream.ChatChunkTranslator`; this module adds only what the small model needs
on top (our system prompt, calls replayed as text, calls recognised in text).

Two ways of offering tools, compared by bench/local_model.py on 32 cases (two runs,
1.5B): prompted 31 and 30 of 32 decisions right, native 29 and 30; every answer turn
in prose for both. On the 0.5B model native answer turns were 0 of 18 prose (they
echo the call), prompted 16 and 18 of 18.

- `"prompted"` (default): the tool list is written into our own system prompt in the
  shape the model imitates best, no `tools` field is sent, function calls in the
  history are replayed as the bare call objects the model writes, and calls are
  recognised in the reply text. The system prompt is byte-identical on every turn,
  so llama.cpp's prefix cache covers it, answer turns included.
- `"native"`: tools go to llama.cpp (Qwen's chat template and call parser) and the
  text fallback catches what its parser misses; on the answer turn right after tool
  outputs the tools are left out, since with them the model echoes template markup.

Around the model (bench/decisions.py measures them end to end):

- a request with tools decodes at temperature 0 unless it sets one;
- in the prompted strategy a tool result is handed back with the tools still on
  offer, and the result message says the request again and asks for its next step
  before the answer (`_result_message`);
- a call written as text to a tool that does not exist is held back, and the model
  is told the real names; it never reaches the user as raw JSON. For a message that
  asks for none of the tools ("Hi!" -> `greeting`) the turn goes to the plain-text
  pass at once instead, as for other calls nobody asked for (`unasked`);
- `ChunkTranslator(review=True)` holds back a text call that copies an example out
  of a tool description, repeats an answered call, names a function no tool has or
  (`grounding=True`) is ungrounded or carries a precise number nobody said
  (`_call_review`); the provider then re-samples once with the reason, reviews the
  re-sample too, and ends a turn whose re-sample is rejected again in plain text.
  A reply that opens as a call but does not parse as one (cut off by the token
  limit) is re-sampled the same way, never shown as raw JSON. A call written on a
  line after prose (`ReplySniffer`) follows the prose, which is out already:
  rejected, it is dropped without a re-sample. The review needs only the call, so
  it runs as soon as the first call's arguments close: an accepted call goes out
  then, while the model writes what follows it, and a rejected one ends the
  generation at once (`ChunkTranslator.done`). Native `tool_calls`
  chunks stream through unreviewed;
- in the prompted strategy a call is decoded under a lazy grammar built from the
  tools' schemas (`ChatPlan.grammar`, see `_call_grammar`), and
  `ChunkTranslator(stream_arguments=True)` streams such a call's arguments as they
  are generated, unless the review could still reject it;
- with the review, prose is held back only while it could be a non-answer: a reply
  that writes out the tool-result message, the user's request or (on a later turn)
  an earlier result message, or refuses a result that came back (`EchoGuard`), each
  re-sampled with its reason; or a first reply that opens by talking about calling a
  function (`TalkGuard`), re-sampled and held to calls when the message asks for a
  tool, else answered by the text pass.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from turnstream.engine.deltas import (
    Delta,
    ItemEndDelta,
    OutputTextDelta,
    ToolCallDelta,
)
from turnstream.providers._call_grammar import call_grammar
from turnstream.providers._call_review import (
    asked_tools,
    asked_with,
    asks_for_any,
    calculated,
    calculators,
    conversation_text,
    doubtful,
    error_text,
    figure_tools,
    final_results,
    followup_tools,
    latest_outputs,
    latest_request,
    may_reject,
    only_failures,
    other_day_tools,
    review_calls,
    said_numbers,
    tells_only,
    topic_tools,
    unasked,
    uncalled_names,
    uncalled_tools,
    unconverted_scale,
    underived,
    untooled_topic,
)
from turnstream.providers._chat_request import (
    ChatDialect,
    chat_messages,
    response_format,
    text_of,
)
from turnstream.providers._chat_stream import ChatChunkTranslator
from turnstream.providers._figure_guard import FigureGuard, ResultsGuard, TimeGuard
from turnstream.providers._talk_guard import TalkGuard
from turnstream.providers._text_calls import ArgumentStream, ParsedCall, ReplySniffer, call_name
from turnstream.providers.base import GenerationRequest, ProviderError

__all__ = [
    "ASSISTANT_NAME",
    "DEFAULT_MAX_OUTPUT_TOKENS",
    "ChatPlan",
    "ChunkTranslator",
    "ToolStrategy",
    "build_chat_request",
    "chat_tools",
    "default_temperature",
    "fit_arguments",
    "retry_body",
    "system_prompt",
]

ToolStrategy = Literal["prompted", "native"]

ASSISTANT_NAME = "turnstream assistant"
DEFAULT_MAX_OUTPUT_TOKENS = 1024
# Qwen's recommendation is 0.7; the 1.5B model keeps to the call format more reliably
# a little cooler, and answers stay varied enough for chat.
DEFAULT_TEMPERATURE = 0.3
# With tools on offer the choice of call and its arguments should not be a dice roll:
# such turns decode greedily unless the request sets a temperature.
TOOL_TURN_TEMPERATURE = 0.0

_PREAMBLE = (
    f"You are {ASSISTANT_NAME}, a helpful assistant running locally on this computer "
    "through turnstream. Answer clearly and concisely."
)
_TOOLS_HEADER = (
    "\n\n# Tools\n\n"
    "You can call these functions. Their signatures are inside <tools></tools>:\n<tools>"
)
_TOOLS_FOOTER = (
    "\n</tools>\n\n"
    "When a function can provide what the user asks for, reply with only a JSON object "
    'and nothing else: {"name": <function-name>, "arguments": <arguments-object>}. '
    "Take the argument values from the user's words, never from the examples in a "
    "function's description. "
    "You will then receive the function's result; if the request needs another step, "
    "call the next function with that result, else answer the user. "
    "If no function fits, or the user is just chatting, answer the user directly in "
    "plain text."
)
_LATER_TURN_NOTE = (
    "Reply to the user's latest message. If it asks for something a function provides "
    "(for a new city, amount, unit or value too), reply with only the JSON object that "
    "calls it, with values from that message and the conversation above: never work a "
    "result out yourself, nor reuse an earlier result for new values. If it needs no "
    "function, reply in plain text without mentioning functions."
)
"""After each user message of a conversation's later turns (prompted tools only).

On a later turn the 1.5B answered from the pattern of the earlier ones: "And 42
km?" after a call that converted 10 km got "42 km is 26.21371 miles." (the earlier
factor), no call; "What's 15% of 240?" after a greeting got "you can use the
`calculate` function ... The result is 36". Tune follow-ups end to end: 11 -> 12 of
14 with this note ("What about 250?" and the 15% now call; "And 42 km?" does not).
A first wording that also said "or its answer is already above" fixed those two
and broke two others the same way ("And in Chicago?" -> "It's 05:05 in Chicago.")."""
_IMAGE_PLACEHOLDER = "[an image was attached, but this model cannot see images]"


def chat_tools(tools: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Flat Responses function tools -> nested Chat Completions tools."""
    nested: list[dict[str, Any]] = []
    for tool in tools:
        if tool.get("type", "function") != "function":
            continue
        function: dict[str, Any] = {"name": tool["name"]}
        if tool.get("description"):
            function["description"] = tool["description"]
        function["parameters"] = tool.get("parameters") or {"type": "object", "properties": {}}
        nested.append({"type": "function", "function": function})
    return nested


def system_prompt(
    instructions: str | None,
    tools: Sequence[Mapping[str, Any]] = (),
) -> str:
    """Our system prompt: deterministic, so identical inputs give identical bytes."""
    parts = [_PREAMBLE]
    if instructions:
        parts.append("\n\n" + instructions.strip())
    if tools:
        parts.append(_TOOLS_HEADER)
        for tool in chat_tools(tools):
            parts.append("\n" + json.dumps(tool, ensure_ascii=False))
        parts.append(_TOOLS_FOOTER)
    return "".join(parts)


def _call_text(item: Mapping[str, Any]) -> str:
    # The arguments are replayed verbatim, even if invalid JSON: they are what was said.
    return f'{{"name": {json.dumps(item["name"])}, "arguments": {item.get("arguments") or "{}"}}}'


@dataclass(slots=True)
class ChatPlan:
    """One chat request for xllamacpp, plus how to read its reply."""

    body: dict[str, Any]
    tool_names: frozenset[str] = frozenset()
    sniff_calls: bool = False
    parallel_tool_calls: bool = True
    answer_turn: bool = False
    tools: tuple[Mapping[str, Any], ...] = ()
    """The function tools offered (to review the calls against)."""
    items: tuple[Mapping[str, Any], ...] = ()
    """The conversation the model was shown (to review the calls against)."""
    instructions: str | None = None
    grammar: str | None = None
    """The lazy call grammar (`_call_grammar`), for a prompted turn that sniffs calls."""
    prose_only: bool = False
    """The request has function tools but `tool_choice: "none"` (the runtime's last
    turn): the reply is decoded under a grammar that admits no call, so a call the
    model writes anyway cannot reach the user as raw JSON."""


def _offered_tools(request: GenerationRequest) -> list[Mapping[str, Any]]:
    tools = [t for t in request.tools if t.get("type", "function") == "function"]
    choice = request.tool_choice
    if choice == "none":
        return []
    if isinstance(choice, Mapping) and choice.get("type") == "allowed_tools":
        allowed = {t.get("name") for t in choice.get("tools", ())}
        tools = [t for t in tools if t["name"] in allowed]
    return tools


def _forced_call_schema(
    tools: Sequence[Mapping[str, Any]], choice: str | Mapping[str, Any]
) -> dict[str, Any] | None:
    """A JSON schema that only admits a call object, when the request forces a call."""
    if isinstance(choice, Mapping) and choice.get("type") == "function":
        tools = [t for t in tools if t["name"] == choice.get("name")]
    elif choice != "required":
        return None
    options = [
        {
            "type": "object",
            "properties": {
                "name": {"const": tool["name"]},
                "arguments": tool.get("parameters") or {"type": "object"},
            },
            "required": ["name", "arguments"],
        }
        for tool in tools
    ]
    if not options:
        return None
    return options[0] if len(options) == 1 else {"anyOf": options}


def build_chat_request(
    request: GenerationRequest,
    *,
    strategy: ToolStrategy = "prompted",
    default_max_output_tokens: int = DEFAULT_MAX_OUTPUT_TOKENS,
) -> ChatPlan:
    """Translate a `GenerationRequest` into a streaming chat request for llama.cpp."""
    tools = _offered_tools(request)
    items = list(request.items)
    answer_turn = bool(items) and items[-1].get("type") == "function_call_output"
    native = strategy == "native"

    # Leading system/developer messages join the system prompt; later ones stay put.
    instructions = [request.instructions] if request.instructions else []
    while items and items[0].get("type", "message") == "message":
        if items[0].get("role") not in ("system", "developer"):
            break
        instructions.append(text_of(items.pop(0).get("content"), _IMAGE_PLACEHOLDER))
    joined = "\n\n".join(i for i in instructions if i) or None

    send_tools = native and tools and not answer_turn
    prompt_tools = tools if not native else ()
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": system_prompt(joined, prompt_tools)}
    ]
    dialect = _NATIVE if native else _prompted_dialect(items, tools=bool(tools))
    messages += chat_messages(items, dialect=dialect)

    body: dict[str, Any] = {
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": request.max_output_tokens or default_max_output_tokens,
        "temperature": default_temperature(bool(tools))
        if request.temperature is None
        else request.temperature,
    }
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if send_tools:
        body["tools"] = chat_tools(tools)
        body["parallel_tool_calls"] = request.parallel_tool_calls
    # llama.cpp turns the schema into a grammar and decodes under it. A grammar
    # leaves no room for a call, so while tools are on offer it applies only to the
    # answer turn (right after tool outputs).
    sniff_text_calls = True
    if request.text_format is not None and (not tools or answer_turn):
        body["response_format"] = response_format(request.text_format)
        body.pop("tools", None)
        sniff_text_calls = False
    schema = _forced_call_schema(tools, request.tool_choice)
    if schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "function_call", "schema": schema},
        }
        body.pop("tools", None)
    sniff = bool(tools) and (not native or not answer_turn) and sniff_text_calls
    grammar = None
    if sniff and not native and "response_format" not in body:
        grammar = call_grammar(tools, parallel=request.parallel_tool_calls)
    return ChatPlan(
        body=body,
        tool_names=frozenset(t["name"] for t in tools),
        sniff_calls=sniff,
        parallel_tool_calls=request.parallel_tool_calls,
        answer_turn=answer_turn,
        tools=tuple(tools),
        items=tuple(request.items),
        instructions=joined,
        grammar=grammar,
        prose_only=request.tool_choice == "none"
        and any(t.get("type", "function") == "function" for t in request.tools)
        and "response_format" not in body,
    )


def fit_arguments(arguments: str, schema: Mapping[str, Any] | None) -> str:
    """Drop argument keys a closed schema does not declare.

    The small models echo schema words into their calls (`{"expression": "17 + 25",
    "type": "string"}`); with `additionalProperties: false` such a key can only make
    the call fail validation, so it goes. Anything else is left as the model wrote it.
    """
    if not schema or schema.get("additionalProperties") is not False:
        return arguments
    properties = schema.get("properties")
    try:
        parsed = json.loads(arguments)
    except json.JSONDecodeError:
        return arguments
    if not isinstance(properties, Mapping) or not isinstance(parsed, dict):
        return arguments
    kept = {key: value for key, value in parsed.items() if key in properties}
    return arguments if kept == parsed else json.dumps(kept, ensure_ascii=False)


def default_temperature(tools_offered: bool) -> float:
    """The temperature of a turn whose request sets none."""
    return TOOL_TURN_TEMPERATURE if tools_offered else DEFAULT_TEMPERATURE


def retry_body(plan: ChatPlan, calls: Sequence[ParsedCall], reason: str) -> dict[str, Any]:
    """The request to re-sample a rejected reply: the rejected calls, then the reason
    (no calls: a reply that did not become one, which is not replayed)."""
    said = "\n".join(_call_text({"name": call.name, "arguments": call.arguments}) for call in calls)
    reply = [{"role": "assistant", "content": said}] if said else []
    messages = [*plan.body["messages"], *reply, {"role": "user", "content": reason}]
    return {**plan.body, "messages": messages}


_ANSWER_IN_TEXT = (
    "Now reply to the user in plain text, without calling or mentioning any function. "
    "Use the function results above, if there are any. If the request needs something "
    "only a function could tell you, say that you could not find it out; if it asks "
    "for something you cannot do here, say so in one sentence; otherwise answer it "
    "from what you know."
)


_OTHER_DAY_LINE = (
    " The user asks about another day than today, and {tools} only tells what holds "
    "now: say that you cannot look that day up, and do not guess it."
)
"""Added to the text pass's line for a message about another day than today that asks
for a tool of the present (`other_day_tools`): asked "Will I need an umbrella in Rome
on Sunday?", with the current weather's call refused, the 1.5B answered "No umbrella
is needed in Rome on Sunday." on the first prompt alone."""


def answer_body(plan: ChatPlan) -> dict[str, Any]:
    """The request for the text pass: the first prompt, then a system line that asks
    for the answer in prose.

    On the first prompt alone, under a grammar that admits no call, the 1.5B wrote
    about the call it had been refused: "To find the capital of Australia, I'll use
    the `get_weather` function." (4 of the 14 tune refusal cases; one more in a
    re-sample's prose, now cut to this pass.) With the line, those answered ("The
    capital of Australia is Canberra.", "I can't open your calendar."): tune refusal
    and follow-up end to end, answers that speak of functions 7 -> 2 and refusals
    answered right 5 -> 9 of 14. The first prompt is in llama.cpp's cache, so the
    line costs only its own tokens.
    """
    line = _ANSWER_IN_TEXT
    if present := other_day_tools(plan.tools, plan.items):
        line += _OTHER_DAY_LINE.format(tools=" and ".join(present))
    messages = [*plan.body["messages"], {"role": "system", "content": line}]
    return {**plan.body, "messages": messages}


def bare_body(plan: ChatPlan) -> dict[str, Any]:
    """The request for the last resort of a turn with no call whose every pass talked
    about functions: the conversation with the instructions alone, no tool described.
    Told "Bob from accounting brought donuts for everyone today, best Thursday
    ever.", the 1.5B wrote how to call `create_reminder` in every pass that had the
    tools before it; without them it answers as a chat does."""
    system = {"role": "system", "content": system_prompt(plan.instructions, ())}
    return {**plan.body, "messages": [system, *plan.body["messages"][1:]]}


CONFIRM_GRAMMAR = 'root ::= "yes" | "no"\n'
"""The one-word answer of the check (`confirm_body`)."""


def confirm_body(plan: ChatPlan, call: ParsedCall) -> dict[str, Any]:
    """The chat request that asks the model whether `call` gives what the user asked.

    For a first call to a tool the user's message does not name (`doubtful`): the
    1.5B called `get_weather({"city": "Brazil"})` for "What language do they speak
    in Brazil?" and `define_word({"word": "gold"})` for its chemical symbol. Asked
    about the call, with the tool's description and the message side by side, it
    tells the two apart. The first prompt is in llama.cpp's cache, so the check
    costs the call, the question and one token. Decode it under `CONFIRM_GRAMMAR`.
    """
    tool = next((t for t in plan.tools if t.get("name") == call.name), {})
    does = " ".join(str(tool.get("description") or "").split()) or call.name.replace("_", " ")
    question = (
        f"Check this call before it runs. {call.name}: {does}\n"
        f"My message was: {latest_request(plan.items).strip()}\n"
        f"Does {call.name} give what my message asks for? Reply yes or no."
    )
    said = _call_text({"name": call.name, "arguments": call.arguments})
    messages = [
        *plan.body["messages"],
        {"role": "assistant", "content": said},
        {"role": "user", "content": question},
    ]
    return {**plan.body, "messages": messages, "max_tokens": 3, "temperature": 0.0}


def _output_text(item: Mapping[str, Any]) -> str:
    output = item.get("output", "")
    return output if isinstance(output, str) else text_of(output, _IMAGE_PLACEHOLDER)


_RESULT_OPENING = "The function "
"""How a tool result restated as a user message opens (`_result_message`)."""


def _result_message(
    item: Mapping[str, Any], name: str | None, request: str | None = None, *, failed: bool = False
) -> dict[str, Any]:
    """A tool result as a user turn: take the request's next step, or answer.

    Given Qwen's `<tool_response>` turn instead, both models often repeat the call
    they just made; told plainly what came back and what to do, they answer. Asked
    only for the answer, the 1.5B did a chain's second step itself (it converted
    feet to metres in its head rather than call `convert_units`); asked for "the
    next call or the answer", it answered a time question with advice to call
    another tool. So the next step comes first, as a condition on the request, and
    the answer is the default; a repeat of the same call is caught by
    `_call_review.review_calls`.

    That alone, the 1.5B still wrote a chain's next step as prose (tune split, 14
    chains end to end: 0 final answers right). So the request the call served
    (`request`, the user's message before it) is said again right before the choice,
    and the answer waits for "every step" to be done: asked instead to answer when
    "this result is all my request needs", after a chain's last step it said "I'm
    sorry, but I can't assist with that." (tune chains replayed to each step: the
    next call 9 of 12 and the final answer 7 of 9 with this wording, 9 and 3 of 9
    with that one.) End to end the 14 tune chains went from 0 to 8 final answers
    right; the answer after one call of the tune plain, followup and examples cases,
    replayed, from 32 to 35 of 38.
    """
    asked = f"My request was: {request.strip()}\n" if request and request.strip() else ""
    output = _output_text(item)
    if failed:
        return {"role": "user", "content": _failure_text(name, output, asked)}
    return {
        "role": "user",
        "content": f"{_RESULT_OPENING}{name or 'you called'} returned: {output}\n"
        f"{asked}"
        "If a step of my request is still not done, reply with only the JSON object that "
        "calls the function for that step, using this result: do not work it out yourself. "
        "Once every step is done, answer my request in plain sentences with the results.",
    }


def _failure_text(name: str | None, output: str, asked: str) -> str:
    """A tool's error as a user turn: call again with arguments that work, or say what
    could not be found.

    Restated like a result ("returned: Error: ... unknown ticker 'NFLX'"), with the
    result's "using this result: do not work it out yourself", the 1.5B answered
    with that fragment ("do not work it out yourself.").
    """
    return (
        f"{_RESULT_OPENING}{name or 'you called'} failed: {output}\n"
        f"{asked}"
        "If a step of my request is still not done, reply with only the JSON object that "
        "calls the function for that step, with arguments that work: do not work it out "
        "yourself. Once every step is done, answer my request in plain sentences, saying "
        "what could not be found."
    )


def failure_note(items: Sequence[Mapping[str, Any]], *, due: bool = False) -> str:
    """What the provider says itself when the model stated a figure that no function
    gave, in its answer and again in the text pass: after every call made for the
    user's message failed, which function failed and why, in the tool's own words;
    with no call made, that it cannot look it up: for now, where a lookup was `due`
    that no call of the model's could make (naming no function: a user meets none),
    or else as no offered tool gives it. Asked for
    Netflix's stock price after `stock_price` refused "NFLX", the 1.5B answered
    "Netflix's stock price is $320." in both passes; asked for Apple's with a
    calculator, a clock and a converter, "$170.00"."""
    names = {
        str(item.get("call_id")): str(item.get("name"))
        for item in items
        if item.get("type") == "function_call"
    }
    failures = [
        f"{names.get(str(item.get('call_id')), 'the function')} failed "
        f"({error_text(str(item.get('output') or ''))})"
        for item in latest_outputs(items)
    ]
    if not failures and due:
        return "I could not look that up just now, and I won't guess."
    if not failures:
        return "I can't look that up: none of my tools gives it, and I won't guess."
    return f"I could not find that out: {'; '.join(dict.fromkeys(failures))}."


_NO_TOOL_NOTE = "I can't do that: none of my tools does it."


def result_note(items: Sequence[Mapping[str, Any]]) -> str:
    """What the provider says itself when every pass of an answer wrote out the
    tool-result message ("The function convert_currency returned: 100 USD = 88.00
    CHF.", four times over for "How many Swiss francs is 100 US dollars?"): the
    results of the calls made for the user's message, in the tools' own words (a
    JSON object as its fields); `failure_note` if every one failed; with no call made
    for the message (every pass talked about a function it could not call, or wrote
    out its own instructions), that no tool of the model's does it."""
    outputs = latest_outputs(items)
    if not outputs:
        return _NO_TOOL_NOTE
    results = [
        output
        for item in outputs
        if not (output := str(item.get("output") or "")).startswith("Error")
    ]
    if not results:
        return failure_note(items)
    return " ".join(_as_sentence(output) for output in dict.fromkeys(results))


def _as_sentence(output: str) -> str:
    try:
        value = json.loads(output)
    except json.JSONDecodeError:
        value = None
    if isinstance(value, dict):
        output = ", ".join(f"{key}: {field}" for key, field in value.items())
    output = " ".join(output.split())
    return output if output.endswith((".", "!", "?")) else f"{output}."


def _requests_by_call(items: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """call_id -> the text of the user's message that the call served (the last before it)."""
    request = ""
    served: dict[str, str] = {}
    for item in items:
        kind = item.get("type", "message")
        if kind == "message" and item.get("role") == "user":
            request = text_of(item.get("content"), _IMAGE_PLACEHOLDER)
        elif kind == "function_call":
            served[str(item.get("call_id"))] = request
    return served


def _first_failures(items: Sequence[Mapping[str, Any]]) -> set[str]:
    """call_ids of the errors (`Error: ...`) that came back before any result for the
    same user message: restated as a failure (`_failure_text`). An error after a
    result keeps the result's wording: in a chain whose second step failed ("291.14
    EUR - 100 EUR", units in the calculation), told to call again or say what could
    not be found, the 1.5B converted the euros back and answered with a made-up
    difference, where after the result's wording it answered the difference right."""
    failed: set[str] = set()
    succeeded = False
    for item in items:
        kind = item.get("type", "message")
        if kind == "message" and item.get("role") == "user":
            succeeded = False
        elif kind == "function_call_output":
            if not _output_text(item).startswith("Error"):
                succeeded = True
            elif not succeeded:
                failed.add(str(item.get("call_id")))
    return failed


def _prompted_dialect(items: Sequence[Mapping[str, Any]], *, tools: bool) -> ChatDialect:
    served = _requests_by_call(items)
    failed = _first_failures(items)

    def result_message(item: Mapping[str, Any], name: str | None) -> dict[str, Any]:
        call_id = str(item.get("call_id"))
        return _result_message(item, name, served.get(call_id), failed=call_id in failed)

    note = _LATER_TURN_NOTE if tools else None
    return replace(_PROMPTED, result_message=result_message, later_user_note=note)


def _raise_for_error(chunk: Mapping[str, Any]) -> None:
    """llama.cpp's error chunk as a `ProviderError`."""
    error = chunk.get("error")
    if error is None and ("choices" in chunk or "code" not in chunk):
        return
    detail = error if isinstance(error, Mapping) else chunk
    code = detail.get("code")
    # llama.cpp uses HTTP statuses (400 for a prompt over the context size).
    status = code if isinstance(code, int) and 400 <= code < 600 else 500
    message = str(detail.get("message", detail))
    # OpenAI's code for it, which agents such as Codex CLI act on (they compact)
    overflow = "context size" in message or detail.get("type") == "exceed_context_size_error"
    raise ProviderError(
        f"local model failed: {message}",
        code="context_length_exceeded" if overflow else "model_error",
        status=status,
    )


def _result_messages(plan: ChatPlan) -> list[str]:
    """The tool results the prompt restates as user messages (`_result_message`)."""
    return [
        content
        for message in plan.body.get("messages") or ()
        if message.get("role") == "user"
        and isinstance(content := message.get("content"), str)
        and content.startswith(_RESULT_OPENING)
    ]


def _echo_guard(plan: ChatPlan) -> EchoGuard | None:
    """An `EchoGuard` for a reply to a tool result restated as a user message (the
    prompted dialect), or, on a later turn, for one after such results earlier in the
    conversation; else None."""
    messages = plan.body.get("messages") or ()
    if not plan.answer_turn:
        # asked "And to yen?" after a conversion, the 1.5B wrote out the earlier
        # result message ("The function convert_currency returned: 20 GBP = ...")
        earlier = _result_messages(plan)
        return EchoGuard("\n".join(earlier)) if earlier else None
    if not messages or messages[-1].get("role") != "user":
        return None
    content = messages[-1].get("content")
    if not isinstance(content, str):
        return None
    output = plan.items[-1].get("output") if plan.items else None
    # the user's message too, whole: the 1.5B answered "Is it morning in New York now?
    # Check the time." with exactly that, after the time had come back
    request = latest_request(plan.items)
    output_text = output if isinstance(output, str) else ""
    # a stock refusal is no answer to a result that came back (not to an error)
    refusals = () if output_text.startswith("Error") else _REFUSALS
    return EchoGuard(f"{content}\n{request}", output_text, refusals)


def _text_pass_guard(plan: ChatPlan) -> EchoGuard:
    """An `EchoGuard` for the text pass's reply (`answer_body`): the 0.5B answered
    with the pass's own system line ("Now reply to the user in plain text, ...") in 5
    of 39 held-out cases, and both models wrote out the user's request or a result
    message there."""
    output = plan.items[-1].get("output") if plan.answer_turn and plan.items else None
    lines = [_ANSWER_IN_TEXT, latest_request(plan.items), *_result_messages(plan)]
    # with no call made, a stock refusal is what the 1.5B says to small talk once its
    # call (or its talk about one) was rejected ("Kids are finally asleep, ..." after
    # a clock call): the provider answers without the tools described (`refused`).
    # Only for a message that asks for nothing (`tells_only`): without the tools, the
    # 1.5B answered "Book me a flight to Rome for next Friday." with "Sure, I can help
    # you book a flight ...", a promise where the refusal was right
    asks_nothing = not plan.answer_turn and tells_only(latest_request(plan.items))
    refusals = _REFUSALS if asks_nothing else ()
    return EchoGuard("\n".join(lines), output if isinstance(output, str) else "", refusals)


_UNFINISHED_CALL = (
    "Your reply began a function call but did not finish it as one JSON object (it was "
    "too long, or broken). If a function provides what I asked for, call it again with "
    "short arguments taken from my words; otherwise answer me directly in plain text."
)

_REFUSALS = (
    "I'm sorry, but I can't assist with that",
    "I'm sorry, but I cannot assist with that",
    "I'm sorry, I can't assist with that",
    "I'm sorry, but I can't help with that",
)
"""The 1.5B's stock refusal, which it gave as the answer after a chain's last step had
returned ("Compute 1000 divided by 8, then convert that many milliliters to cups",
both calls made) and after a reminder was set."""

_REFUSED_RESULT = (
    "The function returned a result: there is nothing to refuse. Using that result, answer "
    "my request in one or two plain sentences."
)

_ECHOED_EARLIER = (
    "Do not repeat an earlier message. Reply to my latest message: if it needs a function, "
    "reply with only the JSON object that calls it; otherwise answer in plain sentences."
)
"""The re-sample's reason after a reply on a later turn that repeated an earlier
tool-result message."""

_ECHOED_MESSAGE = (
    "Do not repeat my message. Using that result, answer my question in one or two plain sentences."
)
"""The re-sample's reason after a reply that began by repeating the tool-result
message. In the chat apps the 1.5B did so for 4 of 5 single-call questions ("The
function calculate returned: 17 + 25 = 42 / My request was: ..."); with this reason
after it, all 4 answered ("The sum of 17 and 25 is 42."); told instead "You repeated
my message instead of answering it", one of the 4 repeated it again."""

_PROSE_RE_SAMPLE = "the re-sample of a rejected call began in prose"
"""Why a re-sample read with `calls_only` stops: its prose, answering a reason about
functions, spoke of them ("The function `reverse_string` is not available. The
available functions are ..."), so the text pass (`answer_body`) answers instead."""

_TALKED = (
    "You wrote about a function instead of calling it. If one of the functions gives "
    "what I asked for, reply with only the JSON object that calls it."
)
"""The re-sample's reason after a reply that opened by talking about a function
(`TalkGuard`), for a message that asks for one of the tools; for one that asks for
none, the text pass answers at once (`ChunkTranslator.unasked`)."""

FOLLOW_UP_PROSE = "a reply in prose to a message that names new values for a request"
"""Why a first reply to a follow-up that only names new values for the previous
turn's request ("And in London?" after the time in Tokyo: `followup_tools`) stops
at its first prose: the 1.5B answered such messages from the earlier answers ("It's
19:05 in London.", Tokyo's time). The provider decodes the same prompt again under
the call grammar from its first token (no reason added: the prompt is in llama.cpp's
cache, and its note already asks for a call for new values)."""


TOPIC_PROSE = "a reply in prose to a message that asks what a lookup tool gives"
"""Why a first reply to a message asking for what a weather, clock, dictionary,
currency or stock tool gives, for something it names (`topic_tools`), stops at its
first prose: what those tools give cannot be known without them, and the 1.5B
answered yes/no questions about it from nothing ("Tokyo is warmer right now."). As
for `FOLLOW_UP_PROSE`, the same prompt is decoded again under the grammar of those
tools' calls."""


def uncalled_reason(names: Sequence[str]) -> str:
    """The re-sample's reason after an answer that left out what `names` give
    (`uncalled_tools`); the re-sample is held to a call."""
    return (
        f"My request also asks for what {' or '.join(names)} gives, and no result above "
        f"has it. Call {names[0] if len(names) == 1 else 'one of them'} for it now, with "
        "the values from my request."
    )


_UNCALLED_NAMES = (
    "My request also names {names}, and no result above is for it. Call {tool} for "
    "{names} now, as you did for the others."
)
"""The re-sample's reason after an answer that gives a list's names no call
(`uncalled_names`: "Which is warmer, Tokyo or Sydney?" answered from Tokyo's weather
alone); the re-sample is held to a call."""

_UNCONVERTED = (
    "My request asks for the temperature in {scale}, and no result above is in "
    "{scale}. Call {tool} now to convert the result to {scale}."
)
"""The re-sample's reason after an answer to results in another scale than the one the
message asks for (`unconverted_scale`); the re-sample is held to a call."""
_UNCONVERTED_GIVEN = (
    "My request gives a temperature in {scale}, and no result above is in {scale}. "
    "Call {tool} now to convert the result to {scale}."
)
"""The same, where the message gives a temperature in the scale ("set to 68 F")."""

_UNDERIVED = (
    "My request asks for a figure worked out from the results above, and no function "
    "has worked it out. Call {tool} now with an expression of the numbers in the "
    "results: do not work it out yourself."
)
"""The re-sample's reason after an answer to results that a calculation on them is
still due for (`underived`: "how many hours apart are they?" after two clock calls);
the re-sample is held to the calculator's call."""


_TALKED_ANSWER = (
    "You wrote about a function instead of answering. If my request needs another "
    "function, reply with only the JSON object that calls it; otherwise answer my request "
    "in one or two plain sentences from the results, without mentioning functions."
)
"""The re-sample's reason after an answer to a tool result that opened by talking about
a function (`TalkGuard`). Not held to a call: the request may be done."""

_LEFT_OUT = (
    "Your answer leaves out this result: {results}\nAnswer my request in plain "
    "sentences with every result."
)
"""The re-sample's reason after an answer that shows nothing of a result it should
report (`ResultsGuard`). Not held to a call."""

_FAILED_FIGURE = (
    "The functions you called failed, so nothing gave the figure you stated. Say that "
    "you could not find it out."
)
"""Why a reply was held back that stated a figure nobody said after every call made
for the message had failed (`only_failures`): the text pass answers instead."""

_UNTOOLED_FIGURE = (
    "No function here gives what I asked for, so nothing gave the figure you stated. "
    "Say that you cannot look it up."
)
"""Why a first reply was held back that stated a figure nobody said, to a message that
asks for what no offered tool gives (`untooled_topic`): the text pass answers."""

_UNSAID_FIGURE = (
    "Do not work out figures yourself. Call {tools} to compute what I asked for from the "
    "numbers in my message and the function results: reply with only the JSON object "
    "that calls it."
)
"""The re-sample's reason after a reply that stated a figure nobody said, to a message
that asks for a figure tool (`FigureGuard`). It does not quote the figure: told "Your
reply stated 77", the 1.5B converted 77 (its own Fahrenheit figure) from Celsius."""

_ECHO_SPAN = 20
"""Characters of a reply that, all repeating the start of a line of the message
before it, make it an echo (`EchoGuard`)."""


def _folded(text: str) -> str:
    return " ".join(text.split()).casefold()


def _clauses(line: str) -> list[str]:
    """`line`, and what follows each ": " or ". " in it."""
    return [line] + [line[m.end() :] for m in re.finditer(r"[.:] ", line)]


class EchoGuard:
    """Holds back each line of a reply while it repeats the message it answers (or the
    user's request, which `_echo_guard` adds to it).

    After a tool result the prompt's last message is the result restated for the
    model (`_result_message`), and a small model at temperature 0 may write it out
    again as its answer, scaffolding and all. `feed` takes the reply's released text
    and returns what may go out: at the start of the reply and of each of its lines,
    nothing while that line so far repeats the start of one of the message's lines
    (whitespace and case aside), all of it once it differs. `echoed` turns true when
    `_ECHO_SPAN` characters of a line have repeated one. Lines of the tool's own output
    are not compared: an answer may quote them.
    """

    def __init__(self, message: str, output: str = "", refusals: Sequence[str] = ()) -> None:
        quoted = {_folded(line) for line in output.splitlines()}
        self._refusals = {_folded(line) for line in refusals}
        # a line shorter than `_ECHO_SPAN` is not compared: an answer may open with the
        # user's "Weather in Paris?" and go on
        # and a line's later sentences and clauses: the 1.5B answered a reminder and a
        # word count with "do not work it out yourself.", the middle of a line of the
        # result message
        self._starts = [
            folded
            for line in message.splitlines()
            if _folded(line) not in quoted
            for folded in _clauses(_folded(line))
            if len(folded) >= _ECHO_SPAN and not any(folded.startswith(q) for q in quoted if q)
        ] + sorted(self._refusals)
        self._held = ""
        self.holding = bool(self._starts)
        self.echoed = False
        self.refused = False
        """With `echoed`: what was repeated is one of `refusals`, not the message."""

    def feed(self, text: str) -> str:
        """The part of `text` (and of what was held) that may go out now."""
        out = ""
        while text and not self.echoed:
            if not self.holding:
                newline = text.find("\n")
                if newline < 0:
                    return out + text
                out, text = out + text[: newline + 1], text[newline + 1 :]
                self.holding = bool(self._starts)  # a new line: compare it too
                continue
            self._held, text = self._held + text, ""
            folded = _folded(self._held)
            repeats = [s for s in self._starts if s.startswith(folded) or folded.startswith(s)]
            # a line of the message from `_ECHO_SPAN` characters on, a refusal whole
            spans = [len(s) if s in self._refusals else min(_ECHO_SPAN, len(s)) for s in repeats]
            if folded and repeats and len(folded) >= min(spans):
                self.echoed = True
                self.refused = all(start in self._refusals for start in repeats)
            elif folded and not repeats:
                text = self.release()  # differs: out it goes, its later lines compared
        return out

    def release(self) -> str:
        """Stop holding: what was held."""
        self.holding = False
        held, self._held = self._held, ""
        return held


_RUNAWAY_SPAN = 160
"""Characters of repetition at the end of a call that mark it as a runaway: more than
a line of `=` or a Markdown table rule that a real argument (a file's text) may hold."""
_RUNAWAY_PERIOD = 32


_PROSE_RUNAWAY_SPAN = 240
"""The same for prose, where a rule line or a repeated row is likelier than in a call's
arguments: twelve times "2300 / 85 * 0.85 = "."""


def runaway(text: str, span: int = _RUNAWAY_SPAN) -> bool:
    """Whether `text` ends in a unit of at most 32 characters repeated over at least
    `span` characters (`1+1+1+...`, `))))`, the same phrase again and again): a small
    model at temperature 0 that falls into such a loop writes it to the token limit."""
    least = span
    for period in range(1, _RUNAWAY_PERIOD + 1):
        span = max(least, 3 * period)
        if len(text) < span + period:
            return False
        if text[-span:] == text[-span - period : -period]:
            return True
    return False


# what `_call_grammar.CALL_TRIGGERS` fires on: a reply so opened is decoded under it
_GRAMMAR_START = re.compile(r'\s*(\{\s*"name"|<tool_call>|```json)')

_PROMPTED = ChatDialect(
    image_placeholder=_IMAGE_PLACEHOLDER, call_text=_call_text, result_message=_result_message
)
_NATIVE = ChatDialect(image_placeholder=_IMAGE_PLACEHOLDER)


class ChunkTranslator:
    """llama.cpp chat chunks -> engine deltas, with the text-call fallback.

    The chunks are read by the bridge's `ChatChunkTranslator` (so calls without an
    `index` and names repeated on every chunk are handled the same way); reply text
    goes through the `ReplySniffer`, which holds back a call written as text.
    """

    def __init__(
        self,
        plan: ChatPlan,
        *,
        review: bool = False,
        grounding: bool = False,
        stream_arguments: bool = False,
        calls_only: bool = False,
        confirm: bool = False,
        text_pass: bool = False,
        talk: bool = False,
        last_pass: bool = False,
    ) -> None:
        self._plan = plan
        self._calls_only = calls_only
        # `confirm`: a first call the message does not ask for is held for a check
        self._confirm = confirm and plan.sniff_calls and not plan.answer_turn
        self._grounding = grounding
        self._chunks = ChatChunkTranslator()
        self._sniffer = ReplySniffer(
            plan.tool_names, enabled=plan.sniff_calls, unknown_names=True, late_calls=True
        )
        self._parallel = plan.parallel_tool_calls
        self._native_calls: set[int] = set()
        self._review = review
        self._schemas = {tool["name"]: tool.get("parameters") for tool in plan.tools}
        self.text_released = False
        # Under the call grammar a call's shape is fixed, so its arguments can go out
        # as they are generated; `_streamed` is the call on the wire (id, name).
        self._stream = stream_arguments and plan.grammar is not None
        self._arguments: ArgumentStream | None = None
        self._streamed: tuple[str, str] | None = None
        # A call that is not streamed still goes out as soon as its arguments close
        # and the review passes, not when the reply ends (`_whole_first_call`).
        self._whole: ArgumentStream | None = None
        self._whole_arguments = ""
        self._whole_off = False
        self._name_checked = False
        # `text_pass`: the reply to `answer_body`, which must not repeat its line either
        # `last_pass`: the answer on the first prompt alone, after the text pass wrote out
        # its prompt; it must not write out the result message either (`result_note`)
        guarded = review or (last_pass and plan.answer_turn)
        self._echo = _text_pass_guard(plan) if text_pass else _echo_guard(plan) if guarded else None
        # a first answer (not one to a tool result) that talks about calling a function
        # (`talk`: in a pass whose grammar admits no call, which is not reviewed)
        # (and, reviewed, an answer to a tool result that does: "To find the time
        # difference between London and Tokyo, I used the `current_time` function ...",
        # after only Tokyo's time had come back)
        # (and the last pass's answer to a tool result: after the clock's result for
        # Lima, every pass had been rejected and the last one went out as "To wish
        # your uncle in Lima a happy birthday, you can call the "calc" function ...")
        self._talk = (
            TalkGuard(plan.tool_names)
            if ((talk and (not plan.answer_turn or last_pass)) or (review and plan.sniff_calls))
            and plan.tools
            else None
        )
        # a reply to a message that asks for a figure tool, held until its numbers check
        self._figure_tools = (
            figure_tools(plan.tools, plan.items) if review and not calls_only else []
        )
        # after every call made for the message failed, no figure may be stated that
        # nobody said: "The stock price of Netflix is $320." after `stock_price` refused
        self._failed = (review or text_pass) and plan.answer_turn and only_failures(plan.items)
        # a first reply to a message asking for what no offered tool gives (a stock
        # price with a calculator, a clock and a converter): "The stock price of Apple
        # is $170.00." The same hold, and the same honest end
        self._untooled = (
            (review or text_pass)
            and bool(plan.tools)
            and not plan.answer_turn
            and not calls_only
            and untooled_topic(plan.tools, plan.items)
        )
        # the text pass for a message that asks for a lookup (`topic_tools`) whose
        # calls were all rejected: "The shares in the company that owns Instagram and
        # WhatsApp are trading at $100 per share." after `stock_price("AAPL")`, the
        # description's example, was rejected twice. The same hold, the same end
        self.unlooked = (
            text_pass and not plan.answer_turn and bool(topic_tools(plan.tools, plan.items))
        )
        # (any of the three: no function could have given a figure the reply states)
        self._unsourced = self._failed or self._untooled or self.unlooked
        # a first reply to a message that names new values for the previous turn's
        # request ("And in London?": `followup_tools`), or an answer to results that
        # leaves out a kind of thing the message names (the time, beside the weather:
        # `uncalled_tools`) or a temperature in the scale it names or gives one in
        # (`unconverted_scale`),
        # or the calculation it asks for on the results (`underived`):
        # a call, never prose; the reason it is asked again with
        # (and the tools that call is due to: `held_to`)
        self._call_hold: str | None = None
        self._hold_tools: tuple[str, ...] = ()
        self._lookups_due = False  # (results still to look up: no calculation yet)
        if review and plan.sniff_calls and not calls_only:
            if not plan.answer_turn and (again := followup_tools(plan.tools, plan.items)):
                self._call_hold = FOLLOW_UP_PROSE  # the same prompt, held to a call
                self._hold_tools = tuple(again)
            elif not plan.answer_turn and (topics := topic_tools(plan.tools, plan.items)):
                self._call_hold = TOPIC_PROSE  # the same prompt, held to a call
                self._hold_tools = tuple(topics)
            elif plan.answer_turn and (missing := uncalled_tools(plan.tools, plan.items)):
                self._call_hold = uncalled_reason(missing)
                self._hold_tools = tuple(missing)
                self._lookups_due = True
            elif plan.answer_turn and (unnamed := uncalled_names(plan.tools, plan.items)):
                tool, names = unnamed
                self._call_hold = _UNCALLED_NAMES.format(tool=tool, names=" and ".join(names))
                self._hold_tools = (tool,)
                self._lookups_due = True
            elif plan.answer_turn and (unconverted := unconverted_scale(plan.tools, plan.items)):
                tool, scale, asked = unconverted
                reason = _UNCONVERTED if asked else _UNCONVERTED_GIVEN
                self._call_hold = reason.format(tool=tool, scale=scale.capitalize())
                self._hold_tools = (tool,)
            elif calculator := underived(plan.tools, plan.items):  # after results alone
                self._call_hold = _UNDERIVED.format(tool=calculator)
                self._hold_tools = (calculator,)
        # (with a calculator still to call, a reply that sets out to work a figure out
        # in words is held to it too: `FigureGuard`'s `working`)
        self._figures: FigureGuard | None = (
            FigureGuard(
                said_numbers(conversation_text(plan.instructions, plan.items)),
                working=bool(self._figure_tools) and not calculated(plan.tools, plan.items),
            )
            if self._figure_tools or self._unsourced
            else None
        )
        # an answer that should report results, held until it ends (one result: until
        # it shows something of it): one that shows nothing of some result is asked
        # again ("What is 12.5% of 640? Then tell me the time in Paris." answered with
        # the time alone; "Is Tesla doing better?" answered "Tesla is doing better.")
        results = final_results(plan.items) if plan.answer_turn else []
        self._results = (
            ResultsGuard(results, asked_with(plan.items), early=len(results) == 1)
            if (review or text_pass or last_pass) and results
            else None
        )
        if self._figures is None and (text_pass or last_pass) and plan.answer_turn:
            # the fallback passes of an answer: no clock time nobody said ("The current
            # time in London is 14:30." after a currency conversion, in the text pass)
            self._figures = TimeGuard(conversation_text(plan.instructions, plan.items))
        self._cut = False
        # the prose so far (its last characters): a reply that repeats itself is ended
        self._prose = ""
        self.looped = False
        # `calls_only`: the reply may only be a call; prose is rejected at its start
        self.doubtful: ParsedCall | None = None
        """With `confirm`: the reply's first call, held back (and the generation stopped)
        until the provider checks it (`confirm_body`): then `confirmed` sends it, or
        the text pass answers instead."""
        self.rejected: tuple[list[ParsedCall], str] | None = None
        """Calls held back by the review, and why (re-sample): set by `finish`, or
        by `feed` as soon as the first call is whole."""

    def feed(self, chunk: Mapping[str, Any]) -> list[Delta]:
        """One chunk in, zero or more deltas out (text that is clearly prose)."""
        _raise_for_error(chunk)
        out: list[Delta] = []
        for delta in self._chunks.feed(chunk):
            if isinstance(delta, OutputTextDelta):
                out += self._text(delta.text)
                if self.rejected is not None:
                    return out
            elif isinstance(delta, ToolCallDelta):
                if not self._parallel and delta.index > 0:
                    continue
                self._native_calls.add(delta.index)
                out.append(delta)
            else:
                out.append(delta)
        return out

    def _text(self, text: str) -> list[Delta]:
        """Reply text in: prose that may go out, or a call's progress."""
        released = self._sniffer.feed(text)
        if released:
            # Prose that has fallen into a loop ("You need to convert the cost ... 2300
            # / 85 * 0.85 = 2300 / 85 * 0.85 = ...", on to the token limit, 70 s) ends
            # here: the generation stops, and what was written is read as a whole
            # reply (`finish`), its guards' checks included.
            self._prose = (self._prose + released)[-_PROSE_RUNAWAY_SPAN - 2 * _RUNAWAY_PERIOD :]
            self.looped = self.looped or runaway(self._prose, _PROSE_RUNAWAY_SPAN)
        if released and self._calls_only and not self.text_released:
            self.rejected = ([], _PROSE_RE_SAMPLE)  # the text pass answers instead
            return []
        if released and self._call_hold and not self.text_released:
            self.rejected = ([], self._call_hold)
            return []
        if released:
            released = self._through_guards(released)
            if self.rejected is not None:
                return []
        if released:
            self.text_released = True
            return [OutputTextDelta(released)]
        out: list[Delta] = []
        if self._sniffer.decision == "call":
            held = self._sniffer.held  # the reply so far, joined once per chunk
            if self._stream:
                out += self._stream_arguments(held)
            if not self._stream and self._streamed is None and not self._whole_off:
                out += self._whole_first_call(held)
            if self._review and self._streamed is None and self.rejected is None:
                self._reject_early(held)
        return out

    def _through_guards(self, released: str) -> str:
        """Released prose through the echo, talk and figure guards: what may go out
        now (`rejected` set if a guard rejects the reply)."""
        if self._echo is not None:
            released = self._echo.feed(released)
            if self._echo.echoed and not self._answered and not released.strip():
                self.rejected = ([], self._echo_reason())  # nothing else: ask again
                return ""
            if self._echo.echoed:
                self._cut = True  # an answer, then the echo: the answer ends there
        if released and self._talk is not None and self._talk.holding:
            released = self._talk.feed(released)
            if self._talk.talked:
                self.rejected = ([], self._talk_reason())
                return ""
        if released and self._figures is not None and self._figures.holding:
            released = self._figures.feed(released)
            if self._figures.figures:
                self.rejected = ([], self._figure_reason())
                return ""
        if released and self._results is not None and self._results.holding:
            released = self._results.feed(released)
        return released

    def _stream_arguments(self, held: str) -> list[Delta]:
        """The first call's name and arguments so far, once no review can reject it.

        A call on the wire cannot be taken back, so a call the review might reject
        (`may_reject`: its tool's description has text to copy, or it was answered
        already) is not streamed: it arrives whole after the review, as before.
        """
        if self._arguments is None:
            if not _GRAMMAR_START.match(held):
                self._stream = False  # a shape the grammar's trigger does not start
                return []
            self._arguments = ArgumentStream()
        piece = self._arguments.feed(held)
        name = self._arguments.name
        if name is None:
            return []
        if self._streamed is None:
            plan = self._plan
            if self._review and may_reject(name, plan.tools, plan.items, grounding=self._grounding):
                self._stream = False
                return []
            self._streamed = (f"call_{uuid.uuid4().hex[:24]}", name)
            return [ToolCallDelta(0, name, self._streamed[0], piece)]
        return [ToolCallDelta(0, arguments=piece)] if piece else []

    def _reject_early(self, held: str) -> None:
        """Reject a call still being written, where its end cannot change the verdict.

        - A call that repeats itself (`runaway`) is re-sampled now, like one the token
          limit cut off (`finish`), not after the rest of the limit: the 0.5B once
          wrote 1,024 tokens of one expression, 33 s, before its re-sample.
        - A function no tool has, for a message that asks for none of the tools, is
          rejected as unasked (`_call_review.unasked`) whatever its arguments: so at
          its name, before the grammar's `, "arguments": {}}` (about 0.4 s of a
          first "Hi!" on these machines).
        """
        if runaway(held):
            self.rejected = ([], _UNFINISHED_CALL)
            return
        if self._name_checked or not self._grounding:
            return
        name = call_name(held)
        if name is None:
            return
        self._name_checked = True
        if name in self._schemas:
            return
        plan = self._plan
        if unasked([(name, "{}")], plan.tools, plan.items, plan.instructions):
            call = ParsedCall(name, "{}")
            reason = self._review_calls([call])
            if reason is not None:
                self.rejected = ([call], reason)

    @property
    def done(self) -> bool:
        """Whether the rest of the reply can change nothing: it was rejected (its first
        call as soon as it was whole, a runaway call or an echo while they were
        written: the provider stops the generation and re-samples), or its answer
        ended where it began repeating the message (`EchoGuard`) or itself
        (`looped`)."""
        return self.rejected is not None or self._cut or self.looped or self.doubtful is not None

    def _whole_first_call(self, held: str) -> list[Delta]:
        """The first call, whole, once its arguments have closed and the review passed.

        A call the review might reject is not streamed (`_stream_arguments`), but it need
        not wait for the reply's end either: the review needs only the call itself. So
        the call goes out while the model writes what follows it (a closing fence, a
        further call), and a rejected one is known before those tokens are generated.
        """
        if self._whole is None:
            if not _GRAMMAR_START.match(held):
                self._whole_off = True
                return []
            self._whole = ArgumentStream()
        self._whole_arguments += self._whole.feed(held)
        name = self._whole.name
        if name is None or not self._whole.complete:
            return []
        self._whole_off = True  # decided, one way or the other
        try:
            parsed = json.loads(self._whole_arguments)
        except json.JSONDecodeError:
            return []  # read at the end, as any other reply
        if not isinstance(parsed, dict):
            return []
        call = ParsedCall(name, json.dumps(parsed, ensure_ascii=False))
        if self._review:
            reason = self._review_calls([call])
            if reason is not None:
                self.rejected = ([call], reason)
                return []
        if self._doubt(call):
            return []
        self._streamed = (f"call_{uuid.uuid4().hex[:24]}", name)
        arguments = fit_arguments(call.arguments, self._schemas.get(name))
        return [ToolCallDelta(0, name, self._streamed[0], arguments)]

    def _doubt(self, call: ParsedCall) -> bool:
        """Hold `call` for the check, if it is a first call the message does not ask for."""
        plan = self._plan
        if (
            not self._confirm
            or self.text_released
            or not doubtful(call.name, plan.tools, plan.items)
        ):
            return False
        self.doubtful = call
        return True

    def confirmed(self) -> list[Delta]:
        """The held call, which the check confirmed, and the reply's end."""
        assert self.doubtful is not None
        call, self.doubtful = self.doubtful, None
        call_id = f"call_{uuid.uuid4().hex[:24]}"
        arguments = fit_arguments(call.arguments, self._schemas.get(call.name))
        return [
            ToolCallDelta(0, call.name, call_id, arguments),
            ItemEndDelta(),
            *self._chunks.finish(),
        ]

    def _finish_streamed(self, calls: Sequence[ParsedCall]) -> list[Delta]:
        """After a streamed first call: close it; the reply's further calls go out whole.

        Its arguments on the wire are what the grammar let the model write (they fit
        the schema, so `fit_arguments` has nothing to drop). A further call the review
        rejects is dropped: the first one is out already, so no re-sample.
        """
        assert self._streamed is not None
        out: list[Delta] = [ItemEndDelta()]
        first = (self._streamed[1], calls[0].arguments) if calls else None
        later = [c for c in dict.fromkeys(calls[1:]) if (c.name, c.arguments) != first]
        for index, call in enumerate(later if self._parallel else [], start=1):
            if self._review and self._review_calls([call]) is not None:
                continue
            arguments = fit_arguments(call.arguments, self._schemas.get(call.name))
            call_id = f"call_{uuid.uuid4().hex[:24]}"
            out += [ToolCallDelta(index, call.name, call_id, arguments), ItemEndDelta()]
        return out

    def finish(self) -> list[Delta]:
        """End of stream: held-back text or recognised calls, usage, finish reason."""
        out: list[Delta] = []
        opened_as_call = self._sniffer.decision == "call"
        text, calls = self._held()
        if self.rejected is not None or self.doubtful is not None:
            # rejected while written (nothing was released), or at the end as an echo;
            # or held for the check
            return out
        if self._streamed is not None:
            # The call is on the wire; held text here means it did not parse (cut off
            # by the token limit): it ends with the arguments it has.
            return self._finish_streamed(calls) + self._chunks.finish()
        if self._review and opened_as_call and text and not calls and not self._native_calls:
            # A reply that opened as a call and never became one (the token limit cut
            # a runaway expression, or the JSON broke) would reach the user as raw
            # JSON: it is held back and re-sampled like a rejected call.
            self.rejected = ([], _UNFINISHED_CALL)
            return out
        if text:
            self.text_released = True
            out.append(OutputTextDelta(text))
        if calls and not self._native_calls:
            return out + self._finish_calls(calls)
        if self.text_released or self._native_calls:
            out.append(ItemEndDelta())
        out += self._chunks.finish()
        return out

    def _finish_calls(self, calls: Sequence[ParsedCall]) -> list[Delta]:
        """At the end: the calls written as text, reviewed (after any released text)."""
        out: list[Delta] = []
        # Small models sometimes repeat a call verbatim; one of each is enough.
        unique = list(dict.fromkeys(calls))
        chosen = unique if self._parallel else unique[:1]
        reason = self._review_calls(chosen) if self._review else None
        if reason is not None and self.text_released:
            # a call after prose that is out already: dropped, no re-sample
            out.append(ItemEndDelta())
            return out + self._chunks.finish()
        if reason is not None:
            self.rejected = (chosen, reason)
            return out
        if self._doubt(chosen[0]):
            return out
        if self.text_released:
            out.append(ItemEndDelta())
        for index, call in enumerate(chosen):
            call_id = f"call_{uuid.uuid4().hex[:24]}"
            arguments = fit_arguments(call.arguments, self._schemas.get(call.name))
            out.append(ToolCallDelta(index, call.name, call_id, arguments))
            out.append(ItemEndDelta())
        return out + self._chunks.finish()

    def _held(self) -> tuple[str, list[ParsedCall]]:
        """At the end: the text still held back, and the calls the reply wrote."""
        text, calls = self._sniffer.finish()
        if self.rejected is not None:
            return "", []
        if self._cut:
            text, calls = "", []  # the answer ended where it began repeating the message
        else:
            text, calls = self._guarded(text, calls)
            if self.rejected is not None:
                return "", []
        if self._figures is not None:
            text = self._figures.finish(text)
            if self._figures.figures:
                self.rejected = ([], self._figure_reason())
                return "", []
        if self._results is not None and not calls:
            text = self._results.finish(text)
            if self._results.missing:
                missing = "; ".join(" ".join(r.split()) for r in self._results.missing)
                self.rejected = ([], _LEFT_OUT.format(results=missing))
                return "", []
        return text, calls

    def _guarded(self, text: str, calls: list[ParsedCall]) -> tuple[str, list[ParsedCall]]:
        """The reply's last text through the echo and talk guards."""
        if self._echo is not None:
            text = self._echo.feed(text)
            if self._echo.echoed:
                if not self._answered and not text.strip():
                    self.rejected = ([], self._echo_reason())
                return text, []
            # a short reply, or its last line, that only began like the message
            text += self._echo.release() if self._echo.holding else ""
        if self._talk is not None and self._talk.holding:
            text = self._talk.feed(text)
            if self._talk.talked:
                self.rejected = ([], self._talk_reason())
                return "", []
            text += self._talk.release()  # a short reply that only opened like talk
        return text, calls

    @property
    def _answered(self) -> bool:
        """Whether the reply has said something: out already, or held for its figures."""
        return (
            self.text_released
            or (self._figures is not None and self._figures.pending)
            or (self._results is not None and self._results.pending)
        )

    def _figure_reason(self) -> str:
        assert self._figures is not None
        if self._unsourced:
            return _FAILED_FIGURE if self._failed else _UNTOOLED_FIGURE
        return _UNSAID_FIGURE.format(tools=" or ".join(self._figure_tools))

    def _talk_reason(self) -> str:
        return _TALKED_ANSWER if self._plan.answer_turn else _TALKED

    def _echo_reason(self) -> str:
        assert self._echo is not None
        if self._echo.refused:
            return _REFUSED_RESULT
        return _ECHOED_MESSAGE if self._plan.answer_turn else _ECHOED_EARLIER

    def _review_calls(self, calls: Sequence[ParsedCall]) -> str | None:
        plan = self._plan
        reason = review_calls(
            [(call.name, call.arguments) for call in calls],
            plan.tools,
            plan.items,
            plan.instructions,
            grounding=self._grounding,
        )
        due = self._hold_tools
        if reason is not None and due and not any(call.name in due for call in calls):
            # a call rejected where another was due: asked for that one instead ("...
            # and is it raining there right now?" after a conversion: the 1.5B called
            # the clock, which went to the text pass and the result note, no weather)
            return self._call_hold
        names = {call.name for call in calls}  # (never empty: a reply's calls)
        if self._lookups_due and names <= calculators(plan.tools):
            # a calculation before every result it needs is in: "how many hours ahead
            # of him am I?" (Sydney, Los Angeles) went to `21 - 1100` after Sydney's
            # time alone
            return self._call_hold
        if due and not names & (set(due) | asked_tools(plan.tools, plan.items)):
            # calls the message does not ask for, where another call is due: "is their
            # office even open at this hour?" (Kathmandu) went to a stock price for
            # `KTM` (a three-letter code passes as said), held to the clock
            return self._call_hold
        return reason

    @property
    def calls_only_next(self) -> bool:
        """After a rejection: whether the re-sample may only call (its prose would
        answer the reason, about functions): after a rejected call or talk about one,
        outside an answer turn, and after a figure nobody said (`FigureGuard`), in any
        turn. The provider decodes such a re-sample under the call grammar."""
        if self.rejected is None:
            return False
        if self._figures is not None and self._figures.figures:
            # asked to call the tool that computes the figure (none gave, or has, it)
            return not self._unsourced
        calls, reason = self.rejected
        if reason == self._call_hold:
            return True  # prose where a call was due: asked for the call
        if self._plan.answer_turn:
            return False
        return bool(calls) or reason == _TALKED

    @property
    def refused(self) -> bool:
        """Whether the reply was rejected for being a stock refusal (`_REFUSALS`)."""
        return self._echo is not None and self._echo.refused

    @property
    def talked(self) -> bool:
        """Whether the reply was rejected for talking about a function (`TalkGuard`)."""
        return self._talk is not None and self._talk.talked

    @property
    def held_to(self) -> tuple[str, ...]:
        """After prose where a call was due (`_call_hold`): the tools that call is due
        to, which the re-sample's grammar then admits alone (asked "Is Google doing
        better?" after Microsoft's stock price, the held re-sample called the
        calculator with "100 - 50"); else empty."""
        if self.rejected is None or self.rejected[1] != self._call_hold:
            return ()
        return self._hold_tools

    @property
    def unsourced_figure(self) -> bool:
        """After a rejection: whether the reply stated a figure nobody said where no
        function could have given it: every call made for the message had failed
        (`only_failures`), no offered tool gives what it asks for (`untooled_topic`),
        or, in the text pass, every call for the lookup it asks for was rejected
        (`unlooked`)."""
        return self._unsourced and self._figures is not None and bool(self._figures.figures)

    @property
    def unasked(self) -> bool:
        """After a rejection: whether it was only that nobody asked for these calls
        (`_call_review.unasked`), so that the answer should be plain text."""
        if self.unsourced_figure:
            return True  # a figure no function gave: say it could not be found
        if self.rejected is None or not self._grounding:
            return False
        if self.rejected[1] == self._call_hold:
            return False  # a call is due: re-sampled for it
        plan = self._plan
        if self.rejected[1] == _TALKED:
            return not asks_for_any(plan.tools, plan.items)
        calls = [(call.name, call.arguments) for call in self.rejected[0]]
        return unasked(calls, plan.tools, plan.items, plan.instructions)

    @property
    def decision(self) -> str:
        """`"call"` if the reply was a function call, else `"text"` (after `finish`)."""
        called = self._native_calls or self._streamed or self._sniffer.decision == "call"
        return "call" if called else "text"
