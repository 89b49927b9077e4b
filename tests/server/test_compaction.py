"""`POST /v1/responses/compact` and `compaction` items (websocket-compact.md §2)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.builders import WEATHER
from tests.livesrv import LiveServer, running_server
from tests.spec import validate_schema
from turnstream.engine.deltas import FinishDelta, ItemEndDelta, OutputTextDelta
from turnstream.server.compaction import _split

JSON = dict[str, Any]


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    with running_server(tmp_path / "compact.db") as server:
        yield server


async def a_tool_heavy_chain(http: httpx.AsyncClient) -> str:
    """A stored chain: a question, a call, its output, an answer, then a new question."""
    first = (
        await http.post(
            "/responses", json={"model": "echo", "input": "get_weather Paris", "tools": [WEATHER]}
        )
    ).json()
    call = first["output"][0]
    answer = (
        await http.post(
            "/responses",
            json={
                "model": "echo",
                "previous_response_id": first["id"],
                "input": [
                    {"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"}
                ],
            },
        )
    ).json()
    last = (
        await http.post(
            "/responses",
            json={"model": "echo", "previous_response_id": answer["id"], "input": "and Rome?"},
        )
    ).json()
    return str(last["id"])


async def compact(http: httpx.AsyncClient, **body: Any) -> JSON:
    reply = await http.post("/responses/compact", json={"model": "echo", **body})
    assert reply.status_code == 200, reply.text
    resource: JSON = reply.json()
    validate_schema(resource, "CompactResource")
    return resource


async def test_compacting_keeps_the_current_turn_and_seals_the_rest(live: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live.base_url) as http:
        last = await a_tool_heavy_chain(http)
        resource = await compact(http, previous_response_id=last)
    output = resource["output"]
    assert resource["object"] == "response.compaction"
    assert [i["type"] for i in output] == ["message", "message", "compaction"]
    assert output[0]["content"][0]["text"] == "and Rome?"
    assert "sunny" not in output[-1]["encrypted_content"]  # opaque, not just encoded
    validate_schema(output[-1], "CompactionBody")
    assert resource["usage"]["output_tokens"] > 0


async def test_a_new_chain_from_the_compacted_window_sees_the_summary(
    live: LiveServer,
) -> None:
    assert live.scripted is not None
    async with httpx.AsyncClient(base_url=live.base_url) as http:
        last = await a_tool_heavy_chain(http)
        window = (await compact(http, previous_response_id=last))["output"]
        reply = await http.post(
            "/responses",
            json={"model": "scripted", "input": [*window, {"role": "user", "content": "ok"}]},
        )
    assert reply.status_code == 200, reply.text
    assert reply.json()["output"][0]["content"][0]["text"] == "ok"
    seen = live.scripted.requests[-1].items
    summary = [i for i in seen if i.get("role") == "developer"]
    assert len(summary) == 1
    # the echo model cannot summarise: the deterministic summary names every older item
    text = summary[0]["content"][0]["text"]
    assert "user: get_weather Paris" in text
    assert "sunny" in text
    assert not any(i.get("type") == "compaction" for i in seen)


async def test_a_forged_compaction_item_is_refused(live: LiveServer) -> None:
    forged = {"type": "compaction", "encrypted_content": "gAAAAABforged"}
    async with httpx.AsyncClient(base_url=live.base_url) as http:
        create = await http.post("/responses", json={"model": "echo", "input": [forged]})
        again = await http.post("/responses/compact", json={"model": "echo", "input": [forged]})
    for reply in (create, again):
        assert reply.status_code == 400
        assert reply.json()["error"]["code"] == "invalid_compaction"


async def test_an_item_from_another_server_is_refused_and_a_replica_accepts_its_own(
    tmp_path: Path, live: LiveServer
) -> None:
    async with httpx.AsyncClient(base_url=live.base_url) as http:
        window = (await compact(http, input=[*history(), {"role": "user", "content": "now"}]))[
            "output"
        ]
    body = {"model": "echo", "input": [*window, {"role": "user", "content": "next"}]}
    with running_server(tmp_path / "other.db") as foreign:
        async with httpx.AsyncClient(base_url=foreign.base_url) as http:
            refused = await http.post("/responses", json=body)
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "invalid_compaction"
    with running_server(tmp_path / "compact.db") as replica:  # the same database
        async with httpx.AsyncClient(base_url=replica.base_url) as http:
            accepted = await http.post("/responses", json=body)
    assert accepted.status_code == 200, accepted.text


async def test_the_summary_comes_from_a_model_that_can_write_one(live: LiveServer) -> None:
    assert live.scripted is not None
    live.scripted.push(
        [OutputTextDelta("They talked about the weather."), ItemEndDelta(), FinishDelta()]
    )
    async with httpx.AsyncClient(base_url=live.base_url) as http:
        reply = await http.post(
            "/responses/compact",
            json={"model": "scripted", "input": [*history(), {"role": "user", "content": "x"}]},
        )
        window = reply.json()["output"]
        await http.post(
            "/responses",
            json={"model": "scripted", "input": [*window, {"role": "user", "content": "y"}]},
        )
    seen = live.scripted.requests[-1].items
    [summary] = [i for i in seen if i.get("role") == "developer"]
    assert summary["content"][0]["text"].endswith("They talked about the weather.")


async def test_a_compact_request_without_a_model_names_the_param(live: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live.base_url) as http:
        reply = await http.post("/responses/compact", json={"input": "hi"})
    assert reply.status_code == 400
    assert reply.json()["error"]["param"] == "model"


def history() -> list[JSON]:
    return [
        {"role": "user", "content": "get_weather Paris"},
        {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
        {"role": "assistant", "content": "It is sunny."},
    ]


def test_the_kept_window_never_starts_with_an_output_whose_call_was_compacted() -> None:
    context = [
        {"type": "message", "role": "user", "content": "a"},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "message", "role": "user", "content": "b"},
        {"type": "function_call_output", "call_id": "c1", "output": "x"},
    ]
    assert _split(context) == 1
    assert _split(history()) == 0
    assert _split([*history(), {"type": "message", "role": "user", "content": "c"}]) == 4
