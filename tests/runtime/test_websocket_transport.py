"""The runtime's WebSocket transport against the real server: what only it does.

The behaviour it shares with HTTP (events, tools, cancellation, state modes) is the
whole of `test_against_server.py`, which runs over both transports.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest

from tests.livesrv import LiveServer
from turnstream.runtime import RetryPolicy
from turnstream.runtime.websocket import WebSocketTransport, websocket_url

from .helpers import agents_over, assert_paired, conversation_items, make_agent, shape
from .server_taps import App, Scope, StatusCounter, tap

pytestmark = pytest.mark.usefixtures("over_each_transport")


@pytest.fixture
async def over_each_transport() -> AsyncIterator[str]:
    """Overrides conftest's: these tests are about the WebSocket transport only."""
    async with agents_over("websocket") as transport:
        yield transport


class SocketCounter:
    """Counts WebSocket connections opened on the server."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.opened = 0

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            self.opened += 1
        await self.app(scope, receive, send)


def transport_of(agent: Any) -> WebSocketTransport:
    transport = agent._transport
    assert isinstance(transport, WebSocketTransport)
    return transport


def test_the_websocket_url_follows_the_clients_base_url() -> None:
    assert websocket_url("http://h:1/v1/") == "ws://h:1/v1/responses"
    assert websocket_url("https://api.example.com/v1") == "wss://api.example.com/v1/responses"


async def test_tool_rounds_go_over_one_connection_and_no_http_create(
    live_server: LiveServer, server_client: openai.AsyncOpenAI
) -> None:
    http = tap(live_server, StatusCounter)
    sockets = tap(live_server, SocketCounter)
    agent = make_agent(server_client)
    for n in range(3):
        result = await agent.run(f'add {{"a": {n}, "b": 1}}')
        assert result.final_output == f"Tool results: {float(n + 1)}"
    assert sockets.opened == 1
    assert http.counts == {}


@pytest.mark.parametrize("mode", ["conversation", "chain", "store_false"])
async def test_a_lost_connection_is_replaced_and_the_history_goes_on(
    live_server: LiveServer, server_client: openai.AsyncOpenAI, mode: str
) -> None:
    sockets = tap(live_server, SocketCounter)
    agent = make_agent(server_client, store=mode != "store_false")
    kwargs: dict[str, Any] = {}
    if mode == "conversation":
        kwargs["conversation"] = (await server_client.conversations.create()).id
    first = await agent.run('add {"a": 1, "b": 2}', **kwargs)
    for connection in transport_of(agent)._idle:
        connection.transport.abort()  # the network, not a goodbye
    if mode == "chain":
        kwargs["previous_response_id"] = first.last_response_id
    if mode == "store_false":
        kwargs["history"] = first.history
    second = await agent.run('add {"a": 3, "b": 4}', **kwargs)
    assert second.final_output == "Tool results: 7.0"
    assert sockets.opened == 2
    if mode == "conversation":
        items = await conversation_items(server_client, kwargs["conversation"])
        assert shape(items) == ["user", "call:add", "output", "assistant"] * 2
        assert_paired(items)
    if mode == "store_false":
        assert_paired(second.history)
        assert len(second.history) == 8


async def test_an_error_frame_raises_the_sdk_exception_of_its_status(
    server_client: openai.AsyncOpenAI,
) -> None:
    agent = make_agent(server_client, model="no-such-model", tools=[])
    with pytest.raises(openai.BadRequestError) as caught:
        await agent.run("hi")
    assert caught.value.code == "model_not_found"
    # the connection stayed usable
    agent.model = "echo"
    assert (await agent.run("hi again")).final_output == "hi again"


async def test_conversation_locked_frames_are_retried_until_the_lock_is_free(
    live_server: LiveServer, server_client: openai.AsyncOpenAI
) -> None:
    cid = (await server_client.conversations.create()).id
    store = live_server.state.store
    assert live_server.call(store.acquire_lock(cid, "someone_else", ttl=60))
    waits: list[float] = []

    async def release_on_first_wait(seconds: float) -> None:
        # the transport waits only after a refusal: let the other holder go then
        waits.append(seconds)
        live_server.call(store.release_lock(cid, "someone_else"))

    retry = RetryPolicy(max_attempts=5, base=0.001, sleep=release_on_first_wait)
    result = await make_agent(server_client, tools=[], retry=retry).run("hi", conversation=cid)
    assert result.final_output == "hi"
    assert len(waits) == 1


class ClientFrames:
    """Records every `response.create` frame the server receives."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.frames: list[dict[str, Any]] = []

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return

        async def tee() -> Any:
            message = await receive()
            if message["type"] == "websocket.receive" and message.get("text"):
                self.frames.append(json.loads(message["text"]))
            return message

        await self.app(scope, tee, send)


async def test_store_false_sends_only_new_items_on_the_same_connection_and_all_after_a_reconnect(
    live_server: LiveServer, server_client: openai.AsyncOpenAI
) -> None:
    client_frames = tap(live_server, ClientFrames)
    agent = make_agent(server_client, store=False)
    first = await agent.run('add {"a": 1, "b": 2}')
    second = await agent.run('add {"a": 3, "b": 4}', history=first.history)
    assert second.final_output == "Tool results: 7.0"
    frames = client_frames.frames
    assert [len(f["input"]) for f in frames] == [1, 1, 1, 1]
    assert [("previous_response_id" in f) for f in frames] == [False, True, True, True]
    assert all(f["store"] is False for f in frames)
    # after a reconnect the server has nothing of ours: the whole context again
    for connection in transport_of(agent)._idle:
        connection.transport.abort()
    third = await agent.run('add {"a": 5, "b": 6}', history=second.history)
    assert third.final_output == "Tool results: 11.0"
    assert "previous_response_id" not in frames[4]
    assert len(frames[4]["input"]) == len(second.history) + 1
    assert "previous_response_id" in frames[5]
    assert_paired(third.history)
