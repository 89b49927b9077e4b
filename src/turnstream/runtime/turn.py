"""Reading one response's wire events into runtime events. Pure: no I/O, no loop.

`TurnReader.feed(data)` takes one decoded SSE `data` object and returns the runtime
event it maps to. It remembers what the rest of the loop needs, and `outcome()` hands
that to the loop once the body has ended: the response id, the completed function
calls (from `output_item.done`, falling back to the terminal response's `output`), the
output items, the terminal status and usage.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, Literal

from .events import (
    ErrorReceived,
    RawEvent,
    RunEvent,
    TextDelta,
    TextDone,
    ToolArgumentsDelta,
    ToolCallReady,
    ToolCallStarted,
    TurnQueued,
    TurnStarted,
)
from .results import TokenUsage
from .tools import ToolCall

__all__ = ["TERMINAL_TYPES", "EndStatus", "TurnOutcome", "TurnReader"]

TERMINAL_TYPES = frozenset({"response.completed", "response.incomplete", "response.failed"})

EndStatus = Literal["completed", "incomplete", "failed"]


@dataclass(frozen=True, slots=True)
class TurnOutcome:
    """What one response came to, read to the end of its body."""

    response_id: str
    status: EndStatus
    output: list[dict[str, Any]]
    """The output items, in `output_index` order."""
    calls: list[ToolCall]
    """The function calls among them, in order."""
    text: str
    """The text of the message items."""
    usage: TokenUsage | None = None
    error_code: str | None = None
    error_message: str = ""
    """Why a `failed` response failed."""


class TurnReader:
    """Accumulates one response's stream. Feed events in order; read the results."""

    def __init__(self, turn: int) -> None:
        self.turn = turn
        self.response_id: str | None = None
        self.status: EndStatus | None = None
        """Set by the terminal event; `None` until then."""
        self.response: dict[str, Any] = {}
        self.usage: TokenUsage | None = None
        self.error: ErrorReceived | None = None
        self.calls: list[ToolCall] = []
        self._items: dict[int, dict[str, Any]] = {}
        self._call_ids: dict[str, str] = {}  # item id -> call_id, for argument deltas
        self._waiting = False
        self._handlers: dict[str, Callable[[dict[str, Any]], RunEvent | None]] = {
            "response.output_text.delta": self._text_delta,
            "response.function_call_arguments.delta": self._arguments_delta,
            "response.output_text.done": self._text_done,
            "response.output_item.added": self._item_added,
            "response.output_item.done": self._item_done,
            "response.created": self._created,
            "response.queued": self._queued,
            "response.in_progress": self._in_progress,
            "response.completed": self._terminal,
            "response.incomplete": self._terminal,
            "response.failed": self._terminal,
            "error": self._error,
        }

    def feed(self, data: dict[str, Any]) -> RunEvent | None:
        """Map one wire event; returns `None` for events the UI need not see."""
        kind = data.get("type")
        if kind == "response.output_text.delta":  # most events of most streams
            return _text_delta(data.get("delta", ""), data.get("item_id", ""))
        handler = self._handlers.get(kind) if isinstance(kind, str) else None
        if handler is None:
            if kind is None and "error" in data:
                return self._error(data["error"] if isinstance(data["error"], dict) else data)
            return _raw_event(data)
        return handler(data)

    @property
    def output_items(self) -> list[dict[str, Any]]:
        """The response's output items in `output_index` order."""
        output = self.response.get("output")
        if isinstance(output, list) and output:
            return [item for item in output if isinstance(item, dict)]
        return [self._items[index] for index in sorted(self._items)]

    @property
    def text(self) -> str:
        """The text of the response's message items."""
        parts = []
        for item in self.output_items:
            if item.get("type") != "message":
                continue
            for part in item.get("content") or ():
                if isinstance(part, dict) and part.get("type") == "output_text":
                    parts.append(str(part.get("text", "")))
        return "".join(parts)

    def _created(self, data: dict[str, Any]) -> RunEvent:
        response = data.get("response") or {}
        self.response_id = str(response.get("id", ""))
        return TurnStarted(self.turn, self.response_id)

    def _queued(self, data: dict[str, Any]) -> RunEvent:
        self._waiting = True
        return TurnQueued(self.turn, self.response_id or "")

    def _in_progress(self, data: dict[str, Any]) -> RunEvent:
        if not self._waiting:
            return RawEvent(data)
        self._waiting = False
        return TurnQueued(self.turn, self.response_id or "", waiting=False)

    def _text_delta(self, data: dict[str, Any]) -> RunEvent:
        return _text_delta(data.get("delta", ""), data.get("item_id", ""))

    def _text_done(self, data: dict[str, Any]) -> RunEvent:
        return TextDone(data.get("text", ""), data.get("item_id", ""))

    def _arguments_delta(self, data: dict[str, Any]) -> RunEvent:
        item_id = data.get("item_id", "")
        return _arguments_delta(data.get("delta", ""), self._call_ids.get(item_id, ""), item_id)

    def _item_added(self, data: dict[str, Any]) -> RunEvent:
        item = data.get("item") or {}
        if item.get("type") == "function_call":
            item_id = str(item.get("id", ""))
            call_id = str(item.get("call_id", ""))
            self._call_ids[item_id] = call_id
            return ToolCallStarted(str(item.get("name", "")), call_id, item_id)
        return _raw_event(data)

    def _item_done(self, data: dict[str, Any]) -> RunEvent:
        item = data.get("item") or {}
        index = data.get("output_index")
        self._items[index if isinstance(index, int) else len(self._items)] = item
        if item.get("type") != "function_call":
            return _raw_event(data)
        call = self._add_call(item)
        return ToolCallReady(
            call.name, call.call_id, call.item_id, _parse_object(call.arguments), call.arguments
        )

    def _add_call(self, item: dict[str, Any]) -> ToolCall:
        call = ToolCall(
            call_id=str(item.get("call_id", "")),
            name=str(item.get("name", "")),
            arguments=str(item.get("arguments") or ""),
            item_id=str(item.get("id", "")),
        )
        self.calls.append(call)
        return call

    def _terminal(self, data: dict[str, Any]) -> RunEvent | None:
        response = data.get("response") or {}
        self.response = response
        if not self.response_id:
            self.response_id = str(response.get("id", ""))
        status = str(response.get("status") or data["type"].removeprefix("response."))
        # anything but a known success is treated as a failure
        self.status = (
            "completed"
            if status == "completed"
            else "incomplete"
            if status == "incomplete"
            else "failed"
        )
        self.usage = TokenUsage.from_wire(response.get("usage"))
        # A server that sends no item events still lists the calls in `output`.
        seen = {call.call_id for call in self.calls}
        for item in self.output_items:
            if item.get("type") == "function_call" and item.get("call_id") not in seen:
                self._add_call(item)
        # The caller emits `TurnCompleted` once the body has reached EOF.
        return None

    def _error(self, data: dict[str, Any]) -> RunEvent:
        self.error = ErrorReceived(
            code=data.get("code"), message=str(data.get("message", "")), param=data.get("param")
        )
        return self.error

    def outcome(self) -> TurnOutcome:
        """The response as the loop needs it; call once the body has ended."""
        # without a terminal event the transport raises before this is asked
        status: EndStatus = self.status or "failed"
        code, message = self.failure if status == "failed" else (None, "")
        return TurnOutcome(
            response_id=self.response_id or "",
            status=status,
            output=self.output_items,
            calls=list(self.calls),
            text=self.text,
            usage=self.usage,
            error_code=code,
            error_message=message,
        )

    @property
    def failure(self) -> tuple[str | None, str]:
        """(code, message) of a failed response, from `response.error` or an `error` event."""
        error = self.response.get("error")
        if isinstance(error, dict):
            return error.get("code"), str(error.get("message", ""))
        if self.error is not None:
            return self.error.code, self.error.message
        return None, "the response failed without an error object"


# The events of every streamed delta, built without their `__init__`. A frozen
# dataclass's `__init__` sets each field through `object.__setattr__` (to get past its
# own `__setattr__`), which costs about as much as decoding the event's JSON. Setting
# the slots through their descriptors builds the same object (same class and fields,
# equal, frozen afterwards) in half the time. Only for events with no defaults and no
# `__post_init__`; `test_turn.py` pins that these build what the constructors build.
_new = object.__new__
_TEXT_DELTA_SLOTS = tuple(vars(TextDelta)[f.name].__set__ for f in fields(TextDelta))
_ARGUMENTS_DELTA_SLOTS = tuple(
    vars(ToolArgumentsDelta)[f.name].__set__ for f in fields(ToolArgumentsDelta)
)
_RAW_EVENT_SLOTS = tuple(vars(RawEvent)[f.name].__set__ for f in fields(RawEvent))


def _text_delta(text: str, item_id: str) -> TextDelta:
    event = _new(TextDelta)
    set_text, set_item_id = _TEXT_DELTA_SLOTS
    set_text(event, text)
    set_item_id(event, item_id)
    return event


def _arguments_delta(delta: str, call_id: str, item_id: str) -> ToolArgumentsDelta:
    event = _new(ToolArgumentsDelta)
    set_delta, set_call_id, set_item_id = _ARGUMENTS_DELTA_SLOTS
    set_delta(event, delta)
    set_call_id(event, call_id)
    set_item_id(event, item_id)
    return event


def _raw_event(data: dict[str, Any]) -> RawEvent:
    event = _new(RawEvent)
    (set_data,) = _RAW_EVENT_SLOTS
    set_data(event, data)
    return event


def _parse_object(raw: str) -> dict[str, Any] | None:
    try:
        value = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
