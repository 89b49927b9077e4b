"""The `echo` model: a deterministic test double, not a language model.

`EchoProvider` answers every request by rule, so tests, demos and benchmarks get
predictable streams with no model weights and no network:

1. If the context ends with one or more `function_call_output` items, it answers with
   text that quotes every output verbatim: `"Tool results: <out1>; <out2>"`.
2. Otherwise, if function tools are offered and `tool_choice` allows a call (anything
   but `"none"`; `allowed_tools` narrows the set, `{"type": "function", "name": X}`
   forces X), it calls a tool: the one whose name appears in the last user message,
   else the first offered tool. With `parallel_tool_calls` and several tool names in
   the message it calls each named tool, in order of appearance. The arguments are the
   first JSON object in the message that fits the tool's schema (one written after the
   tool's name is preferred), else a minimal object that satisfies the schema.
3. Otherwise it echoes the text of the last user message.

Text streams a word at a time (whitespace kept, so the pieces concatenate to the whole
text) and arguments a few characters at a time; every finished item is followed by
`ItemEndDelta`, then come a `UsageDelta` (words counted as tokens) and a `FinishDelta`.
`max_output_tokens` caps the number of words/argument pieces and ends with
`FinishDelta("length")`. Call ids are left to the engine (`call_id=None`).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncGenerator, Iterator, Mapping, Sequence
from typing import Any

from turnstream.engine.deltas import (
    Delta,
    FinishDelta,
    ItemEndDelta,
    OutputTextDelta,
    ToolCallDelta,
    UsageDelta,
)
from turnstream.providers.base import GenerationRequest, Provider

__all__ = ["EchoProvider", "echo_deltas"]

_ARGUMENT_PIECE = 4
"""Characters of arguments per `ToolCallDelta`: small, so tests see real splitting."""

_WORD = re.compile(r"\S+\s*|\s+")


class EchoProvider(Provider):
    """A deterministic test model serving the model name `echo`.

    Args:
        delay: Seconds to wait between deltas, so tests can disconnect mid-stream.
        models: The public model names to answer for.
        hold_after: If set, an answer's text stops after this many words and the stream
            waits until it is cancelled: a test can stop a turn mid-answer however slow
            the machine is. Tool calls are not held.
    """

    writes_summaries = False
    """It would only echo the request: compaction summarises without it."""

    def __init__(
        self,
        delay: float = 0.0,
        *,
        models: Sequence[str] = ("echo",),
        hold_after: int | None = None,
    ) -> None:
        self._delay = delay
        self._models = tuple(models)
        self._hold_after = hold_after

    def models(self) -> Sequence[str]:
        return self._models

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[Delta, None]:
        words = 0
        for number, delta in enumerate(echo_deltas(request)):
            if isinstance(delta, OutputTextDelta) and words == self._hold_after:
                await asyncio.Event().wait()  # until the turn is cancelled
            words += isinstance(delta, OutputTextDelta)
            if number and self._delay:
                await asyncio.sleep(self._delay)
            yield delta

    async def aclose(self) -> None:
        return None


def echo_deltas(request: GenerationRequest) -> list[Delta]:
    """The whole echo answer to `request`, as the deltas `EchoProvider` streams."""
    budget = _Budget(request.max_output_tokens)
    deltas: list[Delta] = []
    outputs = _trailing_outputs(request.items)
    calls = [] if outputs else _planned_calls(request)
    if outputs:
        deltas += _text_deltas("Tool results: " + "; ".join(outputs), budget)
    elif calls:
        for index, (name, arguments) in enumerate(calls):
            deltas += _call_deltas(index, name, arguments, budget)
            if budget.exhausted:
                break
    else:
        deltas += _text_deltas(_last_user_text(request.items), budget)
    deltas.append(UsageDelta(input_tokens=_input_tokens(request), output_tokens=budget.used))
    deltas.append(FinishDelta("length" if budget.exhausted else "stop"))
    return deltas


class _Budget:
    """Counts output tokens (words, argument pieces) against `max_output_tokens`."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.used = 0
        self.exhausted = False

    def take(self) -> bool:
        if self.limit is not None and self.used >= self.limit:
            self.exhausted = True
            return False
        self.used += 1
        return True


def _text_deltas(text: str, budget: _Budget) -> Iterator[Delta]:
    words = _WORD.findall(text)
    if not words:
        return
    for word in words:
        if not word.isspace() and not budget.take():
            return  # truncated: the item stays open, the engine marks it incomplete
        yield OutputTextDelta(word)
    yield ItemEndDelta()


def _call_deltas(index: int, name: str, arguments: str, budget: _Budget) -> Iterator[Delta]:
    pieces = [arguments[i : i + _ARGUMENT_PIECE] for i in range(0, len(arguments), _ARGUMENT_PIECE)]
    yield ToolCallDelta(index=index, name=name)
    for piece in pieces:
        if not budget.take():
            return
        yield ToolCallDelta(index=index, arguments=piece)
    yield ItemEndDelta()


# --- reading the context ---------------------------------------------------------------


def _trailing_outputs(items: Sequence[Mapping[str, Any]]) -> list[str]:
    outputs: list[str] = []
    for item in reversed(items):
        if item.get("type") != "function_call_output":
            break
        outputs.append(_output_text(item.get("output")))
    return outputs[::-1]


def _output_text(output: object) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        return "".join(str(part.get("text", "")) for part in output if isinstance(part, Mapping))
    return "" if output is None else json.dumps(output)


def _last_user_text(items: Sequence[Mapping[str, Any]]) -> str:
    for item in reversed(items):
        if item.get("role") == "user" and item.get("type", "message") == "message":
            content = item.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return "\n".join(
                    str(part.get("text", ""))
                    for part in content
                    if isinstance(part, Mapping) and part.get("type") == "input_text"
                )
    return ""


def _input_tokens(request: GenerationRequest) -> int:
    texts = [request.instructions or ""]
    for item in request.items:
        texts.append(_output_text(item.get("content") or item.get("output")))
        texts.append(str(item.get("arguments") or ""))
    return sum(len(text.split()) for text in texts)


# --- choosing tool calls ---------------------------------------------------------------


def _planned_calls(request: GenerationRequest) -> list[tuple[str, str]]:
    """The `(name, arguments)` of the calls to make; empty means "answer with text"."""
    tools = {
        str(tool["name"]): tool
        for tool in request.tools
        if tool.get("type") == "function" and tool.get("name")
    }
    choice = request.tool_choice
    if isinstance(choice, Mapping):
        names = [str(t.get("name")) for t in choice.get("tools", ()) if isinstance(t, Mapping)]
        if choice.get("type") == "function":
            names = [str(choice.get("name"))]
        tools = {name: tools[name] for name in names if name in tools}
    elif choice == "none":
        tools = {}
    if not tools:
        return []
    text = _last_user_text(request.items)
    mentions = _mentions(text, tools)
    if not mentions:
        mentions = [(0, next(iter(tools)))]
    if not request.parallel_tool_calls:
        mentions = mentions[:1]
    objects = _json_objects(text)
    calls = []
    for number, (position, name) in enumerate(mentions):
        end = mentions[number + 1][0] if number + 1 < len(mentions) else len(text)
        schema = tools[name].get("parameters") or {"type": "object"}
        own = [obj for at, obj in objects if position <= at < end]
        fits = [obj for obj in own + [obj for _, obj in objects] if _fits(obj, schema)]
        arguments = fits[0] if fits else _minimal(schema)
        calls.append((name, json.dumps(arguments, separators=(",", ":"))))
    return calls


def _mentions(text: str, tools: Mapping[str, object]) -> list[tuple[int, str]]:
    found = []
    for name in tools:
        match = re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text)
        if match:
            found.append((match.start(), name))
    return sorted(found)


def _json_objects(text: str) -> list[tuple[int, dict[str, Any]]]:
    decoder = json.JSONDecoder()
    found = []
    position = text.find("{")
    while position != -1:
        try:
            value, end = decoder.raw_decode(text, position)
        except ValueError:
            position = text.find("{", position + 1)
            continue
        if isinstance(value, dict):
            found.append((position, value))
        position = text.find("{", end)
    return found


# --- a small JSON Schema subset --------------------------------------------------------

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}

_ZEROS: dict[str, Any] = {
    "string": "",
    "integer": 0,
    "number": 0,
    "boolean": False,
    "array": [],
    "null": None,
}


def _types(schema: Mapping[str, Any]) -> list[str]:
    declared = schema.get("type")
    if isinstance(declared, str):
        return [declared]
    if isinstance(declared, list):
        return [str(t) for t in declared]
    return ["object"] if "properties" in schema else []


def _fits(value: object, schema: object) -> bool:
    """Checks `type`, `enum`, `const`, `required`, `properties`, `items` and
    `additionalProperties: false`; anything else in the schema is accepted."""
    if not isinstance(schema, Mapping):
        return True
    if "const" in schema and value != schema["const"]:
        return False
    if "enum" in schema and value not in schema["enum"]:
        return False
    alternatives = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(alternatives, list) and not any(_fits(value, alt) for alt in alternatives):
        return False
    types = _types(schema)
    if types and not any(_is_type(value, name) for name in types):
        return False
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        if any(key not in value for key in schema.get("required", ())):
            return False
        if schema.get("additionalProperties") is False and set(value) - set(properties):
            return False
        return all(_fits(value[key], sub) for key, sub in properties.items() if key in value)
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return all(_fits(element, schema["items"]) for element in value)
    return True


def _is_type(value: object, name: str) -> bool:
    if isinstance(value, bool) and name in ("integer", "number"):
        return False
    if name == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _TYPES.get(name, (object,)))


def _minimal(schema: object) -> Any:
    """The smallest value that satisfies `schema`: required keys with zero values."""
    if not isinstance(schema, Mapping):
        return {}
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    alternatives = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(alternatives, list) and alternatives:
        return _minimal(alternatives[0])
    types = [t for t in _types(schema) if t != "null"] or _types(schema) or ["object"]
    if types[0] == "object":
        properties = schema.get("properties") or {}
        return {key: _minimal(properties.get(key, {})) for key in schema.get("required", ())}
    return _ZEROS.get(types[0], "")
