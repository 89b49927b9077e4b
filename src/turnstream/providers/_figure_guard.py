"""Holding back a reply that states a figure no tool returned, where a tool computes it.

The chat apps' instructions say that arithmetic results and conversions come from
the tools. The 1.5B does not always listen: asked "And 42 km?" after a conversion
of 10 km to miles, it answered "42 km is 26.21371 miles." with no call (wrong, and
in the earlier result's digits); given Madrid's temperature in Celsius and asked for
Fahrenheit, it answered "77°F" with `convert_units` on offer. A made-up figure where
a tool exists is the worst thing a tool-using chat can show, and once streamed it
cannot be taken back.

So when the user's latest message asks for a figure tool (`figure_tools`: a
calculator's or a unit converter's kind), `FigureGuard` holds the reply back and
checks each number as it is completed against the numbers said in the conversation
(`unsaid_figures`: rounding and percentages allowed). A reply that states one
nobody said is rejected, and the model is asked to call the tool; so is one that
sets out to work a figure out in words (`_WORKING`, with `working`: no calculator
called yet), which would run past the limit before its own figures; any other reply
goes out when it ends, or at `_LIMIT` characters, after which it streams unchecked.
The cost is that such replies (one or two sentences, as a rule) arrive whole.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from turnstream.providers._call_review import left_out, unsaid_figures, unsaid_times

_LIMIT = 300
"""Characters after which a held reply is let go (if it states no unsaid figure so
far) and the rest streams unchecked: a long reply is an explanation, not a figure,
and at the 1.5B's 11 tokens/s on these machines 300 characters are about 7 s of
nothing on screen. The answers to figure questions in the decision bench are one
or two sentences, well under it."""

# a number at the very end may still be being written ("26.2" of "26.21371")
_OPEN_NUMBER = re.compile(r"[\d.,]*$")
_FIGURE = re.compile(r"\d")
# a reply that sets out to work a figure out in words: "To determine how many cans
# are needed, we need to follow these steps: 1. Convert ...", "The formula for the
# volume of a rectangular prism is ...", LaTeX (`\[ ... \times ... \]`); each of
# these ran past `_LIMIT` with only the message's numbers, then stated its own
_WORKING = re.compile(
    r"\\\[|\\\(|\\times|\\frac|\\div|\bformula\b|\bstep[- ]by[- ]step\b"
    r"|\bfollow(?:ing)? (?:these|the following) steps\b"
    r"|\b(?:we|you|i)(?: would| will| first)? (?:need|have) to (?:first )?(?:calculate|compute"
    r"|convert|divide|multiply|add|subtract|work out|find|determine|figure out)\b"
    r"|\blet(?:'|’)?s (?:calculate|compute|convert|work|break|figure)\b"
    # arithmetic worked inline: "which is 187.50 * 0.10 = 18.75"
    r"|\d\s*[-+*/×÷]\s*\d[\d.,]*\s*=",
    re.I,
)


class FigureGuard:
    """Feed a reply's released text; `feed` returns what may go out now (nothing,
    while holding). `figures` turns non-empty when the reply has stated a number
    that is not among `said`."""

    def __init__(self, said: Sequence[float], *, working: bool = False) -> None:
        self._said = said
        self._working = working
        self._held = ""
        self.holding = True
        self.figures: list[str] = []

    def _unsaid(self, text: str) -> list[str]:
        if self._working and (worked := _WORKING.search(text)):
            return [worked.group(0)]  # about to work a figure out in words
        return unsaid_figures(text, self._said)

    def feed(self, text: str) -> str:
        if not self.holding:
            return text
        self._held += text
        self.figures = self._unsaid(_OPEN_NUMBER.sub("", self._held))
        if self.figures:
            return ""
        if len(self._held) > _LIMIT:
            return self.release()
        return ""

    @property
    def pending(self) -> bool:
        """Whether some reply text is being held."""
        return bool(self._held.strip())

    def finish(self, text: str = "") -> str:
        """At the reply's end, with its last text: all that was held, unless it states
        an unsaid figure."""
        if not self.holding:
            return text
        self._held += text
        self.figures = self._unsaid(self._held)
        return "" if self.figures else self.release()

    def release(self) -> str:
        """Stop holding: what was held."""
        self.holding = False
        held, self._held = self._held, ""
        return held


class TimeGuard(FigureGuard):
    """The same hold for clock times alone (`unsaid_times`): for the fallback passes
    of an answer to a tool result, where any figure but a time may be the answer's
    own arithmetic ("9 hours ahead"), and a time nobody said is made up."""

    def __init__(self, conversation: str) -> None:
        super().__init__(())
        self._conversation = conversation

    def _unsaid(self, text: str) -> list[str]:
        return unsaid_times(text, self._conversation)


class ResultsGuard(FigureGuard):
    """The same hold for an answer that should report the results of the user's
    request: nothing to check while it is written, and at its end (unless it ran
    past `_LIMIT` characters and went out unchecked) `missing` names the results it
    shows nothing of (`left_out`).

    With `early` (one result to report) the answer goes out as soon as it shows
    something of it or states a figure of its own, and streams from there; only an
    answer with no figure at all that shows nothing of the result is missing it
    ("Tesla is doing better."). A figure of its own may be the answer worked out
    from the result ("Dubai is 9 hours ahead." from Dubai's time), which the figure
    guards judge, not this one."""

    def __init__(self, results: Sequence[str], request: str = "", *, early: bool = False) -> None:
        super().__init__(())
        self._results = results
        self._request = request
        self._early = early
        self.missing: list[str] = []

    def _unsaid(self, text: str) -> list[str]:
        return []

    def _left_out(self, text: str) -> list[str]:
        if self._early and _FIGURE.search(text):
            return []
        return left_out(text, self._results, self._request)

    def feed(self, text: str) -> str:
        released = super().feed(text)
        if self.holding and self._early and not self._left_out(self._held):
            return self.release()
        return released

    def finish(self, text: str = "") -> str:
        if not self.holding:
            return text
        self._held += text
        self.missing = self._left_out(self._held) if self._held.strip() else []
        return "" if self.missing else self.release()
