"""Background responses across replicas: two servers on one database, in threads.

Each replica is a full app with its own store (its own owner, pool and LISTEN
connection), so what one replica learns of another's run comes through the
database only, as between processes. The three-process acceptance tests are in
`test_replicas.py`; these pin the same behaviours quickly, on both backends.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI

from tests.databases import BACKENDS, fresh_database_url
from tests.livesrv import LiveServer, running_server
from turnstream.storage import ResponseRecord

Pair = tuple[LiveServer, LiveServer]


@pytest.fixture(params=BACKENDS)
def replicas(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Pair]:
    with (
        fresh_database_url(request.param, tmp_path) as url,
        running_server(tmp_path / "a.db", db_url=url) as a,
        running_server(tmp_path / "b.db", db_url=url) as b,
    ):
        yield a, b


def client(live: LiveServer) -> OpenAI:
    made = OpenAI(base_url=live.base_url, api_key="test", max_retries=0)
    live.clients.append(made)
    return made


def words(n: int) -> str:
    return " ".join(f"w{i}" for i in range(n))


def wait_for_events(live: LiveServer, response_id: str, count: int) -> None:
    deadline = time.monotonic() + 15
    while len(live.call(live.state.store.list_events(response_id, after=None))) < count:
        assert time.monotonic() < deadline, "the run stored no events"
        time.sleep(0.02)


def test_a_run_on_one_replica_is_in_progress_on_both_and_another_replica_cancels_it(
    replicas: Pair,
) -> None:
    a, b = replicas
    conversation = client(a).conversations.create()
    created = client(a).responses.create(
        # 6,000 words at 20 ms each: two minutes of run for the cancel to cut short
        model="echo-slow",
        input=words(6000),
        background=True,
        conversation=conversation.id,
    )
    wait_for_events(a, created.id, 5)
    assert client(a).responses.retrieve(created.id).status == "in_progress"
    assert client(b).responses.retrieve(created.id).status == "in_progress"
    assert created.id in a.state.runs
    assert created.id not in b.state.runs

    began = time.monotonic()
    cancelled = client(b).responses.cancel(created.id)
    # the run has minutes of words left: the cancel reached it rather than waiting
    # for its end (a ceiling far from both, not a speed claim)
    assert time.monotonic() - began < 30.0
    assert cancelled.status == "cancelled"
    assert client(a).responses.retrieve(created.id).status == "cancelled"
    # the run let go of the conversation where it ran: B can take the next turn
    follow = client(b).responses.create(model="echo", input="next", conversation=conversation.id)
    assert follow.status == "completed"


def test_a_follower_on_another_replica_follows_the_live_run_to_its_end(replicas: Pair) -> None:
    a, b = replicas
    created = client(a).responses.create(model="echo-slow", input=words(60), background=True)
    wait_for_events(a, created.id, 5)
    resumed = list(client(b).responses.retrieve(created.id, stream=True, starting_after=3))
    assert [e.sequence_number for e in resumed] == list(range(4, 4 + len(resumed)))
    assert resumed[-1].type == "response.completed"
    assert resumed[-1].response.output_text == words(60)


def test_a_follower_of_a_response_failed_by_the_sweep_gets_response_failed(
    replicas: Pair,
) -> None:
    a, b = replicas
    # a run whose replica died: a record and a few events, and nobody running it
    source = client(a).responses.create(model="echo", input="from the log", background=True)
    deadline = time.monotonic() + 10
    while client(a).responses.retrieve(source.id).status != "completed":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    log = a.call(a.state.store.list_events(source.id, after=None))
    body: dict[str, Any] = httpx.get(f"{a.base_url}/responses/{source.id}").json()
    body.update(id="resp_orphan", status="in_progress", output=[], completed_at=None, usage=None)
    store = a.state.store
    a.call(
        store.insert_response(
            ResponseRecord(id="resp_orphan", response=body, status="in_progress", background=True)
        )
    )
    a.call(store.append_events("resp_orphan", log[:3]))

    with httpx.stream(
        "GET", f"{b.base_url}/responses/resp_orphan", params={"stream": "true"}, timeout=15
    ) as stream:
        lines = stream.iter_lines()
        seen = 0
        for line in lines:
            seen += line.startswith("data: ")
            if seen == 3:
                break
        # what the stale-response sweep does once the dead replica's lease lapses
        failed = {**body, "status": "failed", "error": {"code": "server_error", "message": "x"}}
        a.call(store.update_response("resp_orphan", failed))
        events = [json.loads(line[6:]) for line in lines if line.startswith("data: ")]
    assert [e["type"] for e in events] == ["response.failed"]
    assert events[0]["sequence_number"] == 3
    assert events[0]["response"]["status"] == "failed"


def test_resuming_a_stream_after_its_events_expired_is_a_400(tmp_path: Path) -> None:
    import asyncio

    import sqlalchemy as sa

    from tests.databases import run_sync_on
    from turnstream.storage.schema import responses

    def ended_at(response_id: str, when: float) -> Any:
        # the response's age is set in the database, not waited for: no test here
        # depends on how fast a loaded machine gets from one line to the next
        def change(conn: Any) -> None:
            conn.execute(
                sa.update(responses).where(responses.c.id == response_id).values(updated_at=when)
            )

        return asyncio.run(run_sync_on(f"sqlite:///{tmp_path / 't.db'}", change))

    # a short time to live, so the server's sweep runs every half second
    with running_server(tmp_path / "t.db", event_ttl=2) as live:
        created = client(live).responses.create(model="echo", input="soon gone", background=True)
        deadline = time.monotonic() + 30
        while client(live).responses.retrieve(created.id).status != "completed":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        # younger than its time to live however long the steps below take
        ended_at(created.id, time.time() + 3600)
        fresh = list(client(live).responses.retrieve(created.id, stream=True, starting_after=0))
        assert fresh[-1].type == "response.completed"
        ended_at(created.id, time.time() - 3600)
        resp = httpx.get(
            f"{live.base_url}/responses/{created.id}", params={"stream": "true"}, timeout=30
        )
        assert resp.status_code == 400
        error = resp.json()["error"]
        assert error["type"] == "invalid_request_error"
        assert error["code"] == "stream_expired"
        assert error["param"] == "stream"
        # the response itself stays retrievable
        assert client(live).responses.retrieve(created.id).status == "completed"
        # and the server's sweep deletes the expired log
        deadline = time.monotonic() + 30
        while live.call(live.state.store.list_events(created.id, after=None)):
            assert time.monotonic() < deadline, "the expiry sweep never ran"
            time.sleep(0.05)


def test_a_run_that_lost_its_lease_is_failed_not_announced_completed(tmp_path: Path) -> None:
    import sqlalchemy as sa

    from tests.databases import run_sync_on
    from turnstream.engine.deltas import FinishDelta, ItemEndDelta, OutputTextDelta
    from turnstream.storage.schema import conversation_locks

    db_url = f"sqlite:///{tmp_path / 't.db'}"

    def lapse(conn: Any) -> None:
        conn.execute(sa.delete(conversation_locks))

    async def lose_the_lease(request: Any) -> None:
        # what a heartbeat stalled past the lease time looks like from the database:
        # the row is gone (expired, maybe taken over) while the turn still runs
        await run_sync_on(db_url, lapse)

    with running_server(tmp_path / "t.db") as live:
        assert live.scripted is not None
        live.scripted.push(
            [OutputTextDelta(text="half "), lose_the_lease, ItemEndDelta(), FinishDelta("stop")]
        )
        conversation = client(live).conversations.create()
        with client(live).responses.create(
            model="scripted", input="hi", conversation=conversation.id, stream=True
        ) as stream:
            events = list(stream)
        assert events[-1].type == "response.failed"
        assert events[-1].response.status == "failed"
        stored = client(live).responses.retrieve(events[-1].response.id)
        assert stored.status == "failed"
        # the turn was not added: nothing to build on that the conversation lacks
        assert client(live).conversations.items.list(conversation.id).data == []
