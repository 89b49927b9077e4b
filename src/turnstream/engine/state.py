"""The response state machine: provider deltas in, ordered wire events out.

`ResponseStateMachine` owns DESIGN.md invariant 1. Whatever a provider yields, the
events it emits are: `response.created`, (`response.queued` in background mode),
`response.in_progress`, then per output item, strictly one item after another,

- message: `output_item.added`, `content_part.added`, `output_text.delta`*,
  `output_text.done`, `content_part.done`, `output_item.done`;
- function call: `output_item.added`, `function_call_arguments.delta`*,
  `function_call_arguments.done` (with `name`), `output_item.done`;
- custom tool call: `output_item.added`, `output_item.done` (its `input` is known
  only once the model's arguments are complete; the spec has no input-delta event);
- reasoning: `output_item.added`, `reasoning_summary_part.added`,
  `reasoning_summary_text.delta`*, `reasoning_summary_text.done`,
  `reasoning_summary_part.done`, `output_item.done`. Reasoning text is streamed as a
  *summary* part: those events are in the Open Responses spec and in the SDK's
  union, whereas `response.reasoning_text.*` is not in the spec;

then exactly one terminal event, with `sequence_number` 0, 1, 2, ...

Items close on `ItemEndDelta`, when a different kind of output starts (text after a
call closes the call), or at the end. Tool-call deltas of several provider indexes
may interleave: the current call streams live, the others are buffered and streamed,
one after another, when the current one closes. A call goes live once its name is
known. Each call gets a unique `call_id` (the provider's, or a fresh `call_…` when
it gave none or repeated one).

Given the request's `Toolset`, a call to a namespace's function comes out as a
`function_call` with `namespace`, and a call to a custom tool as a
`custom_tool_call`. Given `seal_reasoning`, each finished reasoning item carries
`encrypted_content` made from its text (for stateless clients, `store: false`).

A provider that may have to wait for capacity (the embedded model's slots) is run
with `start(hold=True)`: `response.in_progress` is then held back until the
provider's first delta, and a `QueuedDelta` before it puts `response.queued` first,
so the order stays `created`, `queued`, `in_progress` as the API documents. Any
other delta (a `StartedDelta` when it leaves the queue) releases `in_progress`.

Terminal events: `finish()` gives `response.completed`, or `response.incomplete`
(`incomplete_details.reason` = `max_output_tokens` / `content_filter`) after a
`FinishDelta` with reason `length` / `content_filter`; `fail()` gives a flat `error`
event then `response.failed`; `cancel()` gives `response.incomplete` whose response
has `status: "cancelled"` (the SDK has no `response.cancelled` event, and an
incomplete response is what a cancelled one is: partial output, no error). On the
three non-successful paths the items still open are closed with status
`incomplete`, so every `output_item.added` has its `output_item.done`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from turnstream.engine._items import OpenItem, PendingCall, output_item
from turnstream.engine.deltas import (
    Delta,
    FinishDelta,
    ItemEndDelta,
    OutputTextDelta,
    QueuedDelta,
    ReasoningDelta,
    StartedDelta,
    ToolCallDelta,
    UsageDelta,
)
from turnstream.engine.toolset import Toolset
from turnstream.protocol.content import OutputTextPart, SummaryTextPart
from turnstream.protocol.events import (
    ContentPartAddedEvent,
    ContentPartDoneEvent,
    ErrorEvent,
    Event,
    FunctionCallArgumentsDeltaEvent,
    FunctionCallArgumentsDoneEvent,
    OutputItemAddedEvent,
    OutputItemDoneEvent,
    OutputTextDeltaEvent,
    OutputTextDoneEvent,
    ReasoningSummaryPartAddedEvent,
    ReasoningSummaryPartDoneEvent,
    ReasoningSummaryTextDeltaEvent,
    ReasoningSummaryTextDoneEvent,
    ResponseCompletedEvent,
    ResponseCreatedEvent,
    ResponseFailedEvent,
    ResponseIncompleteEvent,
    ResponseInProgressEvent,
    ResponseQueuedEvent,
)
from turnstream.protocol.ids import new_id
from turnstream.protocol.outputs import (
    ItemStatus,
    OutputFunctionCallItem,
    OutputItem,
    OutputMessageItem,
    OutputReasoningItem,
)
from turnstream.protocol.responses import (
    IncompleteDetails,
    InputTokensDetails,
    OutputTokensDetails,
    Response,
    ResponseError,
    Usage,
)

__all__ = ["ResponseStateError", "ResponseStateMachine"]

_INCOMPLETE_REASONS = {"length": "max_output_tokens", "content_filter": "content_filter"}


class ResponseStateError(RuntimeError):
    """The state machine was driven out of order (for example fed after its terminal)."""


class ResponseStateMachine:
    """Turns one response's provider deltas into its ordered stream of wire events.

    Drive it with `start()`, then `feed(delta)` per delta, then exactly one of
    `finish()`, `fail()` or `cancel()`. Every method returns the events to send, in
    order; `response` is the Response as of the last event.

    Args:
        response: The initial Response (model or dict), `status` `in_progress` (or
            `queued`) and empty `output`; its settings are echoed in every snapshot.
        clock: Returns Unix time in seconds, for `completed_at`.
        id_factory: Makes ids from a prefix (`new_id` by default).
        tools: The request's tools as offered to the model, to shape its calls.
        seal_reasoning: Makes a reasoning item's `encrypted_content` from its text.
    """

    def __init__(
        self,
        response: Response | Mapping[str, Any],
        *,
        clock: Callable[[], float] = time.time,
        id_factory: Callable[[str], str] = new_id,
        tools: Toolset | None = None,
        seal_reasoning: Callable[[str], str] | None = None,
    ) -> None:
        base = response if isinstance(response, Response) else Response.model_validate(response)
        if base.output:
            raise ValueError("the initial response must have an empty output")
        self._base = base
        self._clock = clock
        self._new_id = id_factory
        self._tools = tools
        self._seal = seal_reasoning
        self._seq = 0
        self._started = False
        self._held = False
        self._queued = False
        self._final: Response | None = None
        self._output: list[OutputItem] = []
        self._current: OpenItem | None = None
        self._pending: dict[int, PendingCall] = {}
        self._call_ids: set[str] = set()
        self._finish_reason = "stop"
        self._usage: Usage | None = None

    # -- public API ---------------------------------------------------------------------

    @property
    def response(self) -> Response:
        """The current Response: the final one once a terminal event was emitted."""
        if self._final is not None:
            return self._final
        output = list(self._output)
        if self._current is not None:
            output.append(self._item(self._current, "in_progress"))
        return self._base.model_copy(update={"output": output, "usage": self._usage})

    @property
    def sequence_number(self) -> int:
        """The `sequence_number` the next event will get."""
        return self._seq

    @property
    def done(self) -> bool:
        """Whether the terminal event has been emitted."""
        return self._final is not None

    def start(self, *, hold: bool = False) -> list[Event]:
        """`response.created` (`response.queued` when background), `response.in_progress`.

        With `hold`, `response.in_progress` waits for the provider's first delta (see
        the module docstring): use it for a provider that may queue the request.
        """
        if self._started:
            raise ResponseStateError("start() was already called")
        self._started = True
        events: list[Event] = []
        status = "queued" if self._base.background else "in_progress"
        events.append(
            ResponseCreatedEvent(sequence_number=self._next(), response=self._lifecycle(status))
        )
        if self._base.background:
            self._queued = True
            events.append(
                ResponseQueuedEvent(sequence_number=self._next(), response=self._lifecycle(status))
            )
        if hold:
            self._held = True
            return events
        return events + self._in_progress()

    def feed(self, delta: Delta) -> list[Event]:
        """The events one provider delta causes (often one, sometimes none)."""
        if self._final is not None or not self._started:
            return self._ensure_started() + self.feed(delta)
        if isinstance(delta, QueuedDelta):
            return self._queue()
        if self._held:
            return self._in_progress() + self.feed(delta)
        if isinstance(delta, OutputTextDelta):
            return self._text(delta.text)
        if isinstance(delta, ToolCallDelta):
            return self._tool_call(delta)
        if isinstance(delta, ReasoningDelta):
            return self._reasoning(delta.text)
        events: list[Event] = []
        if isinstance(delta, ItemEndDelta):
            events += self._close_current("completed")
            events += self._promote()
        elif isinstance(delta, UsageDelta):
            self._usage = Usage(
                input_tokens=delta.input_tokens,
                input_tokens_details=InputTokensDetails(cached_tokens=delta.cached_tokens),
                output_tokens=delta.output_tokens,
                output_tokens_details=OutputTokensDetails(reasoning_tokens=delta.reasoning_tokens),
                total_tokens=delta.input_tokens + delta.output_tokens,
            )
        elif isinstance(delta, FinishDelta):
            self._finish_reason = delta.reason
        elif isinstance(delta, StartedDelta):
            pass  # it only releases a held `in_progress` (above)
        else:
            raise TypeError(f"not a provider delta: {delta!r}")
        return events

    def finish(self) -> list[Event]:
        """Close every open item, then `response.completed` or `response.incomplete`."""
        events = self._ensure_started()
        reason = _INCOMPLETE_REASONS.get(self._finish_reason)
        events += self._close_everything("completed" if reason is None else "incomplete")
        if reason is None:
            final = self._finalize("completed", completed_at=int(self._clock()))
            events.append(ResponseCompletedEvent(sequence_number=self._next(), response=final))
        else:
            final = self._finalize(
                "incomplete", incomplete_details=IncompleteDetails(reason=reason)
            )
            events.append(ResponseIncompleteEvent(sequence_number=self._next(), response=final))
        return events

    def fail(self, code: str, message: str) -> list[Event]:
        """Close open items as incomplete, then a flat `error` event and `response.failed`."""
        events = self._ensure_started()
        events += self._close_everything("incomplete")
        events.append(
            ErrorEvent(sequence_number=self._next(), code=code, message=message, param=None)
        )
        final = self._finalize("failed", error=ResponseError(code=code, message=message))
        events.append(ResponseFailedEvent(sequence_number=self._next(), response=final))
        return events

    def cancel(self) -> list[Event]:
        """Close open items as incomplete, then `response.incomplete` with status `cancelled`."""
        events = self._ensure_started()
        events += self._close_everything("incomplete")
        final = self._finalize("cancelled")
        events.append(ResponseIncompleteEvent(sequence_number=self._next(), response=final))
        return events

    # -- deltas -------------------------------------------------------------------------

    def _text(self, text: str) -> list[Event]:
        if not text:
            return []
        current = self._current
        events: list[Event]
        if current is None or current.kind != "text":
            events = self._close_everything("completed")
            events += self._open_text()
            current = self._current
            assert current is not None
        else:
            events = []
        current.pieces.append(text)
        seq = self._seq
        self._seq = seq + 1
        events.append(
            OutputTextDeltaEvent(
                sequence_number=seq,
                item_id=current.id,
                output_index=current.output_index,
                content_index=0,
                delta=text,
            )
        )
        return events

    def _reasoning(self, text: str) -> list[Event]:
        if not text:
            return []
        current = self._current
        if current is None or current.kind != "reasoning":
            events = self._close_everything("completed")
            events += self._open_reasoning()
            current = self._current
            assert current is not None
        else:
            events = []
        current.pieces.append(text)
        events.append(
            ReasoningSummaryTextDeltaEvent(
                sequence_number=self._next(),
                item_id=current.id,
                output_index=current.output_index,
                summary_index=0,
                delta=text,
            )
        )
        return events

    def _tool_call(self, delta: ToolCallDelta) -> list[Event]:
        current = self._current
        if current is not None and current.kind == "call" and current.index == delta.index:
            if not delta.arguments:
                return []
            current.pieces.append(delta.arguments)
            if self._is_custom(current):
                return []
            return [
                FunctionCallArgumentsDeltaEvent(
                    sequence_number=self._next(),
                    item_id=current.id,
                    output_index=current.output_index,
                    delta=delta.arguments,
                )
            ]
        pending = self._pending.get(delta.index)
        if pending is None:
            pending = self._pending[delta.index] = PendingCall(delta.index)
        if pending.name is None and delta.name:
            pending.name = delta.name
        if pending.call_id is None and delta.call_id:
            pending.call_id = delta.call_id
        if delta.arguments:
            pending.pieces.append(delta.arguments)
        if current is None:
            return self._promote()
        if current.kind != "call" and pending.name is not None:
            # A call starting after text or reasoning closes that item.
            return self._close_current("completed") + self._promote()
        return []

    # -- items --------------------------------------------------------------------------

    def _promote(self) -> list[Event]:
        """Announce the first buffered call whose name is known, as the current item."""
        if self._current is not None:
            return []
        for index, pending in self._pending.items():
            if pending.name is not None:
                del self._pending[index]
                return self._open_call(pending)
        return []

    def _open_text(self) -> list[Event]:
        item = OpenItem("text", self._new_id("msg"), len(self._output))
        self._current = item
        return [
            OutputItemAddedEvent(
                sequence_number=self._next(),
                output_index=item.output_index,
                item=OutputMessageItem(id=item.id, status="in_progress", content=[]),
            ),
            ContentPartAddedEvent(
                sequence_number=self._next(),
                item_id=item.id,
                output_index=item.output_index,
                content_index=0,
                part=OutputTextPart(text=""),
            ),
        ]

    def _open_reasoning(self) -> list[Event]:
        item = OpenItem("reasoning", self._new_id("rs"), len(self._output))
        self._current = item
        return [
            OutputItemAddedEvent(
                sequence_number=self._next(),
                output_index=item.output_index,
                item=OutputReasoningItem(id=item.id, summary=[], status="in_progress"),
            ),
            ReasoningSummaryPartAddedEvent(
                sequence_number=self._next(),
                item_id=item.id,
                output_index=item.output_index,
                summary_index=0,
                part=SummaryTextPart(text=""),
            ),
        ]

    def _open_call(self, pending: PendingCall) -> list[Event]:
        call_id = pending.call_id
        if not call_id or call_id in self._call_ids:
            call_id = self._new_id("call")
        self._call_ids.add(call_id)
        item = OpenItem(
            "call",
            self._new_id("fc"),
            len(self._output),
            index=pending.index,
            name=pending.name or "",
            call_id=call_id,
        )
        self._current = item
        events: list[Event] = [
            OutputItemAddedEvent(
                sequence_number=self._next(),
                output_index=item.output_index,
                item=self._item(item, "in_progress", ""),
            )
        ]
        if pending.pieces:
            buffered = "".join(pending.pieces)
            item.pieces.append(buffered)
        if pending.pieces and not self._is_custom(item):
            events.append(
                FunctionCallArgumentsDeltaEvent(
                    sequence_number=self._next(),
                    item_id=item.id,
                    output_index=item.output_index,
                    delta="".join(item.pieces),
                )
            )
        return events

    def _close_current(self, status: ItemStatus) -> list[Event]:
        item = self._current
        if item is None:
            return []
        self._current = None
        text = "".join(item.pieces)
        final = self._item(item, status, text)
        self._output.append(final)
        events: list[Event]
        if item.kind == "text":
            part = OutputTextPart(text=text)
            events = [
                OutputTextDoneEvent(
                    sequence_number=self._next(),
                    item_id=item.id,
                    output_index=item.output_index,
                    content_index=0,
                    text=text,
                ),
                ContentPartDoneEvent(
                    sequence_number=self._next(),
                    item_id=item.id,
                    output_index=item.output_index,
                    content_index=0,
                    part=part,
                ),
            ]
        elif item.kind == "reasoning":
            events = [
                ReasoningSummaryTextDoneEvent(
                    sequence_number=self._next(),
                    item_id=item.id,
                    output_index=item.output_index,
                    summary_index=0,
                    text=text,
                ),
                ReasoningSummaryPartDoneEvent(
                    sequence_number=self._next(),
                    item_id=item.id,
                    output_index=item.output_index,
                    summary_index=0,
                    part=SummaryTextPart(text=text),
                ),
            ]
        elif isinstance(final, OutputFunctionCallItem):
            events = [
                FunctionCallArgumentsDoneEvent(
                    sequence_number=self._next(),
                    item_id=item.id,
                    output_index=item.output_index,
                    arguments=text,
                    name=final.name,
                )
            ]
        else:
            events = []
        events.append(
            OutputItemDoneEvent(
                sequence_number=self._next(), output_index=item.output_index, item=final
            )
        )
        return events

    def _close_everything(self, status: ItemStatus) -> list[Event]:
        """Close the current item, then stream and close every buffered call in order."""
        events = self._close_current(status)
        while self._pending:
            index = next(iter(self._pending))
            pending = self._pending.pop(index)
            events += self._open_call(pending)
            events += self._close_current(status)
        return events

    def _item(self, item: OpenItem, status: ItemStatus, text: str | None = None) -> OutputItem:
        return output_item(item, status, text, tools=self._tools, seal=self._seal)

    def _is_custom(self, item: OpenItem) -> bool:
        return self._tools is not None and self._tools.target(item.name).kind == "custom"

    # -- lifecycle ----------------------------------------------------------------------

    def _next(self) -> int:
        seq = self._seq
        self._seq = seq + 1
        return seq

    def _ensure_started(self) -> list[Event]:
        if self._final is not None:
            raise ResponseStateError("the response already ended with a terminal event")
        if not self._started:
            return self.start()
        return self._in_progress() if self._held else []

    def _queue(self) -> list[Event]:
        """`response.queued`, once, and only while `in_progress` is held back."""
        if not self._held or self._queued:
            return []
        self._queued = True
        self._base = self._base.model_copy(update={"status": "queued"})
        return [
            ResponseQueuedEvent(sequence_number=self._next(), response=self._lifecycle("queued"))
        ]

    def _in_progress(self) -> list[Event]:
        self._held = False
        if self._base.status == "queued" and not self._base.background:
            self._base = self._base.model_copy(update={"status": "in_progress"})
        return [
            ResponseInProgressEvent(
                sequence_number=self._next(), response=self._lifecycle("in_progress")
            )
        ]

    def _lifecycle(self, status: str) -> Response:
        return self._base.model_copy(update={"status": status, "output": []})

    def _finalize(self, status: str, **fields: Any) -> Response:
        final = self._base.model_copy(
            update={"status": status, "output": list(self._output), "usage": self._usage, **fields}
        )
        self._final = final
        return final
