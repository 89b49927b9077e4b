"""The create body accepts what OpenAI's SDK can send, and only that."""

from __future__ import annotations

import typing

import pytest
from openai.types.responses import response_create_params

from turnstream.protocol import APIError, ResponseCreateParams, parse_create_params

# Not in the SDK's TypedDict, but sent by real clients: `stream` lives on the SDK's
# streaming subclass; `client_metadata` is Codex CLI's; the two penalties are in the
# Open Responses spec's create body.
EXTRA_ACCEPTED = {"stream", "client_metadata", "frequency_penalty", "presence_penalty"}


def sdk_create_keys() -> set[str]:
    keys: set[str] = set()
    for name in ("ResponseCreateParamsBase", "ResponseCreateParamsStreaming"):
        params = getattr(response_create_params, name, None)
        if params is not None:
            keys |= set(typing.get_type_hints(params))
    return keys


def test_every_parameter_of_the_installed_sdk_is_accepted() -> None:
    # Fails when a newer SDK adds a create parameter this server would refuse.
    keys = sdk_create_keys()
    assert "model" in keys
    assert "input" in keys
    refused = sorted(keys - set(ResponseCreateParams.model_fields))
    assert refused == [], f"parameters the SDK sends that the server refuses: {refused}"


def test_extra_accepted_parameters_are_the_documented_few() -> None:
    ours = set(ResponseCreateParams.model_fields)
    assert ours - sdk_create_keys() <= EXTRA_ACCEPTED


def test_a_truly_unknown_parameter_is_still_refused() -> None:
    with pytest.raises(APIError) as raised:
        parse_create_params({"model": "m", "input": "hi", "not_a_parameter": 1})
    assert raised.value.code == "unknown_parameter"
    assert raised.value.param == "not_a_parameter"


def test_codex_cli_first_request_body_is_accepted() -> None:
    params = parse_create_params(
        {
            "model": "local",
            "instructions": "You are a coding agent.",
            "input": [{"type": "message", "role": "user", "content": "Say hello"}],
            "tools": [
                {"type": "function", "name": "exec_command", "strict": False, "parameters": {}},
                {
                    "type": "namespace",
                    "name": "multi_agent_v1",
                    "description": "Sub-agents",
                    "tools": [{"type": "function", "name": "spawn_agent", "parameters": {}}],
                },
                {"type": "custom", "name": "apply_patch", "format": {"type": "text"}},
                {"type": "web_search", "external_web_access": False},
                {"type": "tool_search", "defer_loading": True},
            ],
            "tool_choice": "auto",
            "parallel_tool_calls": False,
            "reasoning": {"effort": "medium", "summary": "auto"},
            "store": False,
            "stream": True,
            "include": ["reasoning.encrypted_content"],
            "prompt_cache_key": "0198-thread",
            "client_metadata": {"thread_id": "t", "turn_id": "u"},
            "text": {"verbosity": "low"},
        }
    )
    assert [tool.type for tool in params.tools or ()] == [
        "function",
        "namespace",
        "custom",
        "web_search",
        "tool_search",
    ]


def test_max_output_tokens_of_one_is_accepted_as_a_probe() -> None:
    assert parse_create_params({"model": "m", "max_output_tokens": 1}).max_output_tokens == 1


def test_custom_tool_items_and_hosted_tool_items_are_accepted_as_input() -> None:
    params = parse_create_params(
        {
            "model": "m",
            "input": [
                {"type": "custom_tool_call", "call_id": "c1", "name": "apply_patch", "input": "x"},
                {"type": "custom_tool_call_output", "call_id": "c1", "output": "done"},
                {
                    "type": "function_call",
                    "call_id": "c2",
                    "name": "spawn_agent",
                    "namespace": "multi_agent_v1",
                    "arguments": "{}",
                },
                {"type": "function_call_output", "call_id": "c2", "output": "ok"},
                {"type": "web_search_call", "id": "ws_1", "status": "completed"},
            ],
        }
    )
    assert isinstance(params.input, list)
    assert [item.type for item in params.input] == [
        "custom_tool_call",
        "custom_tool_call_output",
        "function_call",
        "function_call_output",
        "web_search_call",
    ]
