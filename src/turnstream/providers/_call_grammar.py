"""A lazily triggered GBNF grammar for the calls the local model writes as text (pure).

In the prompted strategy the model writes a call as text (`{"name": ..., "arguments":
{...}}`, bare, in a ```json fence or in `<tool_call>` tags). `call_grammar` builds a
llama.cpp GBNF grammar from the offered tools' JSON schemas: once the reply opens
like a call (`CALL_TRIGGERS`), every token must continue a call whose `arguments`
fit its tool's schema. Until then nothing is constrained, so prose is untouched.

llama.cpp's chat endpoint overwrites `grammar_lazy` and `grammar_triggers` with its
chat template's own (none without `tools`), which would constrain the reply from
its first token. Its completion endpoint takes them as given, so a constrained
turn is sent there: `completion_body` renders the messages with Qwen's ChatML
template (the same text the chat endpoint renders, token for token, so the prompt
cache is shared) and `chat_chunk` reads the completion chunks back as chat chunks.

What the grammar enforces of a schema: `type` (one or several), `properties`,
`required`, `additionalProperties: false`, `items`, `enum`, `const`, `anyOf` /
`oneOf`. Other keywords (`pattern`, `minimum`, `format`, `$ref`, ...) are not
enforced: the value is held to its `type` alone (or to any JSON value).

A call to a name no tool has stays possible (the runtime answers it as an unknown
tool, listing the real ones, so the model can recover); its arguments are an empty
object. Known names can only be followed by their own schema's arguments.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "CALL_TRIGGERS",
    "TEXT_GRAMMAR",
    "call_grammar",
    "chat_chunk",
    "chatml_prompt",
    "completion_body",
    "text_body",
]

# llama.cpp's `common_grammar_trigger_type`: 3 is PATTERN_FULL, a regex that must match
# the whole reply so far; the grammar is fed the reply from the first group onwards.
_PATTERN_FULL = 3
CALL_TRIGGERS: tuple[dict[str, Any], ...] = (
    {"type": _PATTERN_FULL, "value": r'^\s*(\{\s*"name"|<tool_call>|```json)[\s\S]*'},
)
"""A reply that opens as a call, in any of the three shapes the grammar's root takes.
Anchored at the start: a call on a line after prose, which the `ReplySniffer` also
reads, is decoded without the grammar (it is parsed as written)."""

_MAX_WS = 8  # bounded, so a constrained model cannot pad a call with endless spaces

_BASE_RULES = {
    "ws": f"[ \\t\\n]{{0,{_MAX_WS}}}",
    "char": '[^"\\\\\\x7F\\x00-\\x1F] | "\\\\" (["\\\\/bfnrt] | "u" [0-9a-fA-F]{4})',
    "string": '"\\"" char* "\\""',
    "integer": '"-"? ([0-9] | [1-9] [0-9]{0,15})',
    "number": 'integer ("." [0-9]{1,16})? ([eE] [-+]? [0-9]{1,3})?',
    "boolean": '"true" | "false"',
    "null": '"null"',
    "value": "object | array | string | number | boolean | null",
    "object": '"{" ws (member (ws "," ws member)*)? ws "}"',
    "member": 'string ws ":" ws value',
    "array": '"[" ws (value (ws "," ws value)*)? ws "]"',
}


def _literal(text: str) -> str:
    """A GBNF string literal that matches `text` exactly."""
    return json.dumps(text, ensure_ascii=False)


def _json_literal(value: Any) -> str:
    """A GBNF literal for one JSON value, written as `json.dumps` writes it."""
    return _literal(json.dumps(value, ensure_ascii=False))


class _Rules:
    """The rules of one grammar, named uniquely, each written once."""

    def __init__(self) -> None:
        self.rules: dict[str, str] = dict(_BASE_RULES)

    def add(self, name: str, body: str) -> str:
        base = re.sub(r"[^a-zA-Z0-9-]+", "-", name).strip("-").lower() or "r"
        candidate, n = base, 1
        while candidate in self.rules and self.rules[candidate] != body:
            n += 1
            candidate = f"{base}-{n}"
        self.rules[candidate] = body
        return candidate

    def render(self, root: str) -> str:
        lines = [f"root ::= {root}"]
        lines += [f"{name} ::= {body}" for name, body in self.rules.items()]
        return "\n".join(lines) + "\n"


_TYPE_RULES = {
    "string": "string",
    "integer": "integer",
    "number": "number",
    "boolean": "boolean",
    "null": "null",
    "array": "array",
    "object": "object",
}


def _schema(schema: Any, name: str, rules: _Rules) -> str:
    """The GBNF expression (a rule name or a literal) for values that fit `schema`."""
    if not isinstance(schema, Mapping):
        return "value"
    if "const" in schema:
        return _json_literal(schema["const"])
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return rules.add(name, " | ".join(_json_literal(v) for v in schema["enum"]))
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            alternatives = [_schema(o, f"{name}-{i}", rules) for i, o in enumerate(options)]
            return rules.add(name, " | ".join(alternatives))
    kind = schema.get("type")
    if isinstance(kind, list):
        alternatives = [_schema({**schema, "type": k}, f"{name}-{k}", rules) for k in kind]
        return rules.add(name, " | ".join(alternatives))
    if kind == "object" or (kind is None and "properties" in schema):
        return _object(schema, name, rules)
    if kind == "array":
        item = _schema(schema.get("items"), f"{name}-item", rules)
        return rules.add(name, f'"[" ws ({item} (ws "," ws {item})*)? ws "]"')
    if isinstance(kind, str) and kind in _TYPE_RULES:
        return _TYPE_RULES[kind]
    return "value"


def _object(schema: Mapping[str, Any], name: str, rules: _Rules) -> str:
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        properties = {}
    closed = schema.get("additionalProperties") is False
    if not properties and not closed:
        return "object"
    required_keys = set(schema.get("required") or ())
    required: list[str] = []
    optional: list[tuple[str, str]] = []
    for key, sub in properties.items():
        value = _schema(sub, f"{name}-{key}", rules)
        pair = f'{_literal(json.dumps(key, ensure_ascii=False))} ws ":" ws {value}'
        if key in required_keys:
            required.append(pair)
        else:
            optional.append((str(key), pair))
    if not closed:
        # any further key after the known ones, but not one of them again: a second
        # "unit" would slip a value past its own schema
        other = _other_name([str(key) for key in properties], rules)
        optional.append(("*", rules.add(f"{name}-more", f'"\\"" {other} ws ":" ws value')))
    # As llama.cpp's own converter does: the required keys first, in the schema's
    # order, then any ordered subset of the optional ones.
    body = ' ws "," ws '.join(required)
    if optional:
        alternatives = " | ".join(
            _optional_tail(optional[i:], name, rules, first_optional=False)
            for i in range(len(optional))
        )
        body += f' (ws "," ws ({alternatives}))?' if required else f" ({alternatives})?"
    return rules.add(name, f'"{{" ws {body} ws "}}"')


def _optional_tail(
    pairs: Sequence[tuple[str, str]], name: str, rules: _Rules, *, first_optional: bool
) -> str:
    """`pairs` in order, each one optional, comma-separated (`*` repeats)."""
    (key, pair), rest = pairs[0], pairs[1:]
    comma = f'(ws "," ws {pair})'
    if first_optional:
        expression = comma + ("*" if key == "*" else "?")
    else:
        expression = pair + (f" {comma}*" if key == "*" else "")
    if rest:
        tail = _optional_tail(rest, name, rules, first_optional=True)
        expression += " " + rules.add(f"{name}-{key}-rest", tail)
    return expression


def _class_char(ch: str) -> str:
    if ch in '\\]^-"':
        return "\\" + ch
    if ord(ch) < 0x20 or ord(ch) > 0x7E:
        return f"\\u{ord(ch):04X}" if ord(ch) <= 0xFFFF else ch
    return ch


def _other_name(names: Sequence[str], rules: _Rules) -> str:
    """The rest of a JSON string, after its opening quote and with its closing one,
    that spells none of `names`: a walk down the trie of the names that may leave it
    at any point, or end anywhere but on one of them."""
    trie: dict[str, Any] = {}
    for word in names:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def build(node: Mapping[str, Any], depth: int) -> str:
        children = sorted(k for k in node if k)
        excluded = "".join(_class_char(c) for c in children)
        alternatives = [f'[^"\\\\\\x00-\\x1F{excluded}] char* "\\""']
        alternatives += [f"{_literal(c)} {build(node[c], depth + 1)}" for c in children]
        if depth > 0 and "" not in node:
            alternatives.append('"\\""')
        return rules.add("other-name", " | ".join(alternatives))

    return build(trie, 0)


def call_grammar(
    tools: Sequence[Mapping[str, Any]], *, parallel: bool = True, others: bool = True
) -> str | None:
    """The grammar of a reply that is one call (or, with `parallel`, several) to `tools`.

    `tools` are Responses function tools (`name`, `parameters`). None when none is
    offered. With `others`, a call may also name a function none of them is (with
    empty arguments: it is answered as unknown); without, only these.
    """
    named = [t for t in tools if isinstance(t.get("name"), str)]
    if not named:
        return None
    rules = _Rules()
    heads = []
    for tool in named:
        arguments = _schema(
            tool.get("parameters") or {"type": "object"}, f"{tool['name']}-args", rules
        )
        name = _literal(json.dumps(tool["name"], ensure_ascii=False))
        heads.append(f'{name} ws "," ws "\\"arguments\\"" ws ":" ws {arguments}')
    if others:
        other = _other_name([t["name"] for t in named], rules)
        # An imagined function's arguments mean nothing (the call is answered as
        # unknown), and written out they can run past the token limit (a whole story
        # as `story`), leaving a cut-off call that would reach the user as raw JSON:
        # so they are empty.
        heads.append(f'"\\"" {other} ws "," ws "\\"arguments\\"" ws ":" ws "{{" ws "}}"')
    rules.add("call-head", " | ".join(heads))
    rules.add("call", '"{" ws "\\"name\\"" ws ":" ws call-head ws "}"')
    calls = "call ([ \\t\\n]{1,4} call){0,3}" if parallel else "call"
    rules.add("calls", calls)
    root = 'calls | "<tool_call>" ws calls ws "</tool_call>" | "```json" ws calls ws "```"'
    return rules.render(root)


# --- the completion endpoint --------------------------------------------------------


def chatml_prompt(messages: Sequence[Mapping[str, Any]]) -> str | None:
    """Qwen's ChatML rendering of plain `messages`, ready for the assistant's reply.

    None when a message is not plain text in the `system`, `user` or `assistant` role
    (tool calls, content parts) or the last one is the assistant's (which llama.cpp's
    chat endpoint would continue): those go to the chat endpoint as they are.
    """
    if not messages or messages[-1].get("role") == "assistant":
        return None
    if messages[0].get("role") != "system":
        return None  # the template would add Qwen's default system prompt
    parts = []
    for message in messages:
        role, content = message.get("role"), message.get("content")
        if set(message) - {"role", "content"} or role not in ("system", "user", "assistant"):
            return None
        if not isinstance(content, str):
            return None
        parts.append(f"<|im_start|>{role}\n{content}<|im_end|>\n")
    return "".join(parts) + "<|im_start|>assistant\n"


_CHAT_ONLY = ("messages", "stream_options", "parallel_tool_calls", "tools", "response_format")


def completion_body(
    chat_body: Mapping[str, Any], grammar: str, *, lazy: bool = True
) -> dict[str, Any] | None:
    """The completion request equivalent to `chat_body`, decoded under `grammar` once a
    call starts (or, not `lazy`, from its first token: the reply must be a call);
    None when the messages cannot be rendered (`chatml_prompt`)."""
    if "tools" in chat_body or "response_format" in chat_body:
        return None  # llama.cpp's own grammar for those; ours would clash
    prompt = chatml_prompt(chat_body.get("messages") or ())
    if prompt is None:
        return None
    body = {k: v for k, v in chat_body.items() if k not in _CHAT_ONLY}
    body.update(prompt=prompt, grammar=grammar, grammar_lazy=lazy)
    if lazy:
        body["grammar_triggers"] = [dict(t) for t in CALL_TRIGGERS]
    return body


TEXT_GRAMMAR = (
    'root ::= [^{<\\[(`\\x00 \\t\\n] ([^{\\x00] | "{" brace)*\n'
    'brace ::= [^"\'“”‘’{n\\x00 \\t\\n] | "n" n1\n'
    'n1 ::= [^a{\\x00] | "a" n2\n'
    'n2 ::= [^m{\\x00] | "m" n3\n'
    'n3 ::= [^e{\\x00] | "e" n4\n'
    # (a word goes on, or the braces close: not `{name:`, `{name :`, `{name":`)
    "n4 ::= [a-zA-Z0-9_}]\n"
)
"""A reply that cannot open as a call (with a brace, a bracket, a parenthesis, a tag or
a fence), and has no call object later either (no brace followed by a quote, straight
or curly, a space, a brace or a bare `name:` key): for a turn that must end in plain
text. A text pass allowed to, wrote its answer and then a call to the tool it had been
refused ("... is Canberra. {"name": ...}"); one barred only straight quotes wrote the
call in curly ones inside a fence ("... you can use the following function call:
```json {“name”: “calc”, ...}```"), and one that barred those, with its key bare
("Therefore, the result is: ```json {name: "calc", ...}```", to chit-chat). llama.cpp
reads the grammar's characters as UTF-8 code points."""


def text_body(chat_body: Mapping[str, Any], grammar: str = TEXT_GRAMMAR) -> dict[str, Any]:
    """The request equivalent to `chat_body` whose reply is prose, never a call (or,
    given another `grammar`, a reply that fits it).

    Rendered for the completion endpoint when it can be, so the prompt is the very
    text (and prompt cache) of the chat request; else the chat endpoint, which takes
    a grammar too when no `tools` are sent.
    """
    prompt = chatml_prompt(chat_body.get("messages") or ())
    if prompt is None or "tools" in chat_body or "response_format" in chat_body:
        chat = {k: v for k, v in chat_body.items() if k not in ("tools", "response_format")}
        return {**chat, "grammar": grammar}
    body = {k: v for k, v in chat_body.items() if k not in _CHAT_ONLY}
    body.update(prompt=prompt, grammar=grammar)
    return body


def chat_chunk(chunk: Mapping[str, Any]) -> Mapping[str, Any]:
    """A completion chunk (`choices[].text`) as the chat chunk it stands for."""
    choices = chunk.get("choices")
    if not isinstance(choices, list):
        return chunk
    converted = []
    for choice in choices:
        if not isinstance(choice, Mapping) or "text" not in choice or "delta" in choice:
            converted.append(choice)
            continue
        text = choice.get("text")
        delta = {"content": text} if isinstance(text, str) and text else {}
        converted.append(
            {
                "index": choice.get("index", 0),
                "delta": delta,
                "finish_reason": choice.get("finish_reason"),
            }
        )
    return {**chunk, "choices": converted}
