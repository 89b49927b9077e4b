"""A retry after the server did the turn never makes a second turn (issue 11).

The proxy drops each create's connection at the server's first response byte, and
`SettledBeforeAnswer` holds that byte back until the run has finished and been
persisted: so the server has done the whole turn when the connection dies, by
construction. The runtime's retry carries the same `Idempotency-Key` and gets that
turn back instead of a second one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.livesrv import LiveServer, running_server
from turnstream.runtime import tool

from .fault_proxy import FaultProxy
from .helpers import assert_paired, conversation_items, make_agent, shape
from .server_taps import App, Message, Scope, _is_create, tap


class SettledBeforeAnswer:
    """Holds back a create's response start until no run is in flight."""

    def __init__(self, live: LiveServer) -> None:
        self.live = live

    def __call__(self, app: App) -> App:
        async def wrapped(scope: Scope, receive: Any, send: Any) -> None:
            if not _is_create(scope):
                await app(scope, receive, send)
                return

            async def held(message: Message) -> None:
                if message["type"] == "http.response.start":
                    runs = list(self.live.state.runs.values())
                    await asyncio.wait_for(asyncio.gather(*(r.result() for r in runs)), 10)
                await send(message)

            await app(scope, receive, held)

        return wrapped


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    with running_server(tmp_path / "idem.db") as server:
        tap(server, SettledBeforeAnswer(server))
        yield server


def turns_made(live: LiveServer) -> set[str]:
    return {e["response"]["id"] for e in live.recorder.events if e["type"] == "response.created"}


def counting_add() -> tuple[Any, list[tuple[float, float]]]:
    runs: list[tuple[float, float]] = []

    @tool
    def add(a: float, b: float) -> float:
        """Add two numbers.

        Args:
            a: The first addend.
            b: The second addend.
        """
        runs.append((a, b))
        return a + b

    return add, runs


async def test_a_dropped_create_in_a_conversation_is_retried_without_a_second_turn(
    live: LiveServer,
) -> None:
    async with httpx.AsyncClient(base_url=live.base_url) as http:
        cid = (await http.post("/conversations", json={})).json()["id"]
    add, runs = counting_add()
    # request 1 (the first create) and 3 (the outputs) die after the server's work
    async with FaultProxy(
        live.port, drop_rate=0, mode="before_response", drop_requests={1, 3}
    ) as proxy:
        async with openai.AsyncOpenAI(base_url=proxy.base_url, api_key="t") as client:
            result = await make_agent(client, tools=[add]).run(
                'add {"a": 1, "b": 2}', conversation=cid
            )
        assert proxy.drops == 2
    assert result.final_output == "Tool results: 3.0"
    assert runs == [(1, 2)]
    async with openai.AsyncOpenAI(base_url=live.base_url, api_key="t") as client:
        items = await conversation_items(client, cid)
    assert shape(items) == ["user", "call:add", "output", "assistant"]
    assert_paired(items)
    assert len(turns_made(live)) == 2


async def test_a_dropped_create_in_a_chain_is_retried_without_a_second_turn(
    live: LiveServer,
) -> None:
    add, runs = counting_add()
    async with FaultProxy(
        live.port, drop_rate=0, mode="before_response", drop_requests={1, 3}
    ) as proxy:
        async with openai.AsyncOpenAI(base_url=proxy.base_url, api_key="t") as client:
            result = await make_agent(client, tools=[add]).run('add {"a": 4, "b": 5}')
        assert proxy.drops == 2
    assert result.final_output == "Tool results: 9.0"
    assert runs == [(4, 5)]
    assert len(turns_made(live)) == 2
    async with openai.AsyncOpenAI(base_url=live.base_url, api_key="t") as client:
        last = await client.responses.retrieve(result.last_response_id or "")
        inputs = await client.responses.input_items.list(last.id, order="asc")
    assert [i.type for i in inputs.data] == ["function_call_output"]


async def test_the_same_key_with_another_body_is_refused(live: LiveServer) -> None:
    headers = {"Idempotency-Key": "k-1"}
    async with httpx.AsyncClient(base_url=live.base_url) as http:
        first = await http.post("/responses", json={"model": "echo", "input": "a"}, headers=headers)
        again = await http.post("/responses", json={"model": "echo", "input": "a"}, headers=headers)
        other = await http.post("/responses", json={"model": "echo", "input": "b"}, headers=headers)
    assert first.status_code == 200
    assert again.json() == first.json()
    assert other.status_code == 400
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert len(turns_made(live)) == 0  # no stream was asked for
    assert again.json()["id"] == first.json()["id"]


async def test_a_repeated_streaming_create_gets_the_first_responses_events(
    live: LiveServer,
) -> None:
    headers = {"Idempotency-Key": "k-2"}
    body = {"model": "echo", "input": "same words", "stream": True}
    async with httpx.AsyncClient(base_url=live.base_url) as http:
        first = await http.post("/responses", json=body, headers=headers)
        again = await http.post("/responses", json=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert len(turns_made(live)) == 1
    created = [e for e in live.recorder.events if e["type"] == "response.completed"]
    assert len(created) == 2
    assert created[0]["response"] == created[1]["response"]


async def test_concurrent_requests_with_one_key_make_one_turn_and_share_it(
    tmp_path: Path,
) -> None:
    words = " ".join(f"w{n}" for n in range(15))
    body = {"model": "echo-slow", "input": words}
    headers = {"Idempotency-Key": "k-concurrent"}
    with running_server(tmp_path / "concurrent.db") as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=20) as http:
            replies = await asyncio.gather(
                *(http.post("/responses", json=body, headers=headers) for _ in range(3))
            )
    # whichever came first made the turn; the others waited for it, live or stored
    assert {r.status_code for r in replies} == {200}
    assert len({r.json()["id"] for r in replies}) == 1
    assert all(r.json()["status"] == "completed" for r in replies)
    assert replies[0].json()["output"][0]["content"][0]["text"] == words
