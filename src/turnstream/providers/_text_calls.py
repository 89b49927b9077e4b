"""Recognising function calls that small local models write as plain text.

The Qwen2.5-Coder models rarely wrap calls in Qwen's `<tool_call>` tags, so
llama.cpp's own parser misses many of them. What they do write, at the very start of
the reply or on a line of its own after a line of prose, is a call object: bare, in a
```json fence or in parentheses, with doubled braces (imitating a format string), in
python-dict quoting, or several of them in a row. This module is pure: `parse_calls`
reads a finished reply, and `ReplySniffer` holds back the start of a streamed reply,
and the start of each later line, until it is clearly prose (released at once, token
by token) or clearly a call (held to the end, then parsed).
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["ArgumentStream", "ParsedCall", "ReplySniffer", "call_name", "parse_calls"]

Decision = Literal["pending", "text", "call"]


@dataclass(frozen=True, slots=True)
class ParsedCall:
    """One recognised call: the function name and its arguments as JSON text."""

    name: str
    arguments: str


# What a call may open with once whitespace is removed. The reply is held back while
# it is a prefix of one of these, and counts as a call once it starts with one.
_WRAPPERS = ("", "```json", "```JSON", "```", "<tool_call>", "[", "(")
_OPENERS = tuple(
    f"{brace}{quote}{key}{quote}{colon}"
    for brace in ("{", "{{")
    # quoted, or bare with its colon (`{name: "calc", ...}`, JavaScript's spelling)
    for quote, colon in (('"', ""), ("'", ""), ("", ":"))
    for key in ("name", "function", "arguments", "type", "tool")
)
_CALL_STARTS = tuple(w + o for w in _WRAPPERS for o in _OPENERS)
_LONGEST_START = max(map(len, _CALL_STARTS))

_FENCE = re.compile(r"```[A-Za-z]*\s*(.*?)\s*(?:```|$)", re.DOTALL)
_TOOL_TAG = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)


def _compact_head(text: str) -> str:
    head: list[str] = []
    for ch in text:
        if not ch.isspace():
            head.append(ch)
            if len(head) >= _LONGEST_START:
                break
    return "".join(head)


def classify(prefix: str) -> Decision:
    """Decide from the start of a reply whether it is prose, a call, or undecided."""
    head = _compact_head(prefix)
    if not head:
        return "pending"
    if any(head.startswith(start) for start in _CALL_STARTS):
        return "call"
    if any(start.startswith(head) for start in _CALL_STARTS):
        return "pending"
    return "text"


def _unwrap(text: str) -> str:
    """Strip `<tool_call>` tags and code fences, joining what they held."""
    text = text.strip()
    if text.startswith("<tool_call>"):
        return "\n".join(m.group(1) for m in _TOOL_TAG.finditer(text))
    if text.startswith("```"):
        return "\n".join(m.group(1) for m in _FENCE.finditer(text))
    if text.startswith("("):  # the 0.5B model's `({"name": ...})`
        return text[1:].strip().removesuffix(")")
    return text


def _json_values(text: str) -> Iterator[Any]:
    """Decode consecutive JSON values from the start of `text`; stop at anything else."""
    decoder = json.JSONDecoder()
    pos = 0
    while True:
        while pos < len(text) and (text[pos].isspace() or text[pos] == ","):
            pos += 1
        if pos >= len(text) or text[pos] not in "{[":
            return
        try:
            value, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            value = _python_literal(text[pos:])
            if value is None:
                value = _bare_keyed(text[pos:])
            if value is None:
                return
            yield value
            return
        yield value


def _python_literal(text: str) -> Any:
    """A python-dict spelling of a call (`{'name': ...}`), as the smallest models write."""
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None


# a key without quotes, after an object's brace or a comma
_BARE_KEY = re.compile(r"([{,]\s*)([A-Za-z_]\w*)(\s*:)")


def _bare_keyed(text: str) -> Any:
    """A call object whose keys have no quotes (`{name: "calc", arguments: {...}}`), as
    the 1.5B wrote one in a code fence after a line of prose: shown raw to the user."""
    quoted = _BARE_KEY.sub(r'\1"\2"\3', text.strip())
    try:
        return json.JSONDecoder().raw_decode(quoted)[0]
    except json.JSONDecodeError:
        return _python_literal(quoted)


def _undouble(text: str) -> str:
    return text.replace("{{", "{").replace("}}", "}")


# Any short one-line name: the 0.5B model writes names such as "cook robot", and
# shown raw such a call is worse than an unknown-tool error it can recover from.
_CALLABLE_NAME = re.compile(r"[^\n]{1,64}")


def _as_call(
    value: Any, tool_names: Collection[str], *, unknown_names: bool = False
) -> ParsedCall | None:
    if not isinstance(value, dict):
        return None
    name = value.get("name")
    has_arguments = "arguments" in value or "parameters" in value
    arguments = value.get("arguments", value.get("parameters"))
    function = value.get("function")
    if isinstance(function, dict):  # OpenAI's {"type": "function", "function": {...}}
        name = function.get("name", name)
        arguments = function.get("arguments", arguments)
    elif isinstance(function, str) and name is None:
        name = function
    if not isinstance(name, str):
        return None
    # A call to a tool that does not exist is still a call when it is clearly shaped
    # as one (and `unknown_names` allows it); the runtime answers it as an unknown tool.
    unknown_ok = unknown_names and has_arguments and _CALLABLE_NAME.fullmatch(name)
    if tool_names and name not in tool_names and not unknown_ok:
        return None
    if arguments is None:
        arguments = {}
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            return None
    if not isinstance(arguments, dict):
        return None
    return ParsedCall(name=name, arguments=json.dumps(arguments, ensure_ascii=False))


def parse_calls(
    text: str, tool_names: Collection[str] = (), *, unknown_names: bool = False
) -> list[ParsedCall]:
    """Read the calls a reply opens with; an empty list means the reply is prose.

    Recognised: one or more call objects (`{"name": ..., "arguments": {...}}`,
    OpenAI's `{"type": "function", "function": {...}}`, or `parameters` instead of
    `arguments`), bare, in a list, in parentheses, in ```json fences, in `<tool_call>`
    tags, with doubled braces, or in python-dict quoting. With `tool_names`, a call to any
    other name makes the whole reply prose, unless `unknown_names` is set: then a
    call object that names a function and carries `arguments` (or `parameters`) is
    a call whatever the name. Text after the calls is dropped.
    """
    body = _unwrap(text)
    candidates = [_undouble(body), body] if body.startswith("{{") else [body]
    for candidate in candidates:
        calls = _leading_calls(candidate, tool_names, unknown_names=unknown_names)
        if calls:
            return calls
    return []


def _leading_calls(
    text: str, tool_names: Collection[str], *, unknown_names: bool = False
) -> list[ParsedCall]:
    calls: list[ParsedCall] = []
    for value in _json_values(text):
        items = value if isinstance(value, list) else [value]
        parsed = [_as_call(item, tool_names, unknown_names=unknown_names) for item in items]
        if not parsed or None in parsed:
            break
        calls.extend(call for call in parsed if call is not None)
    return calls


class ReplySniffer:
    """Holds back the start of a streamed reply until it is clearly text or a call.

    `feed` returns the text that may be shown now; `finish` returns what is left:
    either the held-back text (it was not a call after all) or the parsed calls.
    With `enabled=False` (no tools offered) everything passes straight through;
    `unknown_names` is passed on to `parse_calls`.

    With `late_calls`, prose streams out as it comes but a line that opens like a
    call is held back the same way: the small models announce a call in a line of prose and
    then write it ("I'll check the weather.\n{"name": ...}"). A call so found ends
    the reply's text; `late` tells that prose went out before it.
    """

    def __init__(
        self,
        tool_names: Collection[str] = (),
        *,
        enabled: bool = True,
        unknown_names: bool = False,
        late_calls: bool = False,
    ) -> None:
        self._tool_names = tool_names
        self._unknown_names = unknown_names
        self._late_calls = enabled and late_calls
        self._held: list[str] = []
        self._line = ""  # prose held from the start of a line that may open a call
        self._at_line_start = False
        self.late = False
        """A call after prose: held from its line to the end of the reply."""
        self.decision: Decision = "pending" if enabled else "text"

    def feed(self, text: str) -> str:
        """Take a piece of the reply; return the part that can be released now."""
        if self.decision == "text":
            return self._prose(text) if self._late_calls else text
        self._held.append(text)
        if self.decision == "pending":
            self.decision = classify("".join(self._held))
            if self.decision == "text":
                released = "".join(self._held)
                self._held.clear()
                return self._prose(released) if self._late_calls else released
        return ""

    def _prose(self, text: str) -> str:
        """Release prose up to a line that opens like a call (held, as the reply's start is)."""
        if self.late:
            self._held.append(text)
            return ""
        buffer, self._line = self._line + text, ""
        out: list[str] = []
        pos = 0
        while pos < len(buffer):
            if self._at_line_start:
                verdict = classify(buffer[pos:])
                if verdict == "call":
                    self.late = True
                    self._held = [buffer[pos:]]
                    return "".join(out)
                if verdict == "pending":
                    self._line = buffer[pos:]
                    return "".join(out)
            newline = buffer.find("\n", pos)
            end = len(buffer) if newline < 0 else newline + 1
            out.append(buffer[pos:end])
            self._at_line_start = newline >= 0
            pos = end
        return "".join(out)

    @property
    def held(self) -> str:
        """The reply held back so far (all of it, while it may be a call)."""
        return "".join(self._held)

    def finish(self) -> tuple[str, list[ParsedCall]]:
        """End of reply: `(text_still_held, calls)`; at most one of them is non-empty."""
        held = "".join(self._held)
        self._held.clear()
        if self.decision == "text" and not self.late:
            line, self._line = self._line, ""
            return held + line, []
        if not held:
            return "", []
        calls = parse_calls(held, self._tool_names, unknown_names=self._unknown_names)
        if calls:
            self.decision = "call"
            return "", calls
        self.decision = "text"
        self.late = False
        return held, []


# The opening of a call as the lazy call grammar writes it (`_call_grammar`), up to its
# name's closing quote; then up to the start of its arguments.
_NAME_HEAD = r'\s*(?:<tool_call>\s*|```json\s*)?\{\s*"name"\s*:\s*"((?:[^"\\\n]|\\.)*)"'
_CALL_NAME = re.compile(_NAME_HEAD)
_STREAMED_HEAD = re.compile(_NAME_HEAD + r'\s*,\s*"arguments"\s*:\s*')


def call_name(reply: str) -> str | None:
    """The function a reply that opens as a call names, once the name's string has
    closed (before its arguments are written); None until then, or for another shape."""
    head = _CALL_NAME.match(reply)
    if head is None:
        return None
    try:
        name: str = json.loads(f'"{head.group(1)}"')
    except json.JSONDecodeError:
        return None
    return name


class ArgumentStream:
    """The first call of a reply, read as it grows: its name, then its arguments text.

    `feed(reply)` takes the whole reply so far (what `ReplySniffer.held` holds) and
    returns the arguments text that is new since the last call: from the opening
    brace of `"arguments"` to its closing one, strings and nesting tracked, whatever
    comes after left alone. `name` is set once its string has closed and the
    arguments have begun; `complete` once their closing brace has arrived. Only the
    shape the call grammar enforces is read (`{"name": ..., "arguments": {...}}`,
    bare, fenced or tagged); for any other, `name` stays None.
    """

    def __init__(self) -> None:
        self.name: str | None = None
        self.complete = False
        self._pos = 0
        self._depth = 0
        self._in_string = False
        self._escaped = False

    def feed(self, reply: str) -> str:
        """The arguments text that `reply` adds to what was returned before."""
        if self.name is None and not self._read_head(reply):
            return ""
        if self.complete:
            return ""
        begin = self._pos
        for i in range(self._pos, len(reply)):
            ch = reply[i]
            if self._depth == 0 and ch.isspace() and i == begin:
                begin += 1  # not part of the arguments yet
            elif self._step(ch):
                self.complete = True
                self._pos = i + 1
                return reply[begin : i + 1]
        self._pos = len(reply)
        return reply[begin:]

    def _read_head(self, reply: str) -> bool:
        head = _STREAMED_HEAD.match(reply)
        if head is None:
            return False
        try:
            self.name = json.loads(f'"{head.group(1)}"')
        except json.JSONDecodeError:
            return False
        self._pos = head.end()
        return True

    def _step(self, ch: str) -> bool:
        """Track one character of the arguments; True when it closes them."""
        if self._in_string:
            if self._escaped:
                self._escaped = False
            elif ch == "\\":
                self._escaped = True
            elif ch == '"':
                self._in_string = False
        elif ch == '"':
            self._in_string = True
        elif ch in "{[":
            self._depth += 1
        elif ch in "}]":
            self._depth -= 1
            return self._depth <= 0
        return False
