"""Checks over an assembled context before it reaches a model (`protocol.md` §5.3-5.4).

- Every `function_call_output` answers a `function_call` earlier in the context
  (and every `custom_tool_call_output` a `custom_tool_call`).
- Every call has an output somewhere in the context.
- No item id appears twice (re-sending an item already in the chain).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from turnstream.protocol.errors import duplicate_item, missing_tool_output, orphan_tool_output

__all__ = ["check_duplicate_ids", "check_tool_pairing", "validate_context"]

# A custom tool's call is answered by a `custom_tool_call_output`; namespaced
# functions are ordinary `function_call`s, so they pair by `call_id` like any other.
_CALLS = frozenset({"function_call", "custom_tool_call"})
_OUTPUTS = frozenset({"function_call_output", "custom_tool_call_output"})


def check_tool_pairing(context: Sequence[Mapping[str, Any]]) -> None:
    """Check that calls and outputs pair up by `call_id`.

    Raises:
        APIError: 400 "No tool call found for function call output with call_id …"
            for the first output without an earlier call; otherwise 400 "No tool
            output found for function call …" naming the first call without one.
    """
    calls: dict[str, bool] = {}  # call_id -> answered, in order of appearance
    for item in context:
        kind = item.get("type")
        if kind in _CALLS:
            calls.setdefault(str(item.get("call_id")), False)
        elif kind in _OUTPUTS:
            call_id = str(item.get("call_id"))
            if call_id not in calls:
                raise orphan_tool_output(call_id)
            calls[call_id] = True
    for call_id, answered in calls.items():
        if not answered:
            raise missing_tool_output(call_id)


def check_duplicate_ids(context: Sequence[Mapping[str, Any]]) -> None:
    """Check that no item id occurs twice.

    Raises:
        APIError: 400 "Duplicate item found with id …" for the first repeated id.
    """
    seen: set[str] = set()
    for item in context:
        item_id = item.get("id")
        if item_id is None or item.get("type") == "item_reference":
            continue
        if item_id in seen:
            raise duplicate_item(str(item_id))
        seen.add(item_id)


def validate_context(context: Sequence[Mapping[str, Any]]) -> None:
    """Run every check: duplicate ids first, then tool pairing."""
    check_duplicate_ids(context)
    check_tool_pairing(context)
