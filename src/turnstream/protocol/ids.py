"""Opaque wire ids: a short prefix naming the object, then 48 random hex characters.

Clients treat ids as opaque; the prefixes only make logs readable and follow what
OpenAI sends (`resp_`, `msg_`, `fc_`, `call_`, `rs_`, `conv_`). `fco_` (stored
`function_call_output` items) and `item_` (anything else) are our own choice.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any, Final

__all__ = [
    "ID_PREFIXES",
    "ITEM_ID_PREFIXES",
    "new_id",
    "new_item_id",
    "stored_item",
    "stored_items",
]

ID_PREFIXES: Final = frozenset({"resp", "msg", "fc", "call", "rs", "conv", "fco", "item", "cmp"})
"""The prefixes `new_id` accepts."""

_RANDOM_BYTES: Final = 24


def new_id(prefix: str) -> str:
    """A fresh id such as `resp_0f3a…` (prefix, underscore, 48 hex characters).

    Args:
        prefix: One of `ID_PREFIXES` (`"resp"`, `"msg"`, `"fc"`, `"call"`, ...).

    Raises:
        ValueError: The prefix is not a known one (a typo would otherwise leak to
            the wire).
    """
    if prefix not in ID_PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}; expected one of {sorted(ID_PREFIXES)}")
    # os.urandom is a CSPRNG and cheaper than secrets.token_hex's extra call layers.
    return f"{prefix}_{os.urandom(_RANDOM_BYTES).hex()}"


ITEM_ID_PREFIXES: Final[Mapping[str, str]] = {
    "message": "msg",
    "function_call": "fc",
    "function_call_output": "fco",
    "reasoning": "rs",
    "compaction": "cmp",
}
"""The id prefix of each item type; any other type gets `item_`."""


def _item_type(item: Mapping[str, Any]) -> str | None:
    kind = item.get("type")
    if kind is None and "role" in item:
        # an "easy" input message ({"role": ..., "content": ...}) has no `type`
        return "message"
    return kind if isinstance(kind, str) else None


def new_item_id(item_type: str | None) -> str:
    """A fresh item id such as `msg_…`; the prefix follows the item type."""
    return new_id(ITEM_ID_PREFIXES.get(item_type or "", "item"))


def stored_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `item` as it is stored: with an `id` and a `status`.

    The one rule for every stored item (OpenAI's stored items always carry both):
    an id that is missing or empty is assigned (prefix by item type), a status that
    is missing or `None` becomes `"completed"`. Ids and statuses already there are
    kept, so applying it twice changes nothing.
    """
    result = dict(item)
    if not result.get("id"):
        result["id"] = new_item_id(_item_type(item))
    if result.get("status") is None:
        result["status"] = "completed"
    return result


def stored_items(items: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """`stored_item` applied to each of `items`."""
    return [stored_item(item) for item in items]
