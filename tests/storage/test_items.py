"""Item pagination (conversation items and response input items) and item ids."""

from __future__ import annotations

from typing import Any

import pytest

from turnstream.storage import ItemPage, ResponseRecord
from turnstream.storage.base import Order
from turnstream.storage.sql import SQLStore


def user_message(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


async def all_pages(
    store: SQLStore, kind: str, owner_id: str, *, limit: int, order: Order
) -> list[ItemPage]:
    pages: list[ItemPage] = []
    after: str | None = None
    while True:
        if kind == "conversation":
            page = await store.list_items(owner_id, after=after, limit=limit, order=order)
        else:
            page = await store.list_input_items(owner_id, after=after, limit=limit, order=order)
        pages.append(page)
        if not page.has_more:
            return pages
        after = page.data[-1]["id"]


@pytest.fixture
async def seven_items(store: SQLStore) -> list[str]:
    items = [user_message(str(i)) for i in range(7)]
    await store.create_conversation("conv_1", metadata={}, items=items, created_at=0)
    await store.insert_response(
        ResponseRecord(id="resp_1", response={"id": "resp_1"}, input_items=items)
    )
    return [item["content"][0]["text"] for item in items]


@pytest.mark.parametrize("kind", ["conversation", "input_items"])
@pytest.mark.parametrize("order", ["asc", "desc"])
@pytest.mark.parametrize("limit", [1, 2, 3, 7, 100])
async def test_paging_with_after_visits_every_item_once_in_order(
    store: SQLStore, seven_items: list[str], kind: str, order: Order, limit: int
) -> None:
    pages = await all_pages(
        store, kind, "conv_1" if kind == "conversation" else "resp_1", limit=limit, order=order
    )

    texts = [item["content"][0]["text"] for page in pages for item in page.data]
    expected = seven_items if order == "asc" else seven_items[::-1]
    assert texts == expected
    assert all(len(page.data) == limit for page in pages[:-1])
    assert [page.has_more for page in pages] == [True] * (len(pages) - 1) + [False]


async def test_has_more_is_false_when_the_page_ends_exactly_at_the_last_item(
    store: SQLStore, seven_items: list[str]
) -> None:
    page = await store.list_items("conv_1", after=None, limit=7, order="asc")
    assert len(page.data) == 7
    assert page.has_more is False


async def test_after_the_last_item_is_an_empty_page(
    store: SQLStore, seven_items: list[str]
) -> None:
    newest = (await store.list_items("conv_1", after=None, limit=1, order="desc")).data[0]
    page = await store.list_items("conv_1", after=newest["id"], limit=5, order="asc")
    assert page == ItemPage(data=[], has_more=False)


async def test_an_unknown_after_cursor_gives_an_empty_page(
    store: SQLStore, seven_items: list[str]
) -> None:
    assert (await store.list_items("conv_1", after="msg_nope", limit=5, order="asc")).data == []
    assert (
        await store.list_input_items("resp_1", after="msg_nope", limit=5, order="desc")
    ).data == []


@pytest.mark.parametrize("limit", [0, 101, -1])
async def test_limits_outside_1_to_100_are_rejected(
    store: SQLStore, seven_items: list[str], limit: int
) -> None:
    with pytest.raises(ValueError, match="limit"):
        await store.list_items("conv_1", after=None, limit=limit, order="asc")
    with pytest.raises(ValueError, match="limit"):
        await store.list_input_items("resp_1", after=None, limit=limit, order="asc")


async def test_an_unknown_order_is_rejected(store: SQLStore, seven_items: list[str]) -> None:
    with pytest.raises(ValueError, match="order"):
        await store.list_items("conv_1", after=None, limit=5, order="sideways")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("item", "prefix"),
    [
        ({"type": "message", "role": "user", "content": "hi"}, "msg_"),
        ({"role": "user", "content": "hi"}, "msg_"),
        ({"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"}, "fc_"),
        ({"type": "function_call_output", "call_id": "call_1", "output": "ok"}, "fco_"),
        ({"type": "reasoning", "summary": []}, "rs_"),
        ({"type": "web_search_call"}, "item_"),
    ],
)
async def test_stored_items_get_a_typed_id_and_completed_status(
    store: SQLStore, item: dict[str, Any], prefix: str
) -> None:
    await store.create_conversation("conv_1", metadata={}, items=[], created_at=0)

    [added] = await store.add_items("conv_1", [item])

    assert added["id"].startswith(prefix)
    assert len(added["id"]) == len(prefix) + 48
    assert added["status"] == "completed"
    assert {k: v for k, v in added.items() if k not in ("id", "status")} == item
    assert await store.get_item("conv_1", added["id"]) == added


async def test_given_ids_and_statuses_are_kept(store: SQLStore) -> None:
    await store.create_conversation("conv_1", metadata={}, items=[], created_at=0)
    item = {
        "type": "message",
        "id": "msg_given",
        "status": "incomplete",
        "role": "assistant",
        "content": [],
    }

    [added] = await store.add_items("conv_1", [item])

    assert added == item


async def test_assigned_ids_are_unique(store: SQLStore) -> None:
    await store.create_conversation("conv_1", metadata={}, items=[], created_at=0)
    added = await store.add_items("conv_1", [user_message(str(i)) for i in range(20)])
    assert len({item["id"] for item in added}) == 20
