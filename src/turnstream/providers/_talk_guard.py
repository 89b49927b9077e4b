"""Holding back a reply that talks about calling a function instead of calling it.

With tools offered, the 1.5B sometimes answers in prose about the machinery: "To
turn off the lights in the living room, you can use the `turn_off_lights` function."
(no such tool), "To get the weather in Paris today, I'll need to call the
`current_time` function", "To determine who wrote Hamlet, we can use the `calculate`
function." Such a reply is neither the call nor the answer. It opens the same way each
time: a purpose clause or an announcement (`_LEADS`), with the function named in its
first sentence, after a word of assent at most ("Sure, I can help you with that.").
`TalkGuard` holds only replies that open like that, and only until that sentence
ends: any other reply streams as it comes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_LEADS = (
    "to ",
    "you can use ",
    "you can call ",
    "i can use ",
    "i will use ",
    "i'll use ",
    "i need to ",
    "i'll need to ",
    "i will need to ",
    "we can use ",
    "let me use ",
    "let me call ",
    "let's use ",
)
"""How such replies open (case aside)."""

# "the `calculate` function", "a function named reverse_string", "call the tool": an
# identifier-like name beside "function" or "tool", not "a Python function"
_TALK = re.compile(
    r"(`[\w.]+`|[\"“'‘][a-z]+_[a-z_]+[\"”'’]|\b[a-z]+_[a-z_]+\b)\s+(function|tool)s?\b"
    r"|\b(functions?|tools?)\s+((named|called)\b|`[\w.]+`|[a-z]+_[a-z_]+\b)"
    r"|\bcall (the|a|this) (\w+ )?(function|tool)\b"
    r"|\b(the following|this) (function|tool)( call)?\b",
    re.I,
)
# a stop with a space or a line after it: "at 15:00" or "3.5" is not an end, and a
# stop that ends the text so far waits for what follows it (the reply ends: released);
# nor is a colon, or a line that goes on in code or JSON: "To define the word
# "ubiquitous":" went on with a call written out in a ```json block
_SENTENCE_END = re.compile(r"[.!?]\s|\n(?=\s*[^\s`{\[])")
# "Sure, I can help you with that. To put your phone on silent, you can use the
# "set_alarm" function ...": a word of assent before the opening that talks
_ASSENT = re.compile(
    r"(?:sure|of course|certainly|absolutely|okay|ok)\b[^.!?\n]{0,60}[.!?]\s+", re.I
)
_ASSENTS = ("sure", "of course", "certainly", "absolutely", "okay", "ok")
_ASSENT_SO_FAR = re.compile(
    r"(?:sure|of course|certainly|absolutely|okay|ok)\b[^.!?\n]{0,60}[.!?]?$", re.I
)
_LIMIT = 240
"""Characters after which a held opening is let go whatever it says."""


class TalkGuard:
    """Feed a reply's released text; `feed` returns what may go out now.

    At the start of the reply nothing goes out while it could still open with one of
    `_LEADS`; a reply that does is held to the end of its first sentence, and
    `talked` turns true if that sentence names an offered tool (`names`) or some
    function by an identifier. Anything else is released at once.
    """

    def __init__(self, names: Iterable[str]) -> None:
        # a name like get_weather counts bare; a word like calculate only beside
        # "function" or "tool" ("To calculate 15% of 80, ..." is an answer), quoted
        # or not ('you can call the "calc" function')
        marked = [re.escape(n) for n in names if "_" in n]
        plain = [re.escape(n) for n in names if n and "_" not in n]
        patterns = [rf"\b({'|'.join(marked)})\b"] if marked else []
        if plain:
            patterns.append(rf"\b({'|'.join(plain)})[\"”'’`]?\s+(function|tool)s?\b")
        self._names = re.compile("|".join(patterns), re.I) if patterns else None
        self._held = ""
        self.holding = True
        self.talked = False

    def feed(self, text: str) -> str:
        if not self.holding:
            return text
        self._held += text
        opening = self._held.lstrip()
        if not opening:
            return ""
        assent = _ASSENT.match(opening)
        if assent is not None:
            opening = opening[assent.end() :]  # judge the sentence after it
        elif _ASSENT_SO_FAR.match(opening) or any(
            word.startswith(opening.lower()) for word in _ASSENTS
        ):
            return ""  # may still be a word of assent, then an opening that talks
        opening = opening.lower()
        if not any(lead.startswith(opening) or opening.startswith(lead) for lead in _LEADS):
            return self.release()  # opens otherwise: out it goes
        if not any(opening.startswith(lead) for lead in _LEADS):
            return ""  # could still be one
        if self._talks(self._held):
            self.talked = True
            return ""
        end = _SENTENCE_END.search(self._held, len(self._held) - len(opening))
        if end is not None or len(self._held) > _LIMIT:
            return self.release()
        return ""

    def _talks(self, text: str) -> bool:
        return bool(_TALK.search(text) or (self._names and self._names.search(text)))

    def release(self) -> str:
        """Stop holding: what was held."""
        self.holding = False
        held, self._held = self._held, ""
        return held
