"""Event models and the tolerant event parser."""

from __future__ import annotations

from typing import Any

import pytest

from tests.spec import validate_event
from turnstream.protocol import (
    ErrorEvent,
    FunctionCallArgumentsDoneEvent,
    GenericEvent,
    OutputTextDeltaEvent,
    ResponseCompletedEvent,
    parse_event,
)

RESPONSE = {"id": "resp_1", "object": "response", "created_at": 1, "model": "m", "output": []}


def test_a_known_event_parses_to_its_model() -> None:
    event = parse_event(
        {
            "type": "response.output_text.delta",
            "sequence_number": 4,
            "item_id": "msg_1",
            "output_index": 0,
            "content_index": 0,
            "delta": "Hel",
            "logprobs": [],
            "obfuscation": "xyz",
        }
    )
    assert isinstance(event, OutputTextDeltaEvent)
    assert event.delta == "Hel"
    assert event.model_dump()["obfuscation"] == "xyz"


def test_a_lifecycle_event_carries_a_response() -> None:
    event = parse_event({"type": "response.completed", "sequence_number": 9, "response": RESPONSE})
    assert isinstance(event, ResponseCompletedEvent)
    assert event.response.id == "resp_1"


def test_function_call_arguments_done_is_read_with_or_without_name() -> None:
    base = {
        "type": "response.function_call_arguments.done",
        "sequence_number": 1,
        "item_id": "fc_1",
        "output_index": 0,
        "arguments": "{}",
    }
    assert isinstance(parse_event(base), FunctionCallArgumentsDoneEvent)
    named = parse_event({**base, "name": "f"})
    assert isinstance(named, FunctionCallArgumentsDoneEvent)
    assert named.name == "f"


@pytest.mark.parametrize(
    "data",
    [
        {"type": "response.web_search_call.searching", "sequence_number": 3, "item_id": "ws_1"},
        {"type": "response.output_text.delta", "sequence_number": "x"},
        {"type": 5},
        {},
    ],
    ids=["unknown type", "malformed known type", "non-string type", "empty"],
)
def test_unknown_or_malformed_events_pass_through_as_generic_events(data: dict[str, Any]) -> None:
    event = parse_event(data)
    assert isinstance(event, GenericEvent)
    for key, value in data.items():
        if key not in ("type", "sequence_number"):
            assert event.model_dump()[key] == value


def test_parse_event_never_raises_for_a_non_mapping() -> None:
    assert isinstance(parse_event([1, 2]), GenericEvent)  # type: ignore[arg-type]  # deliberately not a mapping


def test_the_error_event_is_flat_and_validates_as_our_flat_shape() -> None:
    event = ErrorEvent(sequence_number=3, code="server_error", message="boom")
    data = event.model_dump(mode="json")
    assert data == {
        "type": "error",
        "sequence_number": 3,
        "code": "server_error",
        "message": "boom",
        "param": None,
    }
    validate_event(data)


def test_a_nested_error_event_from_an_open_responses_server_is_read_flat() -> None:
    event = parse_event(
        {
            "type": "error",
            "sequence_number": 2,
            "error": {"type": "server_error", "code": "x", "message": "m", "param": None},
        }
    )
    assert isinstance(event, ErrorEvent)
    assert (event.code, event.message) == ("x", "m")
    assert "error" not in event.model_dump()
