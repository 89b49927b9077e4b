"""ResponseCreateParams and parse_create_params: strict request validation."""

from __future__ import annotations

from typing import Any

import pytest

from turnstream.protocol import (
    APIError,
    ConversationParam,
    FunctionCallOutputItem,
    ItemReferenceItem,
    MessageItem,
    ResponseCreateParams,
    parse_create_params,
)


def _error(body: Any) -> APIError:
    with pytest.raises(APIError) as info:
        parse_create_params(body)
    return info.value


def test_a_minimal_body_gets_the_documented_defaults() -> None:
    params = parse_create_params({"model": "m", "input": "hi"})
    assert params.store is True
    assert params.stream is False
    assert params.background is False
    assert params.tool_choice == "auto"
    assert params.parallel_tool_calls is True
    assert params.truncation == "disabled"


def test_every_protocol_field_is_accepted() -> None:
    body = {
        "model": "m",
        "input": [{"role": "user", "content": "hi"}],
        "instructions": "be brief",
        "tools": [
            {
                "type": "function",
                "name": "get_weather",
                "description": "d",
                "parameters": {"type": "object", "properties": {}},
                "strict": True,
            }
        ],
        "tool_choice": {"type": "function", "name": "get_weather"},
        "parallel_tool_calls": False,
        "max_tool_calls": 3,
        "previous_response_id": None,
        "conversation": {"id": "conv_1"},
        "store": True,
        "stream": True,
        "background": False,
        "include": ["reasoning.encrypted_content"],
        "truncation": "auto",
        "max_output_tokens": 100,
        "temperature": 0.5,
        "top_p": 0.9,
        "metadata": {"k": "v"},
        "stream_options": {"include_obfuscation": False},
        "reasoning": {"effort": "low", "summary": "auto"},
        "text": {"format": {"type": "text"}},
        "prompt": {"id": "pmpt_1"},
        "prompt_cache_key": "key",
        "safety_identifier": "user-1",
        "service_tier": "auto",
        "top_logprobs": 2,
        "user": "u",
    }
    params = parse_create_params(body)
    assert params.conversation_id == "conv_1"
    assert isinstance(params.conversation, ConversationParam)
    assert params.tools is not None
    assert params.tools[0].name == "get_weather"


def test_conversation_is_accepted_as_a_plain_string() -> None:
    assert parse_create_params({"conversation": "conv_9"}).conversation_id == "conv_9"


def test_an_unknown_top_level_parameter_is_named_in_a_400() -> None:
    error = _error({"model": "m", "input": "hi", "foo": 1})
    assert error.status == 400
    assert error.code == "unknown_parameter"
    assert error.param == "foo"
    assert error.message == "Unknown parameter: 'foo'."
    assert error.to_body()["error"]["type"] == "invalid_request_error"


def test_a_body_that_is_not_an_object_is_a_400() -> None:
    assert _error([1, 2]).status == 400


def test_null_for_a_defaulted_field_means_the_default() -> None:
    params = parse_create_params({"store": None, "stream": None, "tool_choice": None})
    assert params.store is True
    assert params.stream is False
    assert params.tool_choice == "auto"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"temperature": 3}, "temperature"),
        ({"input": [{"role": "user", "content": 5}]}, "input[0].content"),
        ({"input": [{"type": "function_call_output", "output": "x"}]}, "input[0].call_id"),
        ({"input": [{"type": "bogus"}]}, "input[0]"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_text"}]}]},
            "input[0].content[0].text",
        ),
        ({"tools": [{"type": "function", "name": "bad name"}]}, "tools[0].name"),
        ({"max_output_tokens": 0}, "max_output_tokens"),
    ],
)
def test_a_field_error_names_the_failing_path(body: dict[str, Any], param: str) -> None:
    error = _error(body)
    assert error.status == 400
    assert error.type == "invalid_request_error"
    assert error.param == param
    assert param in error.message


def test_a_missing_field_uses_openais_missing_parameter_wording() -> None:
    error = _error({"input": [{"type": "function_call_output", "output": "x"}]})
    assert error.message == "Missing required parameter: 'input[0].call_id'."


def test_assistant_messages_reject_input_parts() -> None:
    error = _error(
        {"input": [{"role": "assistant", "content": [{"type": "input_text", "text": "x"}]}]}
    )
    assert error.param == "input[0]"
    assert "output_text" in error.message


def test_user_messages_reject_output_parts() -> None:
    error = _error({"input": [{"role": "user", "content": [{"type": "output_text", "text": "x"}]}]})
    assert error.param == "input[0]"


def test_metadata_with_seventeen_pairs_is_rejected() -> None:
    error = _error({"metadata": {f"k{i}": "v" for i in range(17)}})
    assert error.param == "metadata"
    assert "16" in error.message


def test_metadata_with_sixteen_pairs_at_the_length_limits_is_accepted() -> None:
    metadata = {f"{i:02d}".ljust(64, "k"): "v" * 512 for i in range(16)}
    assert parse_create_params({"metadata": metadata}).metadata == metadata


@pytest.mark.parametrize(
    "metadata", [{"k" * 65: "v"}, {"k": "v" * 513}], ids=["long key", "long value"]
)
def test_metadata_keys_and_values_over_their_limits_are_rejected(metadata: dict[str, str]) -> None:
    assert _error({"metadata": metadata}).param == "metadata"


def test_previous_response_id_with_conversation_is_rejected_on_conversation() -> None:
    error = _error({"previous_response_id": "resp_1", "conversation": "conv_1"})
    assert error.param == "conversation"
    assert "Mutually exclusive" in error.message


def test_background_without_store_is_rejected() -> None:
    assert _error({"background": True, "store": False}).status == 400


def test_stream_options_without_stream_is_rejected() -> None:
    assert _error({"stream_options": {"include_obfuscation": True}}).param == "stream_options"


def test_stream_options_with_stream_is_accepted() -> None:
    params = parse_create_params({"stream": True, "stream_options": {"include_obfuscation": True}})
    assert params.stream_options is not None


def test_input_items_of_every_kind_are_parsed_into_their_models() -> None:
    params = parse_create_params(
        {
            "input": [
                {"role": "user", "content": "hi"},
                {"type": "function_call_output", "call_id": "call_1", "output": "x"},
                {"id": "msg_1"},
            ]
        }
    )
    assert isinstance(params.input, list)
    kinds = [type(item) for item in params.input]
    assert kinds == [MessageItem, FunctionCallOutputItem, ItemReferenceItem]


def test_the_model_forbids_unknown_keys_on_its_own() -> None:
    with pytest.raises(ValueError, match="foo"):
        ResponseCreateParams.model_validate({"foo": 1})
