"""What a run tells its UI: small frozen dataclasses, emitted as the model streams.

The runtime never builds the SDK's pydantic event models. Each wire event is read as a
plain `dict` and mapped onto one of these (or passed through as `RawEvent`), which keeps
the per-event cost to a `json.loads` and one small object.

Order within a turn: `TurnStarted` (at `response.created`), `TurnQueued` twice if the
server made the response wait for capacity (waiting, then not), then for each output item
`TextDelta`... `TextDone` or `ToolCallStarted`, `ToolArgumentsDelta`... `ToolCallReady`,
interleaved with `RawEvent`s for everything else (reasoning, unknown types), then
`TurnCompleted`. Tool execution then reports `ToolProgress` and `ToolResult` per call,
and the last event of a successful run is `RunCompleted`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from .results import RunResult, TokenUsage

__all__ = [
    "ErrorReceived",
    "RawEvent",
    "RunCompleted",
    "RunEvent",
    "TextDelta",
    "TextDone",
    "ToolArgumentsDelta",
    "ToolCallReady",
    "ToolCallStarted",
    "ToolProgress",
    "ToolResult",
    "TurnCompleted",
    "TurnQueued",
    "TurnStarted",
    "TurnStatus",
]

TurnStatus = Literal["completed", "incomplete", "failed", "cancelled"]


@dataclass(frozen=True, slots=True)
class TurnStarted:
    """The server accepted a request and created response `response_id`."""

    turn: int
    """1-based index of this model response within the run."""
    response_id: str


@dataclass(frozen=True, slots=True)
class TurnQueued:
    """The response waits for the model to have room (`response.queued`: every slot of
    the embedded model is busy); the same event with `waiting=False` says it left the
    queue (`response.in_progress` after it)."""

    turn: int
    response_id: str
    waiting: bool = True


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of assistant text (`response.output_text.delta`)."""

    text: str
    item_id: str


@dataclass(frozen=True, slots=True)
class TextDone:
    """The whole text of one content part (`response.output_text.done`)."""

    text: str
    item_id: str


@dataclass(frozen=True, slots=True)
class ToolCallStarted:
    """The model began a function call (`response.output_item.added`)."""

    name: str
    call_id: str
    item_id: str


@dataclass(frozen=True, slots=True)
class ToolArgumentsDelta:
    """A piece of a call's JSON arguments (`response.function_call_arguments.delta`)."""

    delta: str
    call_id: str
    item_id: str


@dataclass(frozen=True, slots=True)
class ToolCallReady:
    """A function call is complete (`response.output_item.done`).

    `arguments` is the parsed JSON object, or `None` when `raw_arguments` is not a
    JSON object (the tool then answers with a validation error).
    """

    name: str
    call_id: str
    item_id: str
    arguments: dict[str, Any] | None
    raw_arguments: str


@dataclass(frozen=True, slots=True)
class ToolProgress:
    """A running tool reported progress through its `ToolContext`."""

    call_id: str
    name: str
    message: str


@dataclass(frozen=True, slots=True)
class ToolResult:
    """A call finished; `output` is exactly what is sent back as `function_call_output`."""

    call_id: str
    name: str
    output: str
    duration: float
    """Seconds from the tool's start to its result."""
    is_error: bool


@dataclass(frozen=True, slots=True)
class ErrorReceived:
    """A flat `error` event arrived in the stream (a terminal event still follows)."""

    code: str | None
    message: str
    param: str | None


@dataclass(frozen=True, slots=True)
class TurnCompleted:
    """A response reached its terminal event and its body was read to the end."""

    response_id: str
    usage: TokenUsage | None
    status: TurnStatus


@dataclass(frozen=True, slots=True)
class RunCompleted:
    """The run is over; the last event of a run that did not raise."""

    result: RunResult


@dataclass(frozen=True, slots=True)
class RawEvent:
    """Any wire event without a typed counterpart, as decoded JSON."""

    data: dict[str, Any]


RunEvent = (
    TurnStarted
    | TurnQueued
    | TextDelta
    | TextDone
    | ToolCallStarted
    | ToolArgumentsDelta
    | ToolCallReady
    | ToolProgress
    | ToolResult
    | ErrorReceived
    | TurnCompleted
    | RunCompleted
    | RawEvent
)
"""Everything `Agent.stream()` yields."""
