"""ResponseStateMachine: hand-picked streams (the property test covers the rest)."""

from __future__ import annotations

import json
from itertools import count
from typing import Any

import pytest

from tests.engine.checks import check_stream, feed_sdk, wire_round_trip
from turnstream.engine import (
    Delta,
    FinishDelta,
    ItemEndDelta,
    OutputTextDelta,
    QueuedDelta,
    ReasoningDelta,
    ResponseStateError,
    ResponseStateMachine,
    StartedDelta,
    ToolCallDelta,
    UsageDelta,
)
from turnstream.protocol import Response, StreamEvent


def _machine(**fields: Any) -> ResponseStateMachine:
    counter = count()
    return ResponseStateMachine(
        {"id": "resp_1", "created_at": 1, "model": "m", **fields},
        clock=lambda: 100.0,
        id_factory=lambda prefix: f"{prefix}_{next(counter)}",
    )


def _run(deltas: list[Delta], *, end: str = "finish", **fields: Any) -> list[dict[str, Any]]:
    machine = _machine(**fields)
    events: list[StreamEvent] = list(machine.start())
    for delta in deltas:
        events += machine.feed(delta)
    if end == "finish":
        events += machine.finish()
    elif end == "fail":
        events += machine.fail("server_error", "boom")
    else:
        events += machine.cancel()
    return wire_round_trip(events)


def _types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"].removeprefix("response.") for e in events]


def test_a_text_answer_has_the_exact_documented_order() -> None:
    events = _run([OutputTextDelta("Hel"), OutputTextDelta("lo"), UsageDelta(12, 5)])
    assert _types(events) == [
        "created",
        "in_progress",
        "output_item.added",
        "content_part.added",
        "output_text.delta",
        "output_text.delta",
        "output_text.done",
        "content_part.done",
        "output_item.done",
        "completed",
    ]
    final = check_stream(events)
    assert final["output"][0]["content"][0]["text"] == "Hello"
    assert final["usage"]["total_tokens"] == 17
    assert final["completed_at"] == 100


def test_created_and_in_progress_carry_an_empty_in_progress_response() -> None:
    created, in_progress = _run([])[:2]
    for event in (created, in_progress):
        assert event["response"]["status"] == "in_progress"
        assert event["response"]["output"] == []
        assert event["response"]["usage"] is None


def test_background_mode_adds_queued_between_created_and_in_progress() -> None:
    events = _run([OutputTextDelta("x")], background=True)
    assert _types(events)[:3] == ["created", "queued", "in_progress"]
    assert [e["response"]["status"] for e in events[:3]] == ["queued", "queued", "in_progress"]
    check_stream(events)


def _held(deltas: list[Delta], *, end: str = "finish") -> list[dict[str, Any]]:
    machine = _machine()
    events: list[StreamEvent] = list(machine.start(hold=True))
    for delta in deltas:
        events += machine.feed(delta)
    events += machine.finish() if end == "finish" else machine.cancel()
    return wire_round_trip(events)


def test_a_queued_request_shows_queued_between_created_and_in_progress() -> None:
    machine = _machine()
    assert _types(wire_round_trip(machine.start(hold=True))) == ["created"]
    queued = wire_round_trip(machine.feed(QueuedDelta()))
    assert _types(queued) == ["queued"]
    assert queued[0]["response"]["status"] == "queued"
    assert machine.response.status == "queued"
    started = wire_round_trip(machine.feed(StartedDelta()))
    assert _types(started) == ["in_progress"]
    assert machine.response.status == "in_progress"
    assert machine.feed(OutputTextDelta("x"))[0].type == "response.output_item.added"


def test_a_held_in_progress_goes_out_with_the_first_delta_when_nothing_queued() -> None:
    events = _held([OutputTextDelta("x")])
    assert _types(events)[:3] == ["created", "in_progress", "output_item.added"]
    check_stream(events)


def test_a_request_cancelled_while_queued_still_ends_in_order() -> None:
    events = _held([QueuedDelta()], end="cancel")
    assert _types(events) == ["created", "queued", "in_progress", "incomplete"]
    assert check_stream(events)["status"] == "cancelled"


def test_queued_changes_nothing_once_in_progress_was_sent() -> None:
    events = _run([OutputTextDelta("x"), QueuedDelta(), StartedDelta(), OutputTextDelta("y")])
    assert "queued" not in _types(events)
    assert check_stream(events)["output"][0]["content"][0]["text"] == "xy"


def test_two_calls_stream_one_after_the_other_with_name_on_arguments_done() -> None:
    events = _run(
        [
            ToolCallDelta(0, name="get_weather", call_id="call_a", arguments='{"city":'),
            ToolCallDelta(0, arguments='"Paris"}'),
            ToolCallDelta(1, name="get_time", call_id="call_b", arguments="{}"),
        ]
    )
    assert _types(events)[2:] == [
        "output_item.added",
        "function_call_arguments.delta",
        "function_call_arguments.delta",
        "function_call_arguments.done",
        "output_item.done",
        "output_item.added",
        "function_call_arguments.delta",
        "function_call_arguments.done",
        "output_item.done",
        "completed",
    ]
    final = check_stream(events)
    calls = final["output"]
    assert [(c["name"], c["call_id"], c["arguments"]) for c in calls] == [
        ("get_weather", "call_a", '{"city":"Paris"}'),
        ("get_time", "call_b", "{}"),
    ]
    assert events[5]["name"] == "get_weather"
    assert events[5]["item_id"] == calls[0]["id"] != calls[0]["call_id"]


def test_interleaved_call_deltas_keep_each_call_whole_and_sequential() -> None:
    events = _run(
        [
            ToolCallDelta(0, name="a", arguments="[0"),
            ToolCallDelta(1, name="b", arguments="[1"),
            ToolCallDelta(0, arguments=",0]"),
            ToolCallDelta(1, arguments=",1]"),
        ]
    )
    final = check_stream(events)
    assert [(c["name"], c["arguments"]) for c in final["output"]] == [
        ("a", "[0,0]"),
        ("b", "[1,1]"),
    ]


def test_item_end_lets_the_next_buffered_call_stream_live() -> None:
    machine = _machine()
    machine.start()
    machine.feed(ToolCallDelta(0, name="a", arguments="x"))
    assert machine.feed(ToolCallDelta(1, name="b", arguments="y")) == []
    after_end = [e.type for e in machine.feed(ItemEndDelta())]
    assert after_end == [
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
    ]
    live = machine.feed(ToolCallDelta(1, arguments="z"))
    assert [e.type for e in live] == ["response.function_call_arguments.delta"]


def test_missing_or_repeated_provider_call_ids_are_replaced_by_fresh_unique_ones() -> None:
    events = _run(
        [
            ToolCallDelta(0, name="a", call_id="dup"),
            ItemEndDelta(),
            ToolCallDelta(1, name="b", call_id="dup"),
            ItemEndDelta(),
            ToolCallDelta(2, name="c"),
        ]
    )
    call_ids = [c["call_id"] for c in check_stream(events)["output"]]
    assert call_ids[0] == "dup"
    assert len(set(call_ids)) == 3
    assert all(call_id.startswith("call_") for call_id in call_ids[1:])


def test_a_call_waits_for_its_name_before_it_is_announced() -> None:
    machine = _machine()
    machine.start()
    assert machine.feed(ToolCallDelta(0, arguments='{"a"')) == []
    events = machine.feed(ToolCallDelta(0, name="f", arguments=":1}"))
    assert events[0].type == "response.output_item.added"
    assert events[1].model_dump()["delta"] == '{"a":1}'


def test_text_after_a_call_closes_the_call_first() -> None:
    events = _run([ToolCallDelta(0, name="f", arguments="{}"), OutputTextDelta("done")])
    final = check_stream(events)
    assert [item["type"] for item in final["output"]] == ["function_call", "message"]


def test_reasoning_streams_as_a_summary_part_before_the_message() -> None:
    events = _run([ReasoningDelta("think "), ReasoningDelta("hard"), OutputTextDelta("answer")])
    assert _types(events)[2:8] == [
        "output_item.added",
        "reasoning_summary_part.added",
        "reasoning_summary_text.delta",
        "reasoning_summary_text.delta",
        "reasoning_summary_text.done",
        "reasoning_summary_part.done",
    ]
    final = check_stream(events)
    assert final["output"][0]["summary"] == [{"type": "summary_text", "text": "think hard"}]
    assert final["output"][1]["content"][0]["text"] == "answer"


def test_empty_text_deltas_open_no_item() -> None:
    events = _run([OutputTextDelta(""), ReasoningDelta("")])
    assert _types(events) == ["created", "in_progress", "completed"]


@pytest.mark.parametrize(
    ("reason", "detail"), [("length", "max_output_tokens"), ("content_filter", "content_filter")]
)
def test_a_length_or_filter_finish_ends_incomplete_with_the_open_item_incomplete(
    reason: str, detail: str
) -> None:
    events = _run([OutputTextDelta("cut"), FinishDelta(reason)])  # type: ignore[arg-type]  # a parametrized str that is one of the Literal's values
    final = check_stream(events)
    assert events[-1]["type"] == "response.incomplete"
    assert final["status"] == "incomplete"
    assert final["incomplete_details"] == {"reason": detail}
    assert final["output"][0]["status"] == "incomplete"
    assert final["completed_at"] is None


def test_items_closed_before_a_length_finish_stay_completed() -> None:
    events = _run([ToolCallDelta(0, name="f"), OutputTextDelta("cut"), FinishDelta("length")])
    statuses = [item["status"] for item in check_stream(events)["output"]]
    assert statuses == ["completed", "incomplete"]


def test_fail_sends_a_flat_error_then_response_failed() -> None:
    events = _run([OutputTextDelta("partial")], end="fail")
    assert _types(events)[-2:] == ["error", "failed"]
    assert events[-2] == {
        "type": "error",
        "sequence_number": events[-2]["sequence_number"],
        "code": "server_error",
        "message": "boom",
        "param": None,
    }
    final = check_stream(events)
    assert final["error"] == {"code": "server_error", "message": "boom"}
    assert final["output"][0]["status"] == "incomplete"


def test_cancel_ends_with_response_incomplete_whose_status_is_cancelled() -> None:
    events = _run([ToolCallDelta(0, name="f", arguments="{")], end="cancel")
    assert events[-1]["type"] == "response.incomplete"
    final = check_stream(events)
    assert final["status"] == "cancelled"
    assert final["incomplete_details"] is None
    assert final["output"][0]["status"] == "incomplete"


def test_finish_without_start_still_emits_the_lifecycle_prefix() -> None:
    machine = _machine()
    events = wire_round_trip(machine.finish())
    assert _types(events) == ["created", "in_progress", "completed"]


def test_start_twice_is_refused() -> None:
    machine = _machine()
    machine.start()
    with pytest.raises(ResponseStateError):
        machine.start()


@pytest.mark.parametrize("end", ["finish", "fail", "cancel"])
def test_nothing_may_follow_the_terminal_event(end: str) -> None:
    machine = _machine()
    machine.start()
    machine.finish() if end == "finish" else machine.fail(
        "x", "y"
    ) if end == "fail" else machine.cancel()
    assert machine.done
    with pytest.raises(ResponseStateError):
        machine.feed(OutputTextDelta("late"))
    with pytest.raises(ResponseStateError):
        machine.finish()
    with pytest.raises(ResponseStateError):
        machine.fail("x", "y")


def test_the_response_property_shows_open_items_then_the_final_response() -> None:
    machine = _machine()
    machine.start()
    machine.feed(OutputTextDelta("so far"))
    snapshot = machine.response
    assert snapshot.status == "in_progress"
    assert snapshot.output_text == "so far"
    [terminal] = [e for e in machine.finish() if e.type == "response.completed"]
    assert machine.response is terminal.response  # type: ignore[attr-defined]  # the filter above narrows the event type; mypy cannot see it
    assert machine.response.status == "completed"


def test_events_hold_snapshots_not_live_state() -> None:
    machine = _machine()
    added = machine.start() + machine.feed(OutputTextDelta("a"))
    before = json.dumps([e.model_dump(mode="json") for e in added])
    machine.feed(OutputTextDelta("b"))
    machine.finish()
    assert json.dumps([e.model_dump(mode="json") for e in added]) == before


def test_the_initial_response_must_have_no_output() -> None:
    with pytest.raises(ValueError, match="empty output"):
        ResponseStateMachine(
            Response(id="r", created_at=1, model="m", output=[{"type": "x"}])  # type: ignore[list-item]  # deliberately invalid: the machine must refuse it
        )


def test_a_non_delta_is_a_type_error() -> None:
    machine = _machine()
    machine.start()
    with pytest.raises(TypeError):
        machine.feed("text")  # type: ignore[arg-type]  # deliberately not a delta


def test_the_sdk_accumulates_a_two_call_stream_into_the_same_final_output() -> None:
    events = _run(
        [
            OutputTextDelta("Let me check."),
            ToolCallDelta(0, name="a", call_id="call_a", arguments='{"x":1}'),
            ToolCallDelta(1, name="b", call_id="call_b", arguments='{"y":2}'),
        ]
    )
    state = feed_sdk(events)
    snapshot = state._ResponseStreamState__current_snapshot  # type: ignore[attr-defined]  # the SDK's private (name-mangled) accumulated snapshot
    assert [getattr(item, "call_id", None) for item in snapshot.output] == [
        None,
        "call_a",
        "call_b",
    ]
    assert [getattr(item, "arguments", None) for item in snapshot.output][1:] == [
        '{"x":1}',
        '{"y":2}',
    ]
    assert snapshot.output[0].content[0].text == "Let me check."
