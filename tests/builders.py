"""Wire items and tools for requests, shared by every layer's tests.

Plain dicts in the shape a client sends, so a test reads as the request it makes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "TIME",
    "WEATHER",
    "assistant",
    "function_call",
    "function_output",
    "tool",
    "user",
]


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


def _city_tool(name: str, description: str) -> dict[str, Any]:
    return {
        "type": "function",
        "name": name,
        "description": description,
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
        "strict": True,
    }


WEATHER = _city_tool("get_weather", "Weather for a city.")
"""A strict one-argument tool, as an SDK user would declare it."""
TIME = _city_tool("get_time", "Local time in a city.")
"""A second tool of the same shape, for parallel calls."""
