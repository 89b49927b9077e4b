"""Streaming events (`docs/protocol.md` §2), tagged by the wire `type`.

Every event carries `type` and `sequence_number`. Lifecycle events carry a full
`Response` snapshot; the others address an item by `output_index` / `item_id`.
`ErrorEvent` is OpenAI's *flat* error (`code`, `message`, `param` at the top level):
the official SDK raises on any frame with a top-level `error` key, so the nested
Open Responses shape would hide the `response.failed` that follows.

`parse_event` reads tolerantly: an unknown or malformed event becomes a
`GenericEvent` holding the raw fields, never an exception.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter, ValidationError, model_validator

from turnstream.protocol._base import WireModel
from turnstream.protocol.content import AssistantContentPart, SummaryTextPart
from turnstream.protocol.outputs import OutputItem
from turnstream.protocol.responses import Response

__all__ = [
    "TERMINAL_EVENT_TYPES",
    "ContentPartAddedEvent",
    "ContentPartDoneEvent",
    "ErrorEvent",
    "Event",
    "FunctionCallArgumentsDeltaEvent",
    "FunctionCallArgumentsDoneEvent",
    "GenericEvent",
    "OutputItemAddedEvent",
    "OutputItemDoneEvent",
    "OutputTextDeltaEvent",
    "OutputTextDoneEvent",
    "ReasoningSummaryPartAddedEvent",
    "ReasoningSummaryPartDoneEvent",
    "ReasoningSummaryTextDeltaEvent",
    "ReasoningSummaryTextDoneEvent",
    "ReasoningTextDeltaEvent",
    "ReasoningTextDoneEvent",
    "RefusalDeltaEvent",
    "RefusalDoneEvent",
    "ResponseCompletedEvent",
    "ResponseCreatedEvent",
    "ResponseFailedEvent",
    "ResponseInProgressEvent",
    "ResponseIncompleteEvent",
    "ResponseQueuedEvent",
    "StreamEvent",
    "parse_event",
]

TERMINAL_EVENT_TYPES = frozenset({"response.completed", "response.incomplete", "response.failed"})
"""The lifecycle events that end a stream; exactly one ends every stream."""


class StreamEvent(WireModel):
    """Fields common to every event."""

    type: str
    sequence_number: int
    """Position in the stream: 0 for the first event, rising by 1."""


# -- lifecycle ------------------------------------------------------------------------


class ResponseCreatedEvent(StreamEvent):
    type: Literal["response.created"] = "response.created"
    response: Response


class ResponseQueuedEvent(StreamEvent):
    """Background mode: the response waits for a worker."""

    type: Literal["response.queued"] = "response.queued"
    response: Response


class ResponseInProgressEvent(StreamEvent):
    type: Literal["response.in_progress"] = "response.in_progress"
    response: Response


class ResponseCompletedEvent(StreamEvent):
    type: Literal["response.completed"] = "response.completed"
    response: Response


class ResponseIncompleteEvent(StreamEvent):
    """Terminal: output was cut short (`incomplete_details`), or the response was cancelled."""

    type: Literal["response.incomplete"] = "response.incomplete"
    response: Response


class ResponseFailedEvent(StreamEvent):
    """Terminal: generation failed; `response.error` says why."""

    type: Literal["response.failed"] = "response.failed"
    response: Response


# -- items ----------------------------------------------------------------------------


class OutputItemAddedEvent(StreamEvent):
    type: Literal["response.output_item.added"] = "response.output_item.added"
    output_index: int
    item: OutputItem


class OutputItemDoneEvent(StreamEvent):
    type: Literal["response.output_item.done"] = "response.output_item.done"
    output_index: int
    item: OutputItem


class ContentPartAddedEvent(StreamEvent):
    type: Literal["response.content_part.added"] = "response.content_part.added"
    item_id: str
    output_index: int
    content_index: int
    part: AssistantContentPart


class ContentPartDoneEvent(StreamEvent):
    type: Literal["response.content_part.done"] = "response.content_part.done"
    item_id: str
    output_index: int
    content_index: int
    part: AssistantContentPart


class OutputTextDeltaEvent(StreamEvent):
    type: Literal["response.output_text.delta"] = "response.output_text.delta"
    item_id: str
    output_index: int
    content_index: int
    delta: str
    logprobs: list[dict[str, Any]] = Field(default_factory=list)


class OutputTextDoneEvent(StreamEvent):
    type: Literal["response.output_text.done"] = "response.output_text.done"
    item_id: str
    output_index: int
    content_index: int
    text: str
    """The whole text of the part."""
    logprobs: list[dict[str, Any]] = Field(default_factory=list)


class RefusalDeltaEvent(StreamEvent):
    type: Literal["response.refusal.delta"] = "response.refusal.delta"
    item_id: str
    output_index: int
    content_index: int
    delta: str


class RefusalDoneEvent(StreamEvent):
    type: Literal["response.refusal.done"] = "response.refusal.done"
    item_id: str
    output_index: int
    content_index: int
    refusal: str


class FunctionCallArgumentsDeltaEvent(StreamEvent):
    type: Literal["response.function_call_arguments.delta"] = (
        "response.function_call_arguments.delta"
    )
    item_id: str
    """The function call item's `id` (`fc_…`), not its `call_id`."""
    output_index: int
    delta: str


class FunctionCallArgumentsDoneEvent(StreamEvent):
    type: Literal["response.function_call_arguments.done"] = "response.function_call_arguments.done"
    item_id: str
    output_index: int
    arguments: str
    """The whole arguments JSON string."""
    name: str | None = None
    """The function name (sent by OpenAI, typed by SDK 3.3.1, tolerated by later ones)."""


class ReasoningSummaryPartAddedEvent(StreamEvent):
    type: Literal["response.reasoning_summary_part.added"] = "response.reasoning_summary_part.added"
    item_id: str
    output_index: int
    summary_index: int
    part: SummaryTextPart


class ReasoningSummaryPartDoneEvent(StreamEvent):
    type: Literal["response.reasoning_summary_part.done"] = "response.reasoning_summary_part.done"
    item_id: str
    output_index: int
    summary_index: int
    part: SummaryTextPart


class ReasoningSummaryTextDeltaEvent(StreamEvent):
    type: Literal["response.reasoning_summary_text.delta"] = "response.reasoning_summary_text.delta"
    item_id: str
    output_index: int
    summary_index: int
    delta: str


class ReasoningSummaryTextDoneEvent(StreamEvent):
    type: Literal["response.reasoning_summary_text.done"] = "response.reasoning_summary_text.done"
    item_id: str
    output_index: int
    summary_index: int
    text: str


class ReasoningTextDeltaEvent(StreamEvent):
    """Raw reasoning text (OpenAI's name; read only, the engine emits summaries)."""

    type: Literal["response.reasoning_text.delta"] = "response.reasoning_text.delta"
    item_id: str
    output_index: int
    content_index: int
    delta: str


class ReasoningTextDoneEvent(StreamEvent):
    type: Literal["response.reasoning_text.done"] = "response.reasoning_text.done"
    item_id: str
    output_index: int
    content_index: int
    text: str


class ErrorEvent(StreamEvent):
    """OpenAI's flat error event. It precedes `response.failed`, never replaces it."""

    type: Literal["error"] = "error"
    code: str | None = None
    message: str = ""
    param: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _lift_nested_error(cls, data: Any) -> Any:
        # Open Responses servers nest the fields under "error"; read both shapes.
        if isinstance(data, Mapping) and isinstance(data.get("error"), Mapping):
            nested = data["error"]
            flat = {k: v for k, v in data.items() if k != "error"}
            for key in ("code", "message", "param"):
                flat.setdefault(key, nested.get(key))
            return flat
        return data


class GenericEvent(WireModel):
    """An event we do not model (or could not read); its fields are kept as extras."""

    type: str = ""
    sequence_number: int | None = None


Event = Annotated[
    ResponseCreatedEvent
    | ResponseQueuedEvent
    | ResponseInProgressEvent
    | ResponseCompletedEvent
    | ResponseIncompleteEvent
    | ResponseFailedEvent
    | OutputItemAddedEvent
    | OutputItemDoneEvent
    | ContentPartAddedEvent
    | ContentPartDoneEvent
    | OutputTextDeltaEvent
    | OutputTextDoneEvent
    | RefusalDeltaEvent
    | RefusalDoneEvent
    | FunctionCallArgumentsDeltaEvent
    | FunctionCallArgumentsDoneEvent
    | ReasoningSummaryPartAddedEvent
    | ReasoningSummaryPartDoneEvent
    | ReasoningSummaryTextDeltaEvent
    | ReasoningSummaryTextDoneEvent
    | ReasoningTextDeltaEvent
    | ReasoningTextDoneEvent
    | ErrorEvent,
    Field(discriminator="type"),
]
"""Every event type we model."""

_EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def parse_event(data: Mapping[str, Any]) -> Event | GenericEvent:
    """Read one decoded event (the JSON of an SSE `data:` line), tolerantly.

    Known types become their model; an unknown type, or a known type whose fields
    do not fit, becomes a `GenericEvent` with every field kept. Never raises for a
    mapping; anything else becomes an empty `GenericEvent`.
    """
    if not isinstance(data, Mapping):
        return GenericEvent()
    try:
        return _EVENT_ADAPTER.validate_python(data)
    except ValidationError:
        pass
    fields = dict(data)
    kind = fields.get("type", "")
    sequence = fields.get("sequence_number")
    fields["type"] = kind if isinstance(kind, str) else str(kind)
    fields["sequence_number"] = sequence if isinstance(sequence, int) else None
    return GenericEvent.model_validate(fields)
