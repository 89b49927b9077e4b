"""`stored_item`: the one rule that gives stored items an id and a status."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from turnstream.protocol import stored_item, stored_items

ITEM_TYPES = ["message", "function_call", "function_call_output", "reasoning", "custom_thing"]


@pytest.mark.parametrize(
    ("item", "prefix"),
    [
        ({"type": "message", "role": "user", "content": []}, "msg_"),
        ({"role": "user", "content": "hi"}, "msg_"),  # an easy message has no type
        ({"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"}, "fc_"),
        ({"type": "function_call_output", "call_id": "c", "output": "4"}, "fco_"),
        ({"type": "reasoning", "summary": []}, "rs_"),
        ({"type": "mcp_call"}, "item_"),
    ],
)
def test_a_missing_id_is_assigned_with_the_prefix_of_the_item_type(
    item: dict[str, Any], prefix: str
) -> None:
    stored = stored_item(item)
    assert stored["id"].startswith(prefix)
    assert stored["status"] == "completed"


def test_an_empty_id_or_none_status_counts_as_missing_and_the_argument_is_untouched() -> None:
    item = {"type": "function_call", "id": "", "status": None}
    stored = stored_item(item)
    assert stored["id"].startswith("fc_")
    assert stored["status"] == "completed"
    assert item == {"type": "function_call", "id": "", "status": None}


def test_ids_and_statuses_already_there_are_kept() -> None:
    item = {"type": "message", "id": "msg_given", "status": "incomplete"}
    assert stored_item(item) == item


def test_fresh_ids_differ() -> None:
    items = stored_items([{"type": "message"}] * 50)
    assert len({item["id"] for item in items}) == 50


@given(
    st.lists(
        st.fixed_dictionaries(
            {"type": st.sampled_from(ITEM_TYPES)},
            optional={
                "id": st.one_of(st.just(""), st.none(), st.text(min_size=1, max_size=8)),
                "status": st.one_of(st.none(), st.sampled_from(["completed", "incomplete"])),
            },
        ),
        max_size=8,
    )
)
def test_storing_twice_changes_nothing(items: list[dict[str, Any]]) -> None:
    once = stored_items(items)
    assert stored_items(once) == once
    assert all(item["id"] and item["status"] for item in once)
