"""Reusable checks of a whole event stream: DESIGN.md invariant 1, the spec, the SDK.

`check_stream(events)` takes the decoded JSON of every event of one stream (as a
client sees them) and fails with an `AssertionError` on any breach. Server tests
can call it on what they read from the wire.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from openai import omit
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import ResponseStreamEvent
from pydantic import TypeAdapter

from tests.spec import validate_event, validate_response
from turnstream.sse import Decoder, encode

__all__ = ["check_stream", "feed_sdk", "wire_round_trip"]

TERMINALS = {"response.completed", "response.incomplete", "response.failed"}
LIFECYCLE = TERMINALS | {"response.created", "response.queued", "response.in_progress"}

_SDK_EVENT: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)


def wire_round_trip(events: Sequence[Any]) -> list[dict[str, Any]]:
    """Encode events as one SSE body and decode it, as a client would."""
    body = b"".join(encode(event) for event in events)
    decoder = Decoder()
    decoded = decoder.feed(body) + decoder.flush()
    assert len(decoded) == len(events)
    for frame in decoded:
        data = frame.json()
        assert frame.event == data["type"]
    return [frame.json() for frame in decoded]


def feed_sdk(events: Sequence[Mapping[str, Any]]) -> ResponseStreamState[Any]:
    """Run events through the official SDK's event types and stream accumulator."""
    state: ResponseStreamState[Any] = ResponseStreamState(input_tools=omit, text_format=omit)
    for data in events:
        event = _SDK_EVENT.validate_python(data)
        state.handle_event(event)
    return state


class _Cursor:
    def __init__(self, events: Sequence[Mapping[str, Any]]) -> None:
        self._events = events
        self.position = 0

    def peek(self) -> Mapping[str, Any]:
        assert self.position < len(self._events), "stream ended without a terminal event"
        return self._events[self.position]

    def take(self, kind: str) -> Mapping[str, Any]:
        event = self.peek()
        assert event["type"] == kind, f"event {self.position}: expected {kind}, got {event['type']}"
        self.position += 1
        return event

    def take_many(self, kind: str) -> Iterator[Mapping[str, Any]]:
        while self.peek()["type"] == kind:
            yield self.take(kind)


def check_stream(events: Sequence[Mapping[str, Any]], *, sdk: bool = True) -> Mapping[str, Any]:
    """Assert invariant 1 (and spec validity, and SDK acceptance); return the final response."""
    assert events, "empty stream"
    for event in events:
        validate_event(event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["type"] in TERMINALS for e in events].count(True) == 1
    assert events[-1]["type"] in TERMINALS, "the terminal event must be the last one"

    cursor = _Cursor(events)
    created = cursor.take("response.created")
    response_id = created["response"]["id"]
    assert created["response"]["output"] == []
    if cursor.peek()["type"] == "response.queued":
        cursor.take("response.queued")
    cursor.take("response.in_progress")

    done_items: list[Mapping[str, Any]] = []
    while cursor.peek()["type"] == "response.output_item.added":
        done_items.append(_check_item(cursor, len(done_items)))

    if cursor.peek()["type"] == "error":
        cursor.take("error")
        assert cursor.peek()["type"] == "response.failed", "an error event precedes response.failed"
    terminal = cursor.peek()
    assert terminal["type"] in TERMINALS, f"unexpected {terminal['type']} between items"
    cursor.position += 1
    assert cursor.position == len(events)

    for event in events:
        if event["type"] in LIFECYCLE:
            assert event["response"]["id"] == response_id, "the response id changed"
    final = terminal["response"]
    validate_response(final)
    assert list(final["output"]) == done_items, "final output differs from the done items"
    call_ids = [item["call_id"] for item in final["output"] if item["type"] == "function_call"]
    assert len(call_ids) == len(set(call_ids)), "call_ids repeat"
    expected_status = {
        "response.completed": {"completed"},
        "response.incomplete": {"incomplete", "cancelled"},
        "response.failed": {"failed"},
    }[terminal["type"]]
    assert final["status"] in expected_status
    if sdk:
        feed_sdk(events)
    return final


def _check_item(cursor: _Cursor, index: int) -> Mapping[str, Any]:
    added = cursor.take("response.output_item.added")
    assert added["output_index"] == index
    item = added["item"]
    item_id = item["id"]
    assert item["status"] == "in_progress"

    def addressed(event: Mapping[str, Any]) -> None:
        assert event["item_id"] == item_id
        assert event["output_index"] == index

    if item["type"] == "message":
        texts = []
        for content_index, part_added in enumerate(cursor.take_many("response.content_part.added")):
            addressed(part_added)
            assert part_added["content_index"] == content_index
            pieces = []
            for delta in cursor.take_many("response.output_text.delta"):
                addressed(delta)
                pieces.append(delta["delta"])
            text_done = cursor.take("response.output_text.done")
            addressed(text_done)
            assert text_done["text"] == "".join(pieces)
            part_done = cursor.take("response.content_part.done")
            addressed(part_done)
            assert part_done["part"]["text"] == text_done["text"]
            texts.append(text_done["text"])
        done = cursor.take("response.output_item.done")
        assert [part["text"] for part in done["item"]["content"]] == texts
    elif item["type"] == "function_call":
        pieces = []
        for delta in cursor.take_many("response.function_call_arguments.delta"):
            addressed(delta)
            pieces.append(delta["delta"])
        args_done = cursor.take("response.function_call_arguments.done")
        addressed(args_done)
        assert args_done["arguments"] == "".join(pieces)
        done = cursor.take("response.output_item.done")
        assert done["item"]["arguments"] == args_done["arguments"]
        assert done["item"]["call_id"] == item["call_id"]
        assert args_done.get("name") == done["item"]["name"]
    elif item["type"] == "reasoning":
        texts = []
        for summary_index, part_added in enumerate(
            cursor.take_many("response.reasoning_summary_part.added")
        ):
            addressed(part_added)
            assert part_added["summary_index"] == summary_index
            pieces = []
            for delta in cursor.take_many("response.reasoning_summary_text.delta"):
                addressed(delta)
                pieces.append(delta["delta"])
            text_done = cursor.take("response.reasoning_summary_text.done")
            assert text_done["text"] == "".join(pieces)
            part_done = cursor.take("response.reasoning_summary_part.done")
            assert part_done["part"]["text"] == text_done["text"]
            texts.append(text_done["text"])
        done = cursor.take("response.output_item.done")
        assert [part["text"] for part in done["item"]["summary"]] == texts
    else:
        raise AssertionError(f"unexpected item type {item['type']}")
    assert done["output_index"] == index
    assert done["item"]["id"] == item_id
    assert done["item"]["status"] in ("completed", "incomplete")
    return done["item"]
