"""`TurnReader`: wire events in, runtime events out; no I/O."""

from __future__ import annotations

import dataclasses

import pytest

from turnstream.runtime import (
    RawEvent,
    TextDelta,
    ToolArgumentsDelta,
    ToolCallReady,
    ToolCallStarted,
    TurnQueued,
    TurnStarted,
)
from turnstream.runtime.turn import TurnReader


def test_a_call_is_collected_from_output_item_done() -> None:
    reader = TurnReader(1)
    assert reader.feed({"type": "response.created", "response": {"id": "resp_1"}}) == TurnStarted(
        1, "resp_1"
    )
    item = {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "add"}
    started = reader.feed({"type": "response.output_item.added", "item": {**item, "arguments": ""}})
    assert started == ToolCallStarted("add", "call_1", "fc_1")
    ready = reader.feed(
        {
            "type": "response.output_item.done",
            "output_index": 0,
            "item": {**item, "arguments": '{"a":1}'},
        }
    )
    assert isinstance(ready, ToolCallReady)
    assert ready.arguments == {"a": 1}
    assert [c.call_id for c in reader.calls] == ["call_1"]


def test_calls_only_listed_in_the_terminal_response_are_still_collected() -> None:
    reader = TurnReader(1)
    call = {
        "type": "function_call",
        "id": "fc_1",
        "call_id": "call_9",
        "name": "x",
        "arguments": "{}",
    }
    reader.feed(
        {
            "type": "response.completed",
            "response": {"id": "r", "status": "completed", "output": [call]},
        }
    )
    assert reader.status == "completed"
    assert [c.call_id for c in reader.calls] == ["call_9"]


def test_unknown_events_pass_through_raw() -> None:
    reader = TurnReader(1)
    data = {"type": "response.reasoning_summary_text.delta", "delta": "hm"}
    assert reader.feed(data) == RawEvent(data)
    assert reader.feed(
        {"type": "response.output_text.delta", "delta": "hi", "item_id": "m"}
    ) == TextDelta("hi", "m")


def test_a_failed_response_reports_its_error() -> None:
    reader = TurnReader(1)
    reader.feed({"type": "error", "code": "server_error", "message": "boom", "param": None})
    reader.feed(
        {
            "type": "response.failed",
            "response": {
                "id": "r",
                "status": "failed",
                "error": {"code": "server_error", "message": "boom"},
            },
        }
    )
    assert reader.status == "failed"
    assert reader.failure == ("server_error", "boom")


def test_the_outcome_hands_the_loop_what_the_response_came_to() -> None:
    reader = TurnReader(2)
    reader.feed({"type": "response.created", "response": {"id": "resp_7"}})
    call = {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "add"}
    reader.feed(
        {
            "type": "response.output_item.done",
            "output_index": 0,
            "item": {**call, "arguments": "{}"},
        }
    )
    usage = {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5}
    reader.feed(
        {
            "type": "response.incomplete",
            "response": {"id": "resp_7", "status": "incomplete", "usage": usage},
        }
    )
    outcome = reader.outcome()
    assert (outcome.response_id, outcome.status, outcome.text) == ("resp_7", "incomplete", "")
    assert [c.call_id for c in outcome.calls] == ["call_1"]
    assert outcome.usage is not None
    assert outcome.usage.total_tokens == 5
    assert (outcome.error_code, outcome.error_message) == (None, "")


def test_an_unknown_terminal_status_is_a_failure() -> None:
    reader = TurnReader(1)
    reader.feed({"type": "response.failed", "response": {"id": "r", "status": "exploded"}})
    outcome = reader.outcome()
    assert outcome.status == "failed"
    assert outcome.error_message == "the response failed without an error object"


def test_delta_events_built_past_init_equal_constructed_ones_and_stay_frozen() -> None:
    # the reader builds its most frequent events without their __init__ (turn.py)
    reader = TurnReader(1)
    reader.feed(
        {
            "type": "response.output_item.added",
            "item": {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "f"},
        }
    )
    text = reader.feed({"type": "response.output_text.delta", "delta": "hi", "item_id": "m_1"})
    arguments = reader.feed(
        {"type": "response.function_call_arguments.delta", "delta": "{", "item_id": "fc_1"}
    )
    raw = reader.feed({"type": "response.reasoning.delta", "x": 1})
    built = [text, arguments, raw]
    expected = [
        TextDelta("hi", "m_1"),
        ToolArgumentsDelta("{", "call_1", "fc_1"),
        RawEvent({"type": "response.reasoning.delta", "x": 1}),
    ]
    assert built == expected
    assert [repr(event) for event in built] == [repr(event) for event in expected]
    assert [hash(event) for event in built[:2]] == [hash(event) for event in expected[:2]]
    for event, field in zip(built, ["text", "delta", "data"], strict=True):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(event, field, "changed")


def test_a_queued_response_says_when_it_waits_and_when_it_leaves_the_queue() -> None:
    reader = TurnReader(2)
    reader.feed({"type": "response.created", "response": {"id": "resp_q"}})
    queued = {"type": "response.queued", "response": {"id": "resp_q", "status": "queued"}}
    assert reader.feed(queued) == TurnQueued(2, "resp_q", waiting=True)
    running = {"type": "response.in_progress", "response": {"id": "resp_q"}}
    assert reader.feed(running) == TurnQueued(2, "resp_q", waiting=False)


def test_in_progress_without_a_queue_stays_a_raw_event() -> None:
    reader = TurnReader(1)
    reader.feed({"type": "response.created", "response": {"id": "resp_1"}})
    running = {"type": "response.in_progress", "response": {"id": "resp_1"}}
    assert reader.feed(running) == RawEvent(running)
