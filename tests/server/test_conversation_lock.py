"""The conversation lock: one response per conversation, released before the
terminal event (DESIGN.md invariants 2 and 3)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import AsyncOpenAI

from tests.livesrv import LiveServer, running_server, spawn_server
from turnstream.engine.deltas import FinishDelta, OutputTextDelta
from turnstream.providers.base import GenerationRequest

ADD = {
    "type": "function",
    "name": "add",
    "description": "Add two numbers.",
    "parameters": {
        "type": "object",
        "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
        "required": ["a", "b"],
        "additionalProperties": False,
    },
    "strict": True,
}
LOCKED_BODY = {
    "message": "Another process is currently operating on this conversation. Please retry in a few seconds.",
    "type": "invalid_request_error",
    "param": "conversation",
    "code": "conversation_locked",
}


async def seed_round(client: AsyncOpenAI, conversation: str) -> str:
    """The original report's loop: the follow-up goes out from *inside* the stream
    loop, as soon as `response.completed` arrives, before the first body has ended."""
    answer = ""
    stream = await client.responses.create(
        model="echo",
        input='add {"a": 2, "b": 3}',
        tools=[ADD],
        conversation=conversation,
        stream=True,
    )
    async with stream as events:
        async for event in events:
            if event.type == "response.completed":
                calls = [item for item in event.response.output if item.type == "function_call"]
                assert calls, "the echo model calls the named tool"
                outputs = [
                    {
                        "type": "function_call_output",
                        "call_id": call.call_id,
                        "output": str(sum(json.loads(call.arguments).values())),
                    }
                    for call in calls
                ]
                follow_up = await client.responses.create(
                    model="echo", input=outputs, tools=[ADD], conversation=conversation, stream=True
                )
                async with follow_up as more:
                    async for late in more:
                        if late.type == "response.completed":
                            answer = late.response.output_text
    return answer


@pytest.mark.slow
async def test_the_seed_pattern_succeeds_200_times_in_the_default_mode(
    live_server: LiveServer,
) -> None:
    async with AsyncOpenAI(base_url=live_server.base_url, api_key="t", max_retries=0) as client:
        conversation = (await client.conversations.create()).id
        for _ in range(200):
            assert "5" in await seed_round(client, conversation)
        items = [
            item
            async for item in client.conversations.items.list(conversation, order="asc", limit=100)
        ]
    assert len(items) == 800  # user, call, output, answer per round: nothing lost or doubled


def test_the_seed_pattern_gets_conversation_locked_in_after_body_mode(tmp_path: Path) -> None:
    async def rounds(live: LiveServer) -> list[str | None]:
        codes: list[str | None] = []
        async with AsyncOpenAI(base_url=live.base_url, api_key="t", max_retries=0) as client:
            for _ in range(3):
                conversation = (await client.conversations.create()).id
                with pytest.raises(openai.BadRequestError) as info:
                    await seed_round(client, conversation)
                codes.append(info.value.code)
                assert info.value.body == LOCKED_BODY
                # OpenAI sends no retry hint; neither does the imitation
                assert "x-should-retry" not in info.value.response.headers
        return codes

    with running_server(
        tmp_path / "t.db", lock_release="after_body", lock_release_delay=1.0
    ) as live:
        assert asyncio.run(rounds(live)) == ["conversation_locked"] * 3


def _last_user_text(request: GenerationRequest) -> str:
    content = request.items[-1]["content"]
    return content if isinstance(content, str) else str(content[0]["text"])


def test_twenty_concurrent_requests_one_wins_and_only_its_items_are_stored(
    live_server: LiveServer,
) -> None:
    # The winner holds the conversation until every other request has its answer, so
    # "exactly one wins" does not depend on how fast this machine is.
    assert live_server.scripted is not None
    gate = live_server.gate()
    live_server.scripted.push(
        [lambda request: OutputTextDelta(_last_user_text(request).split()[0]), gate, FinishDelta()]
    )

    async def main() -> tuple[list[httpx.Response], list[dict[str, Any]]]:
        async with httpx.AsyncClient(base_url=live_server.base_url, timeout=30) as http:
            conversation = (await http.post("/conversations", json={})).json()["id"]
            posts = [
                asyncio.ensure_future(
                    http.post(
                        "/responses",
                        json={
                            "model": "scripted",
                            "input": f"{i} words",
                            "conversation": conversation,
                        },
                    )
                )
                for i in range(20)
            ]
            for answered, post in enumerate(asyncio.as_completed(posts), 1):
                await post
                if answered == len(posts) - 1:
                    gate.open()
            results = [post.result() for post in posts]
            items = (
                await http.get(f"/conversations/{conversation}/items", params={"order": "asc"})
            ).json()["data"]
            return results, items

    results, items = asyncio.run(main())
    winners = [r for r in results if r.status_code == 200]
    losers = [r for r in results if r.status_code != 200]
    assert len(winners) == 1
    assert all(r.status_code == 400 and r.json()["error"] == LOCKED_BODY for r in losers)
    assert all(
        r.headers["x-should-retry"] == "true" and int(r.headers["retry-after-ms"]) > 0
        for r in losers
    )
    winner = winners[0].json()
    assert [item["id"] for item in items][1:] == [winner["output"][0]["id"]]
    assert (
        items[0]["content"][0]["text"].split()[0]
        == winner["output"][0]["content"][0]["text"].split()[0]
    )
    assert len(items) == 2


def test_items_cannot_be_added_or_deleted_while_a_response_holds_the_conversation(
    live_server: LiveServer,
) -> None:
    assert live_server.scripted is not None
    gate = live_server.gate()  # the response holds the conversation until the test is done
    live_server.scripted.push([OutputTextDelta("holding"), gate, FinishDelta()])
    with httpx.Client(base_url=live_server.base_url, timeout=30) as http:
        conversation = http.post(
            "/conversations", json={"items": [{"role": "user", "content": "old"}]}
        ).json()["id"]
        old_item = http.get(f"/conversations/{conversation}/items").json()["data"][0]["id"]
        with http.stream(
            "POST",
            "/responses",
            json={
                "model": "scripted",
                "input": "hold it",
                "conversation": conversation,
                "stream": True,
            },
        ) as resp:
            lines = resp.iter_lines()
            for line in lines:
                if "output_text.delta" in line:
                    break
            add = http.post(
                f"/conversations/{conversation}/items",
                json={"items": [{"role": "user", "content": "x"}]},
            )
            delete = http.delete(f"/conversations/{conversation}/items/{old_item}")
            gate.open()
            for _ in lines:
                pass
        assert add.status_code == 400
        assert add.json()["error"] == LOCKED_BODY
        assert delete.status_code == 400
        assert delete.json()["error"] == LOCKED_BODY
        # once the response has finished, both go through
        assert (
            http.post(
                f"/conversations/{conversation}/items",
                json={"items": [{"role": "user", "content": "x"}]},
            ).status_code
            == 200
        )
        assert http.delete(f"/conversations/{conversation}/items/{old_item}").status_code == 200


def test_a_client_disconnect_mid_stream_releases_the_lock_and_leaves_no_half_turn(
    live_server: LiveServer,
) -> None:
    words = " ".join(f"w{i}" for i in range(300))
    with httpx.Client(base_url=live_server.base_url, timeout=30) as http:
        conversation = http.post(
            "/conversations", json={"items": [{"role": "user", "content": "before"}]}
        ).json()["id"]
        with http.stream(
            "POST",
            "/responses",
            json={
                "model": "echo-slow",
                "input": words,
                "conversation": conversation,
                "stream": True,
            },
        ) as resp:
            seen = 0
            for line in resp.iter_lines():
                seen += "output_text.delta" in line
                if seen == 3:
                    break
        deadline = time.monotonic() + 2
        while True:
            resp2 = http.post(
                "/responses", json={"model": "echo", "input": "after", "conversation": conversation}
            )
            if resp2.status_code == 200:
                break
            assert resp2.json()["error"]["code"] == "conversation_locked"
            assert time.monotonic() < deadline, "the lock stayed held after the client went away"
            time.sleep(0.02)
        texts = [
            i["content"][0]["text"]
            for i in http.get(
                f"/conversations/{conversation}/items", params={"order": "asc"}
            ).json()["data"]
        ]
        assert texts == ["before", "after", "after"]


def _slow_config(tmp_path: Path) -> Path:
    config = tmp_path / "models.toml"
    config.write_text(
        '[[models]]\nname = "echo-slow"\nprovider = "echo"\ndelay = 0.02\n', encoding="utf-8"
    )
    return config


async def _leave_mid_stream(response: httpx.Response) -> str:
    """Read a stream until its text has begun, then go away; the response's id."""
    response_id = ""
    async for line in response.aiter_lines():
        if line.startswith("data: ") and not response_id:
            response_id = json.loads(line.removeprefix("data: "))["response"]["id"]
        if "output_text.delta" in line:
            break
    await response.aclose()
    return response_id


def test_two_server_processes_on_one_sqlite_file_let_exactly_one_request_win(
    tmp_path: Path,
) -> None:
    db = tmp_path / "shared.db"
    config = _slow_config(tmp_path)
    servers = [spawn_server(db, config), spawn_server(db, config)]
    # Each request streams an answer far longer than the test lasts (100 s): the
    # winner holds the conversation until the test has every status, then its client
    # leaves mid-stream, as a user closing the page does. Its server must notice,
    # record the turn cancelled and let go; a server that streamed on to the vanished
    # client would hold the conversation for the whole answer.
    words = " ".join(f"w{i}" for i in range(5000))

    async def race(http: httpx.AsyncClient, conversation: str) -> tuple[list[httpx.Response], str]:
        requests = [
            http.build_request(
                "POST",
                f"{servers[i % 2].base_url}/responses",
                json={
                    "model": "echo-slow",
                    "input": f"{i} {words}",
                    "conversation": conversation,
                    "stream": True,
                },
            )
            for i in range(10)
        ]
        responses = await asyncio.gather(*(http.send(r, stream=True) for r in requests))
        winner_id = ""
        for response in responses:
            if response.status_code == 200:
                winner_id = await _leave_mid_stream(response)
            else:
                await response.aread()
        return list(responses), winner_id

    async def answer_when_free(http: httpx.AsyncClient, base_url: str, conversation: str) -> None:
        body = {"model": "echo", "input": "after", "conversation": conversation}
        # a hang limit, not a speed target: the winner's server lets go once it has
        # seen the disconnect and recorded the turn cancelled, which may take seconds
        # on a loaded machine; the answer it would otherwise stream on runs 100 s
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            response = await http.post(f"{base_url}/responses", json=body)
            if response.status_code == 200:
                return
            assert response.json()["error"]["code"] == "conversation_locked"
            await asyncio.sleep(0.05)
        raise AssertionError("the conversation stayed locked after the winner's client left")

    async def main() -> tuple[list[httpx.Response], list[dict[str, Any]], str]:
        async with httpx.AsyncClient(timeout=30) as http:
            conversation = (
                await http.post(f"{servers[0].base_url}/conversations", json={})
            ).json()["id"]
            responses, winner_id = await race(http, conversation)
            await answer_when_free(http, servers[1].base_url, conversation)
            items = (
                await http.get(
                    f"{servers[0].base_url}/conversations/{conversation}/items",
                    params={"order": "asc"},
                )
            ).json()["data"]
            winner = (await http.get(f"{servers[1].base_url}/responses/{winner_id}")).json()
            return responses, items, winner["status"]

    try:
        for _ in range(3):
            responses, items, winner_status = asyncio.run(main())
            statuses = [r.status_code for r in responses]
            assert statuses.count(200) == 1, statuses
            assert all(r.json()["error"] == LOCKED_BODY for r in responses if r.status_code != 200)
            assert winner_status == "cancelled"
            # the cut-off turn left nothing behind; the next turn went through
            texts = [item["content"][0]["text"] for item in items]
            assert texts == ["after", "after"]
    finally:
        for server in servers:
            server.stop()


def test_after_kill_9_the_stale_response_is_failed_and_the_conversation_frees_within_the_lease(
    tmp_path: Path,
) -> None:
    db = tmp_path / "crash.db"
    config = _slow_config(tmp_path)
    lease = 2.0
    server = spawn_server(db, config, "--lease-ttl", str(lease))
    try:
        http = httpx.Client(timeout=30)
        conversation = http.post(f"{server.base_url}/conversations", json={}).json()["id"]
        words = " ".join(f"w{i}" for i in range(500))
        response_id = None
        with http.stream(
            "POST",
            f"{server.base_url}/responses",
            json={
                "model": "echo-slow",
                "input": words,
                "conversation": conversation,
                "stream": True,
            },
        ) as resp:
            for line in resp.iter_lines():
                if line.startswith("data:") and response_id is None:
                    response_id = json.loads(line[5:])["response"]["id"]
                if "output_text.delta" in line:
                    killed_at = time.monotonic()
                    server.kill()
                    break
    finally:
        server.stop()
    assert response_id is not None
    restarted = spawn_server(db, config, "--lease-ttl", str(lease))
    try:
        # Wait out the dead holder's lease (its last heartbeat was before the kill), so
        # what follows checks that an expired lease frees the conversation, not how
        # fast this machine restarts a server.
        time.sleep(max(0.0, killed_at + lease + 0.05 - time.monotonic()))
        again = http.post(
            f"{restarted.base_url}/responses",
            json={"model": "echo", "input": "again", "conversation": conversation},
        )
        assert again.status_code == 200, "the dead holder's lease never expired"
        # the sweep runs every lease/2; a generous ceiling, only so a broken sweep ends
        deadline = time.monotonic() + 10 * lease
        while (
            status := http.get(f"{restarted.base_url}/responses/{response_id}").json()["status"]
        ) != "failed":
            assert status == "in_progress"
            assert time.monotonic() < deadline, "the crashed response was never marked failed"
            time.sleep(0.05)
        texts = [
            i["content"][0]["text"]
            for i in http.get(
                f"{restarted.base_url}/conversations/{conversation}/items", params={"order": "asc"}
            ).json()["data"]
        ]
        assert texts == ["again", "again"], "the crashed turn must leave nothing behind"
    finally:
        restarted.stop()
        http.close()


def test_a_turn_the_store_could_not_save_is_announced_as_failed_and_frees_the_conversation(
    live_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    # the run writes through a per-project view of the store (and the app wraps it
    # to measure it), so the failure goes into the store class for this test
    inner = live_server.state.store
    inner = getattr(inner, "inner", inner)
    store_class = type(inner)
    real_finish_turn = store_class.finish_turn
    failures = [sqlite3.OperationalError("database is locked")]

    async def flaky_finish_turn(self: Any, *args: Any, **kwargs: Any) -> Any:
        if failures:
            raise failures.pop()
        return await real_finish_turn(self, *args, **kwargs)

    monkeypatch.setattr(store_class, "finish_turn", flaky_finish_turn)
    with httpx.Client(base_url=live_server.base_url, timeout=30) as http:
        conversation = http.post("/conversations", json={}).json()["id"]
        with http.stream(
            "POST",
            "/responses",
            json={"model": "echo", "input": "hello", "conversation": conversation, "stream": True},
        ) as resp:
            events = [
                json.loads(line[5:]) for line in resp.iter_lines() if line.startswith("data:")
            ]
        assert events[-1]["type"] == "response.failed", (
            "an unsaved turn must never be announced as completed"
        )
        assert events[-1]["response"]["error"]["code"] == "server_error"
        assert http.get(f"/responses/{events[-1]['response']['id']}").json()["status"] == "failed"
        assert http.get(f"/conversations/{conversation}/items").json()["data"] == []
        again = http.post(
            "/responses", json={"model": "echo", "input": "again", "conversation": conversation}
        )
        assert again.status_code == 200, (
            "the conversation must be free at once, not after the lease"
        )


def test_stopping_the_server_mid_stream_records_cancelled_and_frees_the_conversation_at_once(
    tmp_path: Path,
) -> None:
    import signal

    db = tmp_path / "stop.db"
    config = _slow_config(tmp_path)
    # a long lease: only a real release, not expiry, can free the conversation in time
    server = spawn_server(db, config, "--lease-ttl", "60", "--shutdown-grace", "1")
    http = httpx.Client(timeout=30)
    try:
        conversation = http.post(f"{server.base_url}/conversations", json={}).json()["id"]
        response_id = None
        words = " ".join(f"w{i}" for i in range(1000))
        body = {"model": "echo-slow", "input": words, "conversation": conversation, "stream": True}
        # keep reading while the server stops: the client does not go away; the grace
        # period then ends the stream (cut off, or closed after a cancelled terminal)
        with (
            contextlib.suppress(httpx.RemoteProtocolError),
            http.stream("POST", f"{server.base_url}/responses", json=body) as resp,
        ):
            for line in resp.iter_lines():
                if line.startswith("data:") and response_id is None:
                    response_id = json.loads(line[5:])["response"]["id"]
                    server.process.send_signal(signal.SIGTERM)
        server.process.wait(30)
    finally:
        server.stop()
    restarted = spawn_server(db, config, "--lease-ttl", "60")
    try:
        assert (
            http.get(f"{restarted.base_url}/responses/{response_id}").json()["status"]
            == "cancelled"
        )
        again = http.post(
            f"{restarted.base_url}/responses",
            json={"model": "echo", "input": "again", "conversation": conversation},
        )
        assert again.status_code == 200, again.text
    finally:
        restarted.stop()
        http.close()
