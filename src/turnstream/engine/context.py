"""Context assembly: what the model sees for a new response.

- Chain (`previous_response_id`): each earlier response's input items then its
  output items, oldest first, then the new input. `instructions` are never carried
  over: they belong to one request and are not items.
- Conversation: the conversation's items in order, then the new input.

Items are canonical wire dicts (`protocol.normalize_input`). `item_reference` items
are replaced by the referenced item when a lookup is given. Items are not copied.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from turnstream.protocol.errors import item_not_found

__all__ = [
    "ItemLookup",
    "ItemT",
    "Turn",
    "assemble_chain",
    "assemble_conversation",
    "resolve_references",
]

ItemT = TypeVar("ItemT", bound=Mapping[str, Any])
Turn = tuple[Sequence[ItemT], Sequence[ItemT]]
"""One earlier response of a chain: `(input_items, output_items)`."""
ItemLookup = Callable[[str], ItemT | None]
"""Finds a stored item by id, or returns `None`."""


def assemble_chain(
    chain: Iterable[Turn[ItemT]],
    new_input: Sequence[ItemT],
    *,
    lookup: ItemLookup[ItemT] | None = None,
) -> list[ItemT]:
    """The context of a `previous_response_id` request.

    Args:
        chain: The earlier responses, oldest first, each as `(input, output)`.
        new_input: The new request's normalized input.
        lookup: Resolves `item_reference` ids that are not in the context itself.

    Raises:
        APIError: 400 when an `item_reference` names no known item.
    """
    context: list[ItemT] = []
    for input_items, output_items in chain:
        context.extend(input_items)
        context.extend(output_items)
    context.extend(new_input)
    return resolve_references(context, lookup)


def assemble_conversation(
    conversation_items: Sequence[ItemT],
    new_input: Sequence[ItemT],
    *,
    lookup: ItemLookup[ItemT] | None = None,
) -> list[ItemT]:
    """The context of a `conversation` request: its items, then the new input."""
    return resolve_references([*conversation_items, *new_input], lookup)


def resolve_references(
    items: Sequence[ItemT], lookup: ItemLookup[ItemT] | None = None
) -> list[ItemT]:
    """Replace each `item_reference` by the item it names.

    An id is looked up first among the items before the reference, then with
    `lookup`. Returns `items` itself when it is a list holding no reference.

    Raises:
        APIError: 400 (`param="input"`) naming the first unknown id.
    """
    if not any(item.get("type") == "item_reference" for item in items):
        return items if isinstance(items, list) else list(items)
    known: dict[str, ItemT] = {}
    resolved: list[ItemT] = []
    for item in items:
        if item.get("type") == "item_reference":
            item_id = str(item.get("id"))
            found = known.get(item_id)
            if found is None and lookup is not None:
                found = lookup(item_id)
            if found is None:
                raise item_not_found(item_id, status=400, param="input")
            item = found
        own_id = item.get("id")
        if isinstance(own_id, str):
            known[own_id] = item
        resolved.append(item)
    return resolved
