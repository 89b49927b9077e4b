"""Tool pairing and duplicate-id checks over an assembled context."""

from __future__ import annotations

from typing import Any

import pytest

from turnstream.engine import check_duplicate_ids, check_tool_pairing, validate_context
from turnstream.protocol import APIError


def _call(call_id: str, item_id: str | None = None) -> dict[str, Any]:
    item = {"type": "function_call", "call_id": call_id, "name": "f", "arguments": "{}"}
    if item_id:
        item["id"] = item_id
    return item


def _output(call_id: str) -> dict[str, Any]:
    return {"type": "function_call_output", "call_id": call_id, "output": "ok"}


USER = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}


def test_paired_calls_and_outputs_pass_even_with_items_between_them() -> None:
    check_tool_pairing(
        [USER, _call("call_1"), _call("call_2"), USER, _output("call_2"), _output("call_1")]
    )


def test_an_output_without_an_earlier_call_is_the_orphan_error() -> None:
    with pytest.raises(APIError) as info:
        check_tool_pairing([USER, _output("call_9")])
    assert info.value.message == "No tool call found for function call output with call_id call_9."
    assert (info.value.status, info.value.param) == (400, "input")


def test_an_output_before_its_call_is_an_orphan() -> None:
    with pytest.raises(APIError, match="call_id call_1"):
        check_tool_pairing([_output("call_1"), _call("call_1")])


def test_a_call_without_output_names_the_first_unanswered_call() -> None:
    with pytest.raises(APIError) as info:
        check_tool_pairing([_call("call_1"), _call("call_2"), _call("call_3"), _output("call_2")])
    assert info.value.message == "No tool output found for function call call_1."
    assert info.value.param == "input"


def test_a_context_without_tools_passes() -> None:
    check_tool_pairing([USER])


def test_an_item_id_sent_twice_is_the_duplicate_error() -> None:
    with pytest.raises(APIError) as info:
        check_duplicate_ids([_call("call_1", "fc_1"), _output("call_1"), _call("call_1", "fc_1")])
    assert info.value.message == "Duplicate item found with id fc_1."
    assert (info.value.status, info.value.param) == (400, "input")


def test_items_without_ids_are_never_duplicates() -> None:
    check_duplicate_ids([USER, USER])


def test_validate_context_reports_duplicates_before_pairing() -> None:
    with pytest.raises(APIError, match="Duplicate"):
        validate_context([_call("call_1", "fc_1"), _call("call_1", "fc_1")])
