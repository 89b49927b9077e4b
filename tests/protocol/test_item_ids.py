"""Item id assignment (pure)."""

from __future__ import annotations

from turnstream.protocol.ids import new_item_id, stored_item


def test_stored_item_does_not_modify_its_argument() -> None:
    item = {"role": "user", "content": "hi"}
    stored = stored_item(item)
    assert item == {"role": "user", "content": "hi"}
    assert stored["id"].startswith("msg_")


def test_empty_or_null_ids_and_statuses_are_filled_in() -> None:
    stored = stored_item({"type": "function_call", "id": "", "status": None})
    assert stored["id"].startswith("fc_")
    assert stored["status"] == "completed"


def test_unknown_item_types_get_the_generic_prefix() -> None:
    assert new_item_id(None).startswith("item_")
    assert new_item_id("mcp_call").startswith("item_")
