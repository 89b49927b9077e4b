"""Small helpers for provider tests: build requests, collect and fold deltas."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from turnstream.engine.deltas import Delta, ReasoningDelta, TextDelta, ToolCallDelta
from turnstream.providers.base import GenerationRequest


def user(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def assistant(text: str) -> dict[str, Any]:
    return {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def function_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"type": "function_call", "call_id": call_id, "name": name, "arguments": arguments}


def function_output(call_id: str, output: Any) -> dict[str, Any]:
    return {"type": "function_call_output", "call_id": call_id, "output": output}


def tool(name: str, parameters: Mapping[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "type": "function",
        "name": name,
        "description": f"the {name} tool",
        "parameters": parameters
        if parameters is not None
        else {"type": "object", "properties": {}},
        **extra,
    }


def request(
    *items: Mapping[str, Any] | str, model: str = "echo", **fields: Any
) -> GenerationRequest:
    context = [user(item) if isinstance(item, str) else item for item in items]
    return GenerationRequest(model=model, items=context, **fields)


async def collect(stream: AsyncIterator[Delta]) -> list[Delta]:
    return [delta async for delta in stream]


def text_of(deltas: list[Delta]) -> str:
    return "".join(d.text for d in deltas if isinstance(d, TextDelta))


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
