"""Input items and normalize_input."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter

from turnstream.protocol import (
    FunctionCallItem,
    FunctionCallOutputItem,
    InputItem,
    ItemReferenceItem,
    MessageItem,
    ReasoningItem,
    normalize_input,
)

_ADAPTER: TypeAdapter[InputItem] = TypeAdapter(InputItem)


@pytest.mark.parametrize(
    ("raw", "model"),
    [
        ({"role": "user", "content": "hi"}, MessageItem),
        (
            {
                "type": "message",
                "role": "developer",
                "content": [{"type": "input_text", "text": "be brief"}],
            },
            MessageItem,
        ),
        (
            {
                "type": "message",
                "role": "assistant",
                "id": "msg_1",
                "status": "completed",
                "content": [
                    {"type": "output_text", "text": "Hello", "annotations": []},
                    {"type": "refusal", "refusal": "no"},
                ],
            },
            MessageItem,
        ),
        (
            {
                "role": "user",
                "content": [
                    {
                        "type": "input_image",
                        "image_url": "data:image/png;base64,AA",
                        "detail": "auto",
                    },
                    {"type": "input_file", "file_data": "AA", "filename": "a.txt"},
                ],
            },
            MessageItem,
        ),
        (
            {
                "type": "function_call",
                "id": "fc_1",
                "call_id": "call_1",
                "name": "get_weather",
                "arguments": "{}",
            },
            FunctionCallItem,
        ),
        (
            {"type": "function_call_output", "call_id": "call_1", "output": "{}"},
            FunctionCallOutputItem,
        ),
        (
            {
                "type": "function_call_output",
                "call_id": "call_1",
                "output": [{"type": "input_text", "text": "18C"}],
            },
            FunctionCallOutputItem,
        ),
        (
            {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "x"},
            ReasoningItem,
        ),
        ({"type": "item_reference", "id": "msg_1"}, ItemReferenceItem),
        ({"id": "msg_1"}, ItemReferenceItem),
    ],
)
def test_each_documented_input_item_shape_parses_to_its_model(
    raw: dict[str, Any], model: type[Any]
) -> None:
    assert isinstance(_ADAPTER.validate_python(raw), model)


def test_unknown_fields_on_items_are_kept_for_round_trips() -> None:
    item = _ADAPTER.validate_python(
        {"type": "message", "role": "assistant", "content": "x", "phase": "final_answer"}
    )
    assert item.model_dump()["phase"] == "final_answer"


def test_a_string_input_becomes_one_user_message_with_an_input_text_part() -> None:
    assert normalize_input("hi") == [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}
    ]


@pytest.mark.parametrize("role", ["user", "system", "developer"])
def test_string_content_of_non_assistant_roles_becomes_input_text(role: str) -> None:
    [item] = normalize_input([{"role": role, "content": "x"}])
    assert item == {
        "type": "message",
        "role": role,
        "content": [{"type": "input_text", "text": "x"}],
    }


def test_string_content_of_the_assistant_becomes_output_text() -> None:
    [item] = normalize_input([{"role": "assistant", "content": "x"}])
    assert item["content"] == [
        {"type": "output_text", "text": "x", "annotations": [], "logprobs": []}
    ]


def test_normalize_input_accepts_validated_models_and_drops_nulls() -> None:
    models = [
        _ADAPTER.validate_python({"role": "user", "content": "hi"}),
        _ADAPTER.validate_python({"type": "function_call_output", "call_id": "c", "output": "o"}),
        _ADAPTER.validate_python({"id": "msg_1"}),
    ]
    assert normalize_input(models) == [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
        {"type": "function_call_output", "call_id": "c", "output": "o"},
        {"type": "item_reference", "id": "msg_1"},
    ]


def test_normalize_input_leaves_list_content_and_other_items_alone() -> None:
    items = [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "a"}]},
        {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
    ]
    assert normalize_input(items) == items
