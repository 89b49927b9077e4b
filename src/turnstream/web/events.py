"""The runtime's events as JSON objects: one vocabulary for `chat --json` and the page.

Each event becomes `{"type": <snake_case class name>, ...its fields}`, so `TextDelta`
is `{"type": "text_delta", "text": ..., "item_id": ...}`. `RunCompleted` carries the
result's summary (not its items: the conversation holds those).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from turnstream.runtime import RawEvent, RunCompleted, RunEvent

__all__ = ["event_to_dict"]

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def _kind(event: object) -> str:
    return _CAMEL.sub("_", type(event).__name__).lower()


def event_to_dict(event: RunEvent, *, include_raw: bool = True) -> dict[str, Any] | None:
    """`event` as a JSON-ready dict, or `None` for a `RawEvent` when `include_raw` is off."""
    if isinstance(event, RawEvent):
        return {"type": "raw", "data": event.data} if include_raw else None
    if isinstance(event, RunCompleted):
        result = event.result
        return {
            "type": "run_completed",
            "final_output": result.final_output,
            "status": result.status,
            "conversation": result.conversation,
            "last_response_id": result.last_response_id,
            "turns": result.turns,
            "usage": dataclasses.asdict(result.usage),
        }
    body = dataclasses.asdict(event)
    return {"type": _kind(event), **body}
