"""The event stream of a finished response, told again from its final form.

A repeated request (the same `Idempotency-Key`) that asked for a stream must get
the stream of the response the first request made, not a second turn. A
non-background run keeps no event log, so the events are told again: the final
output is fed, item by item, through a fresh `ResponseStateMachine` that is handed
the original item ids, and the terminal event carries the stored Response itself.
The deltas are coarser than the first time (one text delta per message), the items
and their order are the same. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from turnstream.protocol import Response, new_id

from .deltas import (
    Delta,
    FinishDelta,
    ItemEndDelta,
    OutputTextDelta,
    ReasoningDelta,
    ToolCallDelta,
    UsageDelta,
)
from .state import ResponseStateMachine

__all__ = ["restream"]

JSON = dict[str, Any]


def restream(final: Mapping[str, Any]) -> list[JSON]:
    """The wire events (as dicts) of the finished response `final`."""
    output = list(final.get("output") or [])
    ids = iter([item.get("id") for item in output])

    def original_id(prefix: str) -> str:
        return next(ids, None) or new_id(prefix)

    initial = {**final, "status": "in_progress", "output": [], "usage": None}
    for closing in ("completed_at", "error", "incomplete_details"):
        initial.pop(closing, None)
    machine = ResponseStateMachine(Response.model_validate(initial), id_factory=original_id)
    events = list(machine.start())
    for delta in _deltas(final, output):
        events.extend(machine.feed(delta))
    status = final.get("status")
    if status == "failed":
        error = final.get("error") or {}
        events.extend(machine.fail(error.get("code", "server_error"), error.get("message", "")))
    elif status == "cancelled":
        events.extend(machine.cancel())
    else:
        events.extend(machine.finish())
    wire = [event.model_dump(mode="json") for event in events]
    wire[-1]["response"] = dict(final)
    return wire


def _deltas(final: Mapping[str, Any], output: list[JSON]) -> Iterator[Delta]:
    for index, item in enumerate(output):
        kind = item.get("type")
        if kind == "message":
            yield OutputTextDelta("".join(part.get("text", "") for part in item.get("content", [])))
        elif kind == "function_call":
            yield ToolCallDelta(index, item["name"], item["call_id"], item.get("arguments", ""))
        elif kind == "reasoning":
            yield ReasoningDelta("".join(p.get("text", "") for p in item.get("content") or []))
        yield ItemEndDelta()
    usage = final.get("usage")
    if usage:
        yield UsageDelta(usage.get("input_tokens", 0), usage.get("output_tokens", 0))
    if final.get("status") == "incomplete":
        yield FinishDelta("length")
