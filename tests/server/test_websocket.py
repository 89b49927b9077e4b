"""WebSocket mode on `/v1/responses`, with a real WebSocket client against a real
server (websocket-compact.md §1). Every frame received is validated against the
spec: stream events by their own schemas, errors as `WebSocketErrorEvent`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.builders import WEATHER
from tests.livesrv import LiveServer, running_server
from tests.spec import validate_event, validate_response, validate_schema

JSON = dict[str, Any]


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    with running_server(tmp_path / "ws.db") as server:
        yield server


def ws_url(live: LiveServer) -> str:
    return f"ws://127.0.0.1:{live.port}/v1/responses"


@pytest.fixture
async def ws(live: LiveServer) -> AsyncIterator[ClientConnection]:
    async with connect(ws_url(live)) as socket:
        yield socket


async def receive(socket: ClientConnection) -> JSON:
    frame: JSON = json.loads(await socket.recv())
    if frame["type"] == "error":
        validate_schema(frame, "WebSocketErrorEvent")
    else:
        validate_event(frame)
        if "response" in frame:
            validate_response(frame["response"])
    return frame


async def create(socket: ClientConnection, **body: Any) -> list[JSON]:
    """Send one `response.create`; the frames up to its terminal event or error."""
    await socket.send(json.dumps({"type": "response.create", "model": "echo", **body}))
    return await read_answer(socket)


async def read_answer(socket: ClientConnection) -> list[JSON]:
    frames: list[JSON] = []
    while True:
        frame = await receive(socket)
        frames.append(frame)
        if frame["type"] in ("error", "response.completed", "response.failed"):
            return frames
        if frame["type"] == "response.incomplete":
            return frames


def final(frames: list[JSON]) -> JSON:
    assert frames[-1]["type"] == "response.completed", frames[-1]
    response: JSON = frames[-1]["response"]
    return response


def calls(response: JSON) -> list[JSON]:
    return [item for item in response["output"] if item["type"] == "function_call"]


def outputs_for(response: JSON, text: str) -> list[JSON]:
    return [
        {"type": "function_call_output", "call_id": call["call_id"], "output": text}
        for call in calls(response)
    ]


def text_of(response: JSON) -> str:
    return "".join(
        part["text"]
        for item in response["output"]
        if item["type"] == "message"
        for part in item["content"]
    )


async def tool_rounds(socket: ClientConnection, rounds: int, **mode: Any) -> list[JSON]:
    """`rounds` tool round trips on one connection, each continuing the last."""
    responses = []
    first = final(
        await create(socket, input="get_weather in Paris", tools=[WEATHER], **mode.get("first", {}))
    )
    responses.append(first)
    last = first
    for n in range(rounds):
        follow = mode.get("follow", {})
        chain = {} if "conversation" in follow else {"previous_response_id": last["id"]}
        answer = final(
            await create(
                socket,
                input=[*outputs_for(last, f"sunny {n}"), {"role": "user", "content": "again"}]
                if n < rounds - 1
                else outputs_for(last, f"sunny {n}"),
                tools=[WEATHER],
                **chain,
                **follow,
            )
        )
        responses.append(answer)
        last = answer
    return responses


async def test_events_match_the_sse_stream_in_order_and_numbering(
    live: LiveServer, ws: ClientConnection
) -> None:
    frames = await create(ws, input="hello there")
    # the wire recorder sees the frames too, so every suite over WebSocket is validated
    assert live.recorder.events == frames
    kinds = [f["type"] for f in frames]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert [f["sequence_number"] for f in frames] == list(range(len(frames)))
    assert text_of(final(frames)) == "hello there"


async def test_store_false_chain_runs_several_tool_rounds_from_the_connection_cache(
    live: LiveServer, ws: ClientConnection
) -> None:
    responses = await tool_rounds(ws, 3, first={"store": False}, follow={"store": False})
    # the echo model quotes the outputs it was given: the context was there each time
    assert text_of(responses[-1]) == "Tool results: sunny 2"
    assert [len(calls(r)) for r in responses] == [1, 1, 1, 0]
    for response in responses:
        assert live.call(live.state.store.get_response(response["id"])) is None


async def test_a_stored_chain_runs_several_tool_rounds_and_is_stored(
    live: LiveServer, ws: ClientConnection
) -> None:
    responses = await tool_rounds(ws, 3)
    assert text_of(responses[-1]) == "Tool results: sunny 2"
    for response in responses:
        record = live.call(live.state.store.get_response(response["id"]))
        assert record is not None
        assert record.status == "completed"


async def test_a_conversation_runs_several_tool_rounds_and_holds_every_item_once(
    live: LiveServer, ws: ClientConnection
) -> None:
    async with httpx.AsyncClient(base_url=live.base_url) as http:
        conversation = (await http.post("/conversations", json={})).json()["id"]
        responses = await tool_rounds(
            ws,
            2,
            first={"conversation": conversation},
            follow={"conversation": conversation},
        )
        # persist, release, then announce: the conversation is free and complete
        # as soon as the terminal frame arrived
        items = (
            await http.get(f"/conversations/{conversation}/items", params={"order": "asc"})
        ).json()["data"]
    assert text_of(responses[-1]) == "Tool results: sunny 1"
    kinds = [item["type"] for item in items]
    assert kinds.count("function_call") == 2
    assert kinds.count("function_call_output") == 2
    assert len({item["id"] for item in items}) == len(items)


async def test_an_error_frame_keeps_the_connection_usable_for_the_next_create(
    ws: ClientConnection,
) -> None:
    [error] = await create(ws, input="hi", model="no-such-model")
    assert error["status"] == 400
    assert error["error"]["code"] == "model_not_found"
    [error] = await create(ws, input="hi", stream=True)
    assert error["error"]["param"] == "stream"
    await ws.send("not json")
    [error] = await read_answer(ws)
    assert error["status"] == 400
    assert text_of(final(await create(ws, input="still here"))) == "still here"


async def test_queued_creates_are_answered_one_after_another_in_order(
    ws: ClientConnection,
) -> None:
    for text in ("one", "two", "three"):
        await ws.send(json.dumps({"type": "response.create", "model": "echo-slow", "input": text}))
    answers = [final(await read_answer(ws)) for _ in range(3)]
    assert [text_of(a) for a in answers] == ["one", "two", "three"]


async def test_a_reconnect_with_store_false_must_start_a_new_chain(live: LiveServer) -> None:
    async with connect(ws_url(live)) as first:
        response = final(await create(first, input="remember me", store=False))
    async with connect(ws_url(live)) as second:
        [error] = await create(
            second, input="and?", store=False, previous_response_id=response["id"]
        )
        assert error["error"]["code"] == "previous_response_not_found"
        # starting again with the full context works
        context = [{"role": "user", "content": "remember me"}, *response["output"]]
        again = final(await create(second, input=[*context, {"role": "user", "content": "ok"}]))
    assert text_of(again) == "ok"


async def test_a_reconnect_with_store_true_continues_from_the_stored_id(
    live: LiveServer,
) -> None:
    async with connect(ws_url(live)) as first:
        response = final(await create(first, input="get_weather", tools=[WEATHER]))
    async with connect(ws_url(live)) as second:
        answer = final(
            await create(
                second, input=outputs_for(response, "rain"), previous_response_id=response["id"]
            )
        )
    assert text_of(answer) == "Tool results: rain"


async def test_a_failed_continuation_evicts_its_id_from_the_connection_cache(
    ws: ClientConnection,
) -> None:
    response = final(await create(ws, input="get_weather", tools=[WEATHER], store=False))
    [error] = await create(
        ws,
        input=[{"type": "function_call_output", "call_id": "call_unknown", "output": "x"}],
        previous_response_id=response["id"],
        store=False,
    )
    assert error["status"] == 400
    [error] = await create(
        ws,
        input=outputs_for(response, "sunny"),
        previous_response_id=response["id"],
        store=False,
    )
    assert error["error"]["code"] == "previous_response_not_found"


async def test_a_second_connection_on_a_running_conversation_gets_conversation_locked(
    live: LiveServer,
) -> None:
    async with httpx.AsyncClient(base_url=live.base_url) as http:
        conversation = (await http.post("/conversations", json={})).json()["id"]
    words = " ".join(f"w{n}" for n in range(60))
    async with connect(ws_url(live)) as first, connect(ws_url(live)) as second:
        await first.send(
            json.dumps(
                {
                    "type": "response.create",
                    "model": "echo-slow",
                    "input": words,
                    "conversation": conversation,
                }
            )
        )
        # the first response is running once its first frame arrived
        assert (await receive(first))["type"] == "response.created"
        [error] = await create(second, input="me too", conversation=conversation)
        assert error["error"]["code"] == "conversation_locked"
        assert text_of(final(await read_answer(first))) == words
        # released before the terminal frame: the second connection goes at once
        assert text_of(final(await create(second, input="now", conversation=conversation)))


async def test_the_connection_closes_at_its_time_limit_with_an_error_frame(
    tmp_path: Path,
) -> None:
    with running_server(tmp_path / "limit.db", websocket_max_seconds=0.3) as live:
        async with connect(ws_url(live)) as socket:
            assert text_of(final(await create(socket, input="quick"))) == "quick"
            frame = await receive(socket)
            assert frame["error"]["code"] == "websocket_connection_limit_reached"
            await socket.wait_closed()
