"""`/v1/conversations` through the official SDK, and responses that use a conversation."""

from __future__ import annotations

import httpx
import openai
import pytest
from openai import OpenAI

from tests.builders import WEATHER
from tests.livesrv import LiveServer


@pytest.fixture
def live_server(each_backend_server: LiveServer) -> LiveServer:
    """These endpoint tests run against both stores, SQLite and PostgreSQL."""
    return each_backend_server


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def test_conversation_crud_round_trips_through_the_sdk(client: OpenAI) -> None:
    conv = client.conversations.create(
        items=[user("first"), user("second")], metadata={"topic": "demo"}
    )
    assert conv.id.startswith("conv_")
    assert conv.object == "conversation"
    assert conv.metadata == {"topic": "demo"}

    assert client.conversations.retrieve(conv.id).model_dump() == conv.model_dump()
    updated = client.conversations.update(conv.id, metadata={"topic": "changed"})
    assert updated.metadata == {"topic": "changed"}

    deleted = client.conversations.delete(conv.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (conv.id, "conversation.deleted", True)
    with pytest.raises(openai.NotFoundError):
        client.conversations.retrieve(conv.id)
    with pytest.raises(openai.NotFoundError):
        client.conversations.items.list(conv.id)


def test_conversation_items_are_created_listed_retrieved_and_deleted(client: OpenAI) -> None:
    conv = client.conversations.create()
    created = client.conversations.items.create(conv.id, items=[user(f"m{i}") for i in range(5)])
    ids = [item.id for item in created.data]
    assert len(set(ids)) == 5
    assert all(item.status == "completed" for item in created.data)  # type: ignore[union-attr]  # the SDK's item union; the test knows which member this is

    newest_first = list(client.conversations.items.list(conv.id, limit=2))
    assert [item.id for item in newest_first] == ids[::-1]
    oldest_first = client.conversations.items.list(conv.id, order="asc", limit=3)
    assert [item.id for item in oldest_first.data] == ids[:3]
    assert oldest_first.has_more is True

    item = client.conversations.items.retrieve(ids[2], conversation_id=conv.id)
    assert item.content[0].text == "m2"  # type: ignore[union-attr]  # the SDK's item union; the test knows which member this is

    after_delete = client.conversations.items.delete(ids[2], conversation_id=conv.id)
    assert after_delete.id == conv.id
    assert after_delete.object == "conversation"
    assert [i.id for i in client.conversations.items.list(conv.id, order="asc")] == ids[:2] + ids[
        3:
    ]
    with pytest.raises(openai.NotFoundError):
        client.conversations.items.retrieve(ids[2], conversation_id=conv.id)


def test_more_than_twenty_initial_items_are_rejected(live_server: LiveServer) -> None:
    resp = httpx.post(f"{live_server.base_url}/conversations", json={"items": [user("x")] * 21})
    assert resp.status_code == 400
    assert resp.json()["error"]["param"] == "items"


def test_unknown_conversation_ids_are_404_everywhere(live_server: LiveServer) -> None:
    base = live_server.base_url
    for method, path in [
        ("GET", "/conversations/conv_nope"),
        ("POST", "/conversations/conv_nope"),
        ("DELETE", "/conversations/conv_nope"),
        ("GET", "/conversations/conv_nope/items"),
        ("GET", "/conversations/conv_nope/items/msg_1"),
        ("DELETE", "/conversations/conv_nope/items/msg_1"),
    ]:
        kwargs = {"json": {"metadata": {}}} if method == "POST" else {}
        resp = httpx.request(method, base + path, **kwargs)
        assert resp.status_code == 404, (method, path)
        assert resp.json()["error"]["message"] == "Conversation with id 'conv_nope' not found."
    resp = httpx.post(
        f"{base}/responses", json={"model": "echo", "input": "hi", "conversation": "conv_nope"}
    )
    assert resp.status_code == 404


@pytest.mark.parametrize("form", ["string", "object"])
def test_a_response_on_a_conversation_sees_its_items_and_appends_its_turn(
    live_server: LiveServer, form: str
) -> None:
    client: OpenAI = live_server.openai()
    conv = client.conversations.create(items=[user("earlier")])
    conversation = conv.id if form == "string" else {"id": conv.id}
    assert live_server.scripted is not None
    response = client.responses.create(model="scripted", input="now", conversation=conversation)
    assert response.conversation is not None
    assert response.conversation.id == conv.id

    [request] = live_server.scripted.requests
    assert [part["text"] for item in request.items for part in item["content"]] == [
        "earlier",
        "now",
    ]

    items = list(client.conversations.items.list(conv.id, order="asc"))
    assert [(i.type, getattr(i, "role", None)) for i in items] == [
        ("message", "user"),
        ("message", "user"),
        ("message", "assistant"),
    ]
    assert items[2].id == response.output[0].id


def test_a_tool_loop_on_a_conversation_stores_call_output_and_answer_in_order(
    client: OpenAI,
) -> None:
    conv = client.conversations.create()
    first = client.responses.create(
        model="echo", input='get_weather {"city": "Oslo"}', tools=[WEATHER], conversation=conv.id
    )
    [call] = first.output
    assert call.type == "function_call"
    second = client.responses.create(
        model="echo",
        conversation=conv.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
        tools=[WEATHER],
    )
    assert "sunny" in second.output_text
    kinds = [item.type for item in client.conversations.items.list(conv.id, order="asc")]
    assert kinds == ["message", "function_call", "function_call_output", "message"]


def test_a_conversation_with_an_unanswered_call_rejects_a_new_message(client: OpenAI) -> None:
    conv = client.conversations.create()
    first = client.responses.create(
        model="echo", input="get_weather", tools=[WEATHER], conversation=conv.id
    )
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model="echo", input="hello?", conversation=conv.id)
    assert info.value.message.endswith(
        f"No tool output found for function call {first.output[0].call_id}."
    )  # type: ignore[union-attr]  # the SDK's item union; the test knows which member this is


def test_a_failed_response_appends_nothing_to_the_conversation(
    live_server: LiveServer, client: OpenAI
) -> None:
    from turnstream.engine.deltas import OutputTextDelta
    from turnstream.providers.base import ProviderError
    from turnstream.providers.scripted import Raise

    conv = client.conversations.create(items=[user("keep me")])
    assert live_server.scripted is not None
    live_server.scripted.push([OutputTextDelta("half"), Raise(ProviderError("boom"))])
    failed = client.responses.create(model="scripted", input="doomed", conversation=conv.id)
    assert failed.status == "failed"
    assert [i.content[0].text for i in client.conversations.items.list(conv.id)] == ["keep me"]  # type: ignore[union-attr]  # the SDK's item union; the test knows which member this is
    # and the lock was released: the next turn goes through
    assert (
        client.responses.create(model="echo", input="next", conversation=conv.id).output_text
        == "next"
    )


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"items": [{"type": "message", "role": "wizard", "content": "hi"}]}, "items[0].role"),
        ({"items": [{"type": "no_such_item"}]}, "items[0]"),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
        ({"metadata": {"k": "v" * 513}}, "metadata"),
        ({"itemz": []}, "itemz"),
    ],
)
def test_invalid_conversation_bodies_are_400s_and_store_nothing(
    live_server: LiveServer, body: dict[str, object], param: str
) -> None:
    resp = httpx.post(f"{live_server.base_url}/conversations", json=body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["param"] == param


def test_invalid_items_are_refused_without_touching_the_conversation(
    live_server: LiveServer, client: OpenAI
) -> None:
    conv = client.conversations.create(items=[user("keep")])
    resp = httpx.post(
        f"{live_server.base_url}/conversations/{conv.id}/items", json={"items": [{"role": "user"}]}
    )
    assert resp.status_code == 400
    assert [i.content[0].text for i in client.conversations.items.list(conv.id)] == ["keep"]  # type: ignore[union-attr]  # the SDK's item union; the test knows which member this is
    malformed = httpx.post(
        f"{live_server.base_url}/conversations/{conv.id}/items",
        content=b"{nope",
        headers={"content-type": "application/json"},
    )
    assert malformed.status_code == 400
    assert malformed.json()["error"]["message"].startswith("We could not parse the JSON body")
