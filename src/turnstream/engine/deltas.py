"""What a provider yields: small, immutable deltas with no wire ids.

Providers know nothing about item ids, output indexes or sequence numbers. They say
"here is some text", "here is part of tool call #2", "that item is finished", and the
engine's state machine turns that into the ordered wire events of DESIGN.md
invariant 1. A provider therefore cannot break the event order, whatever it yields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "Delta",
    "FinishDelta",
    "ItemEndDelta",
    "OutputTextDelta",
    "QueuedDelta",
    "ReasoningDelta",
    "StartedDelta",
    "ToolCallDelta",
    "UsageDelta",
]


@dataclass(frozen=True, slots=True)
class OutputTextDelta:
    """A piece of assistant text, appended to the current message item."""

    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """A piece of reasoning text, appended to the current reasoning item."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of a function call, keyed by the provider's own call index.

    `name` and `call_id` may arrive on any delta of the call (usually the first);
    `arguments` pieces are concatenated in arrival order. Deltas of several calls may
    interleave; the engine keeps the wire order sequential regardless.
    """

    index: int
    name: str | None = None
    call_id: str | None = None
    arguments: str = ""


@dataclass(frozen=True, slots=True)
class ItemEndDelta:
    """Hint: the item currently being streamed is complete.

    Optional. Providers that know an item is finished (the echo model, the local
    model) yield it so that the next item can stream live; without it the engine
    closes items when the stream ends or when the kind of output changes.
    """


@dataclass(frozen=True, slots=True)
class UsageDelta:
    """Token counts; the last one seen wins."""

    input_tokens: int
    output_tokens: int
    cached_tokens: int = 0
    reasoning_tokens: int = 0


@dataclass(frozen=True, slots=True)
class FinishDelta:
    """Why generation stopped. `length` makes the response `incomplete`."""

    reason: Literal["stop", "length", "content_filter"] = "stop"


@dataclass(frozen=True, slots=True)
class QueuedDelta:
    """The provider must wait for capacity (a free model slot) before it can start.

    Meaningful only before any output, and only when the response's `in_progress` is
    held back for it (`ResponseStateMachine.start(hold=True)`): the response is then
    `queued` until the provider's next delta. Anywhere else it changes nothing.
    """


@dataclass(frozen=True, slots=True)
class StartedDelta:
    """The provider has begun working on the request (after a `QueuedDelta`: it left
    the queue). Produces no output; it lets a held `in_progress` go out at once."""


Delta = (
    OutputTextDelta
    | ReasoningDelta
    | ToolCallDelta
    | ItemEndDelta
    | UsageDelta
    | FinishDelta
    | QueuedDelta
    | StartedDelta
)
