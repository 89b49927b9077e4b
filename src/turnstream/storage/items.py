"""Item ids and statuses for stored items (pure; no I/O).

Stored items always carry an `id` and a `status` (protocol.md §4). Where a caller
hands over an item without them, the store fills them in here, with an id prefix
that says what kind of item it is, as OpenAI's ids do.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import Any

__all__ = ["ID_PREFIXES", "new_item_id", "stored_item", "stored_items"]

JSON = dict[str, Any]

ID_PREFIXES: dict[str, str] = {
    "message": "msg",
    "function_call": "fc",
    "function_call_output": "fco",
    "reasoning": "rs",
}


def _item_type(item: JSON) -> str | None:
    kind = item.get("type")
    if kind is None and "role" in item:
        # An "easy" input message ({"role": ..., "content": ...}) has no `type`.
        return "message"
    return kind if isinstance(kind, str) else None


def new_item_id(item_type: str | None) -> str:
    """A fresh id such as `msg_<32 hex>`; the prefix follows the item type."""
    prefix = ID_PREFIXES.get(item_type or "", "item")
    return f"{prefix}_{secrets.token_hex(16)}"


def stored_item(item: JSON) -> JSON:
    """A copy of `item` with an `id` and a `status` (`completed`) where it had none."""
    result = dict(item)
    if not result.get("id"):
        result["id"] = new_item_id(_item_type(item))
    if result.get("status") is None:
        result["status"] = "completed"
    return result


def stored_items(items: Iterable[JSON]) -> list[JSON]:
    return [stored_item(item) for item in items]
