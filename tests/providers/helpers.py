"""Small helpers for provider tests: build requests, collect and fold deltas.

The item and tool builders come from `tests/builders.py` and are re-exported here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

__all__ = [
    "UNITS",
    "assistant",
    "calls_of",
    "collect",
    "function_call",
    "function_output",
    "reasoning_of",
    "request",
    "run_machine",
    "text_of",
    "tool",
    "user",
]

from tests.builders import assistant, function_call, function_output, tool, user
from tests.spec import validate_event, validate_response
from turnstream.engine.deltas import Delta, OutputTextDelta, ReasoningDelta, ToolCallDelta
from turnstream.engine.state import ResponseStateMachine
from turnstream.providers.base import GenerationRequest

UNITS: dict[str, Any] = {
    "type": "function",
    "name": "convert_units",
    "description": "Convert a quantity between units of length, mass or temperature.",
    "parameters": {
        "type": "object",
        "properties": {
            "value": {"type": "number"},
            "from_unit": {"type": "string"},
            "to_unit": {"type": "string"},
        },
    },
}
"""A unit converter, the kind of tool a unit in a message asks for."""
CURRENCY: dict[str, Any] = {
    "type": "function",
    "name": "convert_currency",
    "description": "Convert an amount of money from one currency to another.",
    "parameters": {
        "type": "object",
        "properties": {
            "amount": {"type": "number"},
            "from_currency": {"type": "string"},
            "to_currency": {"type": "string"},
        },
    },
}
"""A currency converter: its calls pair an amount with two currency codes."""
CALCULATOR: dict[str, Any] = {
    "type": "function",
    "name": "calculate",
    "description": "Evaluate an arithmetic expression.",
    "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}},
}
"""A calculator, the kind of tool a calculation in a message asks for."""
WEATHER: dict[str, Any] = {
    "type": "function",
    "name": "get_weather",
    "description": "Get the current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}
"""A tool whose results are facts, not figures worked out."""
CLOCK: dict[str, Any] = {
    "type": "function",
    "name": "current_time",
    "description": "Get the current date and time in a time zone.",
    "parameters": {"type": "object", "properties": {"timezone": {"type": "string"}}},
}
"""A clock, which "What time is it?" asks for."""


def is_warm_up(body: Mapping[str, Any]) -> bool:
    """Whether a body a fake engine got is `LocalProvider`'s warm-up at load (the
    system prompt and a one-token "Hi"), not a request."""
    messages = body.get("messages") or []
    return (
        body.get("max_tokens") == 1
        and len(messages) == 2
        and messages[1] == {"role": "user", "content": "Hi"}
    )


def request(
    *items: Mapping[str, Any] | str, model: str = "echo", **fields: Any
) -> GenerationRequest:
    context = [user(item) if isinstance(item, str) else item for item in items]
    return GenerationRequest(model=model, items=context, **fields)


async def collect(stream: AsyncIterator[Delta]) -> list[Delta]:
    return [delta async for delta in stream]


def text_of(deltas: list[Delta]) -> str:
    return "".join(d.text for d in deltas if isinstance(d, OutputTextDelta))


def reasoning_of(deltas: list[Delta]) -> str:
    return "".join(d.text for d in deltas if isinstance(d, ReasoningDelta))


def calls_of(deltas: list[Delta]) -> dict[int, dict[str, Any]]:
    """Tool call deltas folded per index: name, call_id and concatenated arguments."""
    calls: dict[int, dict[str, Any]] = {}
    for delta in deltas:
        if isinstance(delta, ToolCallDelta):
            call = calls.setdefault(delta.index, {"name": None, "call_id": None, "arguments": ""})
            call["name"] = delta.name or call["name"]
            call["call_id"] = delta.call_id or call["call_id"]
            call["arguments"] += delta.arguments
    return calls


async def run_machine(model: str, deltas: AsyncIterator[Delta]) -> tuple[list[dict[str, Any]], Any]:
    """Feed `deltas` through the engine's state machine; the events (spec-checked,
    numbered in order) and the final Response."""
    machine = ResponseStateMachine({"id": "resp_test", "created_at": 0, "model": model})
    events = machine.start()
    async for delta in deltas:
        events += machine.feed(delta)
    events += machine.finish()
    wire = [event.model_dump(mode="json") for event in events]
    for event in wire:
        validate_event(event)
    validate_response(machine.response.model_dump(mode="json"))
    assert [event["sequence_number"] for event in wire] == list(range(len(wire)))
    return wire, machine.response
