"""The Response object: every field OpenAI sends, and spec validity."""

from __future__ import annotations

from tests.spec import validate_response
from turnstream.protocol import (
    OutputFunctionCallItem,
    OutputMessageItem,
    OutputReasoningItem,
    OutputTextPart,
    Response,
    SummaryTextPart,
    Usage,
    parse_create_params,
)

OPENAI_FIELDS = {
    "id", "object", "created_at", "status", "background", "error", "incomplete_details",
    "instructions", "max_output_tokens", "max_tool_calls", "model", "output",
    "parallel_tool_calls", "previous_response_id", "conversation", "reasoning", "store",
    "temperature", "text", "tool_choice", "tools", "top_p", "truncation", "metadata", "user",
    "usage", "completed_at",
}  # fmt: skip


def test_a_minimal_response_serializes_every_openai_field_and_validates() -> None:
    data = Response(id="resp_1", created_at=1, model="m").model_dump(mode="json")
    assert data.keys() >= OPENAI_FIELDS
    validate_response(data)


def test_a_full_response_with_every_output_kind_validates() -> None:
    response = Response(
        id="resp_1",
        created_at=1,
        model="m",
        status="completed",
        completed_at=2,
        output=[
            OutputReasoningItem(id="rs_1", summary=[SummaryTextPart(text="t")]),
            OutputMessageItem(id="msg_1", content=[OutputTextPart(text="Hello")]),
            OutputFunctionCallItem(id="fc_1", call_id="call_1", name="f", arguments="{}"),
        ],
        usage=Usage(input_tokens=1, output_tokens=2, total_tokens=3),
    )
    data = response.model_dump(mode="json")
    validate_response(data)
    assert data["usage"]["input_tokens_details"] == {"cached_tokens": 0, "cache_write_tokens": 0}
    assert data["usage"]["output_tokens_details"] == {"reasoning_tokens": 0}
    assert response.output_text == "Hello"


def test_absent_optional_reasoning_fields_are_left_out_not_null() -> None:
    data = OutputReasoningItem(id="rs_1").model_dump(mode="json")
    assert "encrypted_content" not in data
    assert "content" not in data


def test_from_params_echoes_the_request_settings_and_validates() -> None:
    params = parse_create_params(
        {
            "model": "m",
            "input": "hi",
            "instructions": "be brief",
            "tools": [{"type": "function", "name": "f"}],
            "temperature": 0.2,
            "metadata": {"a": "b"},
            "text": {"format": {"type": "text"}, "verbosity": None},
            "background": True,
        }
    )
    response = Response.from_params(
        params, response_id="resp_1", created_at=5, conversation_id="conv_1"
    )
    data = response.model_dump(mode="json")
    validate_response(data)
    assert data["instructions"] == "be brief"
    assert data["temperature"] == 0.2
    assert data["metadata"] == {"a": "b"}
    assert data["conversation"] == {"id": "conv_1"}
    assert data["background"] is True
    assert data["text"] == {"format": {"type": "text"}}
    assert data["tools"][0]["name"] == "f"


def test_a_response_from_another_server_is_read_with_only_the_core_fields() -> None:
    response = Response.model_validate(
        {"id": "resp_1", "created_at": 1, "model": "m", "output": [{"type": "web_search_call"}]}
    )
    assert response.output[0].type == "web_search_call"
