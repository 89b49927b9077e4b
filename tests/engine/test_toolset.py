"""Namespaces, custom tools and hosted tools, as the model sees them and as they come back."""

from __future__ import annotations

import json
from itertools import count
from typing import Any

import pytest

from tests.engine.checks import check_stream, feed_sdk, wire_round_trip
from tests.spec import validate_response
from turnstream.engine import OutputTextDelta, ReasoningDelta, ResponseStateMachine, ToolCallDelta
from turnstream.engine.pairing import check_tool_pairing
from turnstream.engine.toolset import Toolset, expand_tools
from turnstream.protocol import APIError

EXEC = {"type": "function", "name": "exec_command", "parameters": {"type": "object"}}
AGENTS = {
    "type": "namespace",
    "name": "multi_agent_v1",
    "description": "Sub-agents.",
    "tools": [
        {"type": "function", "name": "spawn_agent", "description": "Start one.", "parameters": {}},
        {"type": "custom", "name": "note", "description": "A free note."},
    ],
}
PATCH = {
    "type": "custom",
    "name": "apply_patch",
    "description": "Edit files.",
    "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"},
}
TOOLS = [EXEC, AGENTS, PATCH, {"type": "web_search"}, {"type": "image_generation"}]


def test_namespaces_flatten_custom_tools_take_one_string_and_hosted_tools_drop() -> None:
    toolset = expand_tools(TOOLS)
    names = [f["name"] for f in toolset.functions]
    assert names == [
        "exec_command",
        "multi_agent_v1__spawn_agent",
        "multi_agent_v1__note",
        "apply_patch",
    ]
    assert toolset.dropped == ["web_search", "image_generation"]
    patch = toolset.functions[3]
    assert patch["parameters"]["required"] == ["input"]
    assert "start: /.+/" in patch["description"]  # the grammar tells the model the syntax
    assert toolset.functions[1]["description"] == "(Sub-agents.) Start one."


def test_long_namespaced_names_stay_within_chat_limits_and_unique() -> None:
    tools = [
        {
            "type": "namespace",
            "name": "mcp__" + "x" * 60,
            "tools": [{"type": "function", "name": f"tool_{i}"} for i in range(2)],
        }
    ]
    toolset = expand_tools(tools)
    names = [f["name"] for f in toolset.functions]
    assert all(len(name) <= 64 for name in names)
    assert len(set(names)) == 2
    assert toolset.target(names[1]).name == "tool_1"


def test_calls_map_back_to_the_request_s_tools() -> None:
    toolset = expand_tools(TOOLS)
    assert toolset.call_item("multi_agent_v1__spawn_agent", "{}") == {
        "type": "function_call",
        "name": "spawn_agent",
        "namespace": "multi_agent_v1",
        "arguments": "{}",
    }
    assert toolset.call_item("apply_patch", json.dumps({"input": "*** Begin"}))["input"] == (
        "*** Begin"
    )
    # a model that wrote the input itself rather than {"input": ...}
    assert toolset.call_item("apply_patch", "raw text")["input"] == "raw text"
    assert toolset.call_item("unknown", "{}")["type"] == "function_call"


def test_history_is_rewritten_into_functions_for_the_model() -> None:
    toolset = expand_tools(TOOLS)
    items = [
        {
            "type": "function_call",
            "call_id": "a",
            "name": "spawn_agent",
            "namespace": "multi_agent_v1",
            "arguments": "{}",
        },
        {"type": "function_call_output", "call_id": "a", "output": "ok"},
        {"type": "custom_tool_call", "call_id": "b", "name": "apply_patch", "input": "P"},
        {"type": "custom_tool_call_output", "call_id": "b", "output": "done"},
    ]
    view = toolset.model_items(items)
    assert view[0]["name"] == "multi_agent_v1__spawn_agent"
    assert "namespace" not in view[0]
    assert view[2] == {
        "type": "function_call",
        "call_id": "b",
        "name": "apply_patch",
        "arguments": json.dumps({"input": "P"}),
    }
    assert view[3] == {"type": "function_call_output", "call_id": "b", "output": "done"}
    assert items[0]["namespace"] == "multi_agent_v1"  # the stored items are untouched


def test_tool_choice_is_rewritten_in_the_model_s_names() -> None:
    toolset = expand_tools(TOOLS)
    assert toolset.model_choice({"type": "custom", "name": "apply_patch"}) == {
        "type": "function",
        "name": "apply_patch",
    }
    allowed = toolset.model_choice(
        {
            "type": "allowed_tools",
            "mode": "required",
            "tools": [{"type": "namespace", "name": "multi_agent_v1"}],
        }
    )
    assert isinstance(allowed, dict)
    assert [t["name"] for t in allowed["tools"]] == [
        "multi_agent_v1__spawn_agent",
        "multi_agent_v1__note",
    ]


def _machine(toolset: Toolset | None = None, **kwargs: Any) -> ResponseStateMachine:
    counter = count()
    return ResponseStateMachine(
        {
            "id": "resp_1",
            "created_at": 1,
            "model": "m",
            "tools": toolset.functions if toolset else [],
        },
        clock=lambda: 100.0,
        id_factory=lambda prefix: f"{prefix}_{next(counter)}",
        tools=toolset,
        **kwargs,
    )


def test_a_namespaced_call_streams_as_a_function_call_with_its_namespace() -> None:
    machine = _machine(expand_tools(TOOLS))
    events = list(machine.start())
    events += machine.feed(ToolCallDelta(0, "multi_agent_v1__spawn_agent", "call_1", '{"a"'))
    events += machine.feed(ToolCallDelta(0, arguments=": 1}"))
    events += machine.finish()
    wire = wire_round_trip(events)
    check_stream(wire)
    done = next(e for e in wire if e["type"] == "response.output_item.done")["item"]
    assert (done["name"], done["namespace"], done["arguments"]) == (
        "spawn_agent",
        "multi_agent_v1",
        '{"a": 1}',
    )
    args_done = next(e for e in wire if e["type"] == "response.function_call_arguments.done")
    assert args_done["name"] == "spawn_agent"
    sdk_call = _sdk_snapshot(wire).output[0]
    assert sdk_call.namespace == "multi_agent_v1"


def test_a_custom_tool_call_comes_out_whole_as_custom_tool_call() -> None:
    machine = _machine(expand_tools(TOOLS))
    events = list(machine.start())
    events += machine.feed(OutputTextDelta("Patching."))
    events += machine.feed(ToolCallDelta(0, "apply_patch", "call_9", '{"input": "*** Be'))
    events += machine.feed(ToolCallDelta(0, arguments='gin Patch"}'))
    events += machine.finish()
    wire = wire_round_trip(events)
    kinds = [e["type"].removeprefix("response.") for e in wire[5:]]
    # no argument events for a custom call: its input is known only when complete
    assert kinds[-3:] == ["output_item.added", "output_item.done", "completed"]
    item = wire[-1]["response"]["output"][1]
    assert item == {
        "type": "custom_tool_call",
        "id": item["id"],
        "call_id": "call_9",
        "name": "apply_patch",
        "input": "*** Begin Patch",
        "status": "completed",
    }
    sdk = _sdk_snapshot(wire)
    assert sdk.output[1].type == "custom_tool_call"


def test_sealed_reasoning_carries_encrypted_content_and_still_validates() -> None:
    machine = _machine(seal_reasoning=lambda text: f"sealed:{text}")
    events = list(machine.start())
    events += machine.feed(ReasoningDelta("think"))
    events += machine.feed(OutputTextDelta("answer"))
    events += machine.finish()
    wire = wire_round_trip(events)
    check_stream(wire)
    reasoning = wire[-1]["response"]["output"][0]
    assert reasoning["encrypted_content"] == "sealed:think"
    validate_response(wire[-1]["response"])


def test_custom_calls_pair_with_custom_outputs() -> None:
    call = {"type": "custom_tool_call", "call_id": "c", "name": "apply_patch", "input": ""}
    check_tool_pairing([call, {"type": "custom_tool_call_output", "call_id": "c", "output": ""}])
    with pytest.raises(APIError, match="No tool output found"):
        check_tool_pairing([call])
    with pytest.raises(APIError, match="No tool call found"):
        check_tool_pairing([{"type": "custom_tool_call_output", "call_id": "x", "output": ""}])


def _sdk_snapshot(wire: list[dict[str, Any]]) -> Any:
    """The Response the official SDK's stream accumulator built from these events."""
    state = feed_sdk(wire)
    return state._ResponseStreamState__current_snapshot  # type: ignore[attr-defined]  # the SDK keeps it private


def test_allowed_tools_entries_without_a_name_are_ignored_not_a_crash() -> None:
    choice = expand_tools(TOOLS).model_choice(
        {"type": "allowed_tools", "tools": [{"type": "function"}, {"type": "web_search"}]}
    )
    assert choice == {"type": "allowed_tools", "mode": "auto", "tools": []}
