"""A small GBNF recogniser for tests: does a llama.cpp grammar accept a whole string?

Covers what `_call_grammar` writes: rules, string literals, character classes (with
`^`, ranges, `\\xHH` / `\\uHHHH` escapes), groups, `|`, and the `* + ? {m,n}`
repetitions. Backtracking, so only for the short strings of a test.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "]": "]", "[": "[", "-": "-"}
_ESCAPES["^"] = "^"
_ESCAPES["/"] = "/"


@dataclass
class Grammar:
    rules: dict[str, Any] = field(default_factory=dict)

    def accepts(self, text: str, rule: str = "root") -> bool:
        return any(end == len(text) for end in self._match(("ref", rule), text, 0, 0))

    def _match(self, node: Any, text: str, pos: int, depth: int) -> Iterator[int]:
        if depth > 400:
            return
        kind = node[0]
        if kind == "lit":
            if text.startswith(node[1], pos):
                yield pos + len(node[1])
        elif kind == "class":
            if pos < len(text) and _in_class(node, text[pos]):
                yield pos + 1
        elif kind == "ref":
            yield from self._match(self.rules[node[1]], text, pos, depth + 1)
        elif kind == "alt":
            for option in node[1]:
                yield from self._match(option, text, pos, depth + 1)
        elif kind == "seq":
            yield from self._seq(node[1], 0, text, pos, depth)
        elif kind == "rep":
            yield from self._rep(node, text, pos, 0, depth)

    def _seq(self, parts: list[Any], i: int, text: str, pos: int, depth: int) -> Iterator[int]:
        if i == len(parts):
            yield pos
            return
        for end in self._match(parts[i], text, pos, depth + 1):
            yield from self._seq(parts, i + 1, text, end, depth)

    def _rep(self, node: Any, text: str, pos: int, count: int, depth: int) -> Iterator[int]:
        _, inner, low, high = node
        if high is None or count < high:
            for end in self._match(inner, text, pos, depth + 1):
                if end != pos:
                    yield from self._rep(node, text, end, count + 1, depth + 1)
        if count >= low:
            yield pos


def _in_class(node: Any, ch: str) -> bool:
    _, negated, items = node
    hit = any(low <= ch <= high for low, high in items)
    return hit != negated


def _char(src: str, i: int) -> tuple[str, int]:
    if src[i] != "\\":
        return src[i], i + 1
    code = src[i + 1]
    if code == "x":
        return chr(int(src[i + 2 : i + 4], 16)), i + 4
    if code == "u":
        return chr(int(src[i + 2 : i + 6], 16)), i + 6
    return _ESCAPES[code], i + 2


class _Parser:
    def __init__(self, src: str) -> None:
        self.src = src
        self.i = 0

    def ws(self, newlines: bool = False) -> None:
        while self.i < len(self.src) and (
            self.src[self.i] in " \t" or (newlines and self.src[self.i] == "\n")
        ):
            self.i += 1

    def alternatives(self) -> Any:
        options = [self.sequence()]
        while self.peek() == "|":
            self.i += 1
            options.append(self.sequence())
        return ("alt", options) if len(options) > 1 else options[0]

    def peek(self) -> str:
        self.ws()
        return self.src[self.i] if self.i < len(self.src) else ""

    def sequence(self) -> Any:
        parts = []
        while (ch := self.peek()) and ch not in "|)\n":
            parts.append(self.postfix(self.atom()))
        return ("seq", parts)

    def atom(self) -> Any:
        ch = self.src[self.i]
        if ch == '"':
            self.i += 1
            out = []
            while self.src[self.i] != '"':
                c, self.i = _char(self.src, self.i)
                out.append(c)
            self.i += 1
            return ("lit", "".join(out))
        if ch == "[":
            self.i += 1
            negated = self.src[self.i] == "^"
            self.i += negated
            items = []
            while self.src[self.i] != "]":
                low, self.i = _char(self.src, self.i)
                high = low
                if self.src[self.i] == "-" and self.src[self.i + 1] != "]":
                    high, self.i = _char(self.src, self.i + 1)
                items.append((low, high))
            self.i += 1
            return ("class", negated, items)
        if ch == "(":
            self.i += 1
            inner = self.alternatives()
            self.ws(newlines=True)
            assert self.src[self.i] == ")", self.src[self.i :]
            self.i += 1
            return inner
        name = re.match(r"[a-zA-Z0-9-]+", self.src[self.i :])
        assert name, self.src[self.i : self.i + 20]
        self.i += len(name.group())
        return ("ref", name.group())

    def postfix(self, node: Any) -> Any:
        while self.i < len(self.src) and self.src[self.i] in "*+?{":
            ch = self.src[self.i]
            if ch == "{":
                end = self.src.index("}", self.i)
                low_s, _, high_s = self.src[self.i + 1 : end].partition(",")
                low = int(low_s)
                high = int(high_s) if "," in self.src[self.i : end] and high_s else None
                high = low if "," not in self.src[self.i : end] else high
                node = ("rep", node, low, high)
                self.i = end + 1
            else:
                low, high = {"*": (0, None), "+": (1, None), "?": (0, 1)}[ch]
                node = ("rep", node, low, high)
                self.i += 1
        return node


def parse(src: str) -> Grammar:
    grammar = Grammar()
    for line in src.strip().splitlines():
        name, _, body = line.partition("::=")
        parser = _Parser(body)
        grammar.rules[name.strip()] = parser.alternatives()
        assert parser.i == len(body.rstrip()) or not body[parser.i :].strip(), line
    return grammar
