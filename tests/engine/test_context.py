"""Context assembly for chains and conversations."""

from __future__ import annotations

from typing import Any

import pytest

from turnstream.engine import assemble_chain, assemble_conversation, resolve_references
from turnstream.protocol import APIError


def _msg(role: str, text: str, item_id: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "type": "message",
        "role": role,
        "content": [{"type": "input_text" if role != "assistant" else "output_text", "text": text}],
    }
    if item_id:
        item["id"] = item_id
    return item


def test_a_chain_gives_each_earlier_input_then_its_output_then_the_new_input() -> None:
    first_in, first_out = [_msg("user", "q1")], [_msg("assistant", "a1", "msg_1")]
    second_in, second_out = [_msg("user", "q2")], [_msg("assistant", "a2", "msg_2")]
    new = [_msg("user", "q3")]
    context = assemble_chain([(first_in, first_out), (second_in, second_out)], new)
    assert context == [*first_in, *first_out, *second_in, *second_out, *new]


def test_an_empty_chain_is_just_the_new_input() -> None:
    new = [_msg("user", "hi")]
    assert assemble_chain([], new) == new


def test_a_conversation_gives_its_items_then_the_new_input() -> None:
    items = [_msg("user", "q1", "msg_a"), _msg("assistant", "a1", "msg_b")]
    new = [_msg("user", "q2")]
    assert assemble_conversation(items, new) == [*items, *new]


def test_an_item_reference_is_replaced_by_the_looked_up_item() -> None:
    stored = _msg("user", "remembered", "msg_9")
    context = assemble_chain(
        [], [{"type": "item_reference", "id": "msg_9"}], lookup={"msg_9": stored}.get
    )
    assert context == [stored]


def test_an_item_reference_resolves_against_earlier_items_without_a_lookup() -> None:
    earlier = _msg("user", "x", "msg_1")
    context = assemble_conversation([earlier], [{"type": "item_reference", "id": "msg_1"}])
    assert context == [earlier, earlier]


def test_an_unknown_item_reference_is_a_400_on_input() -> None:
    with pytest.raises(APIError) as info:
        resolve_references([{"type": "item_reference", "id": "msg_404"}], lambda _id: None)
    assert (info.value.status, info.value.param) == (400, "input")
    assert "msg_404" in info.value.message


def test_a_context_without_references_is_returned_as_is() -> None:
    items = [_msg("user", "x")]
    assert resolve_references(items) is items
