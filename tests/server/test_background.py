"""Background mode, stream resumption and cancel (protocol.md §6), with the official SDK."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from openai import OpenAI

from tests.livesrv import LiveServer
from turnstream.engine.deltas import FinishDelta, OutputTextDelta


@pytest.fixture
def live_server(each_backend_server: LiveServer) -> LiveServer:
    """These endpoint tests run against both stores, SQLite and PostgreSQL."""
    return each_backend_server


TERMINAL = {"response.completed", "response.incomplete", "response.failed"}


def wait_until_over(client: OpenAI, response_id: str, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        response = client.responses.retrieve(response_id)
        if response.status not in ("queued", "in_progress"):
            return response
        assert time.monotonic() < deadline, f"{response_id} still {response.status}"
        time.sleep(0.05)


def words(n: int) -> str:
    return " ".join(f"w{i}" for i in range(n))


def stored_events(live: LiveServer, response_id: str) -> list[dict[str, Any]]:
    rows = live.call(live.state.store.list_events(response_id, after=None))
    return [json.loads(data) for _, data in rows]


def test_background_without_stream_answers_at_once_and_polling_completes(
    live_server: LiveServer, client: OpenAI
) -> None:
    # the run cannot finish before the test has the answer to the create
    assert live_server.scripted is not None
    gate = live_server.gate()
    live_server.scripted.push([gate, OutputTextDelta(words(10)), FinishDelta()])
    created = client.responses.create(model="scripted", input="go", background=True)
    assert created.status in ("queued", "in_progress")
    assert created.background is True
    assert created.output == []
    gate.open()
    final = wait_until_over(client, created.id)
    assert final.status == "completed"
    assert final.output_text == words(10)
    events = stored_events(live_server, created.id)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events[:3]] == [
        "response.created",
        "response.queued",
        "response.in_progress",
    ]
    assert events[-1]["type"] == "response.completed"


def test_a_disconnected_background_stream_keeps_running_and_resumes_exactly(
    live_server: LiveServer, client: OpenAI
) -> None:
    conversation = client.conversations.create()
    received: list[Any] = []
    with client.responses.create(
        model="echo-slow",
        input=words(30),
        background=True,
        stream=True,
        conversation=conversation.id,
    ) as stream:
        for event in stream:
            received.append(event)
            if len(received) == 6:
                break
    response_id = received[0].response.id
    final = wait_until_over(client, response_id)
    assert final.status == "completed"
    assert final.output_text == words(30)
    items = client.conversations.items.list(conversation.id, order="asc").data
    assert [item.type for item in items] == ["message", "message"]

    after = received[-1].sequence_number
    resumed = list(client.responses.retrieve(response_id, stream=True, starting_after=after))
    seqs = [e.sequence_number for e in resumed]
    assert seqs == list(range(after + 1, after + 1 + len(resumed)))
    assert resumed[-1].type == "response.completed"
    everything = [*received, *resumed]
    assert [e.model_dump(mode="json", exclude_unset=True) for e in everything] == stored_events(
        live_server, response_id
    )
    # without starting_after: the whole stream again
    full = list(client.responses.retrieve(response_id, stream=True))
    assert [e.sequence_number for e in full] == list(range(len(everything)))


def test_resuming_a_running_background_stream_follows_it_live(
    live_server: LiveServer, client: OpenAI
) -> None:
    # the run is held after its first delta until the follower has seen that delta, so
    # what comes after can only have reached the follower live
    assert live_server.scripted is not None
    gate = live_server.gate()
    live_server.scripted.push(
        [OutputTextDelta("before "), gate, OutputTextDelta("after"), FinishDelta()]
    )
    created = client.responses.create(model="scripted", input="hi", background=True)
    resumed: list[Any] = []
    for event in client.responses.retrieve(created.id, stream=True, starting_after=2):
        resumed.append(event)
        if event.type == "response.output_text.delta" and event.delta == "before ":
            gate.open()
    assert [e.sequence_number for e in resumed] == list(range(3, 3 + len(resumed)))
    assert resumed[-1].type == "response.completed"
    assert resumed[-1].response.output_text == "before after"
    # the log has the same events, the terminal one included
    assert [e.model_dump(mode="json", exclude_unset=True) for e in resumed] == stored_events(
        live_server, created.id
    )[3:]


def test_the_stream_helper_resumes_and_gives_the_final_response(client: OpenAI) -> None:
    created = client.responses.create(model="echo-slow", input=words(20), background=True)
    seen: list[int] = []
    with client.responses.stream(response_id=created.id, starting_after=4) as stream:
        for event in stream:
            seen.append(event.sequence_number)
        final = stream.get_final_response()
    assert seen[0] == 5
    assert seen == list(range(5, 5 + len(seen)))
    assert final.status == "completed"
    assert final.output_text == words(20)


def test_cancel_ends_the_run_idempotently_and_releases_the_conversation(
    live_server: LiveServer, client: OpenAI
) -> None:
    assert live_server.scripted is not None
    never = live_server.gate()  # the run is mid-answer until the cancel ends it
    live_server.scripted.push([OutputTextDelta("partial"), never])
    conversation = client.conversations.create()
    created = client.responses.create(
        model="scripted", input="go", background=True, conversation=conversation.id
    )
    deadline = time.monotonic() + 15
    while not any(
        e["type"] == "response.output_text.delta" for e in stored_events(live_server, created.id)
    ):
        assert time.monotonic() < deadline, "the run never started"
        time.sleep(0.02)
    cancelled = client.responses.cancel(created.id)
    assert cancelled.status == "cancelled"
    again = client.responses.cancel(created.id)
    assert again.status == "cancelled"
    assert again.id == created.id
    assert client.responses.retrieve(created.id).status == "cancelled"

    resumed = list(client.responses.retrieve(created.id, stream=True, starting_after=0))
    assert resumed[-1].type == "response.incomplete"
    assert resumed[-1].response.status == "cancelled"
    assert [e.sequence_number for e in resumed] == list(range(1, 1 + len(resumed)))

    # the lock is gone: a new turn on the conversation goes through
    follow = client.responses.create(model="echo", input="next", conversation=conversation.id)
    assert follow.status == "completed"


def test_cancel_of_a_finished_background_response_returns_its_final_state(client: OpenAI) -> None:
    created = client.responses.create(model="echo", input="short one", background=True)
    final = wait_until_over(client, created.id)
    assert client.responses.cancel(created.id).status == final.status == "completed"


def test_cancel_refuses_non_background_and_unknown_responses(
    live_server: LiveServer, client: OpenAI
) -> None:
    created = client.responses.create(model="echo", input="hi")
    resp = httpx.post(f"{live_server.base_url}/responses/{created.id}/cancel")
    assert resp.status_code == 400
    assert resp.json()["error"]["message"] == (
        "Only responses created with background=true can be cancelled."
    )
    resp = httpx.post(f"{live_server.base_url}/responses/resp_nope/cancel")
    assert resp.status_code == 404
    assert resp.json()["error"]["message"] == "Response with id 'resp_nope' not found."


def test_background_requires_store(live_server: LiveServer) -> None:
    resp = httpx.post(
        f"{live_server.base_url}/responses",
        json={"model": "echo", "input": "hi", "background": True, "store": False},
    )
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "background"
    assert "store" in error["message"]


def _foreign_run(live: LiveServer, response_id: str) -> None:
    """A background response 'running in another process': a record, no run here."""
    from turnstream.storage import ResponseRecord

    created = live.openai().responses.create(model="echo", input="template", background=True)
    body = {**wait_until_over(live.openai(), created.id).model_dump(mode="json")}
    body.update(id=response_id, status="in_progress", output=[], completed_at=None, usage=None)
    live.call(
        live.state.store.insert_response(
            ResponseRecord(id=response_id, response=body, status="in_progress", background=True)
        )
    )


def test_a_run_in_another_process_is_followed_through_the_event_log(
    live_server: LiveServer, client: OpenAI
) -> None:
    source = client.responses.create(model="echo", input="from the log", background=True)
    wait_until_over(client, source.id)
    log = live_server.call(live_server.state.store.list_events(source.id, after=None))
    _foreign_run(live_server, "resp_far")
    store = live_server.state.store
    live_server.call(store.append_events("resp_far", log[:4]))

    resumed: list[Any] = []
    for event in client.responses.retrieve("resp_far", stream=True, starting_after=1):
        resumed.append(event)
        if event.sequence_number == log[3][0]:
            # the follower has everything logged so far: the rest can only reach it
            # by following the log as "the other process" appends to it
            live_server.call(store.append_events("resp_far", log[4:]))
    assert [e.sequence_number for e in resumed] == [seq for seq, _ in log[2:]]
    assert resumed[-1].type == "response.completed"
