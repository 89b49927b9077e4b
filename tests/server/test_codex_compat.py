"""What Codex CLI (and clients like it) send, answered the way they need.

Live-server tests run through the wire recorder, so every event and Response here
is also validated against the Open Responses spec. Custom tool calls are the one
item kind the spec does not have; those tests run in-process and check the item
against the official SDK's type instead.
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import zstandard
from fastapi.testclient import TestClient
from openai.types.responses import ResponseCustomToolCall

from tests.livesrv import LiveServer, running_server, spawn_server
from turnstream.engine.deltas import OutputTextDelta, ReasoningDelta, ToolCallDelta
from turnstream.providers.scripted import ScriptedProvider
from turnstream.server.app import create_app
from turnstream.server.hosted_tools import DROPPED_TOOLS_HEADER
from turnstream.server.reasoning_seal import ReasoningSeal
from turnstream.server.settings import Settings
from turnstream.sse import Decoder

AGENTS = {
    "type": "namespace",
    "name": "multi_agent_v1",
    "description": "Sub-agents.",
    "tools": [{"type": "function", "name": "spawn_agent", "parameters": {"type": "object"}}],
}
EXEC = {"type": "function", "name": "exec_command", "strict": False, "parameters": {}}
WEB_SEARCH = {"type": "web_search", "external_web_access": False}


def codex_body(input: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "model": "scripted",
        "instructions": "You are a coding agent.",
        "input": input,
        "tools": [EXEC, AGENTS, WEB_SEARCH],
        "tool_choice": "auto",
        "parallel_tool_calls": False,
        "reasoning": {"summary": "auto"},
        "store": False,
        "stream": True,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "thread-1",
        "client_metadata": {"thread_id": "thread-1", "turn_id": "turn-1"},
        **extra,
    }


def user(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def events_of(body: bytes) -> list[dict[str, Any]]:
    decoder = Decoder()
    return [frame.json() for frame in [*decoder.feed(body), *decoder.flush()]]


def post(live: LiveServer, body: bytes, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{live.base_url}/responses",
        content=body,
        headers={"content-type": "application/json", **headers},
        timeout=10,
    )


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    with running_server(tmp_path / "turnstream.db") as server:
        yield server


def test_a_codex_turn_compressed_with_zstd_streams_a_namespaced_call_and_sealed_reasoning(
    live: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="turnstream.server")
    assert live.scripted is not None
    live.scripted.push(
        [
            ReasoningDelta("I should spawn a helper."),
            ToolCallDelta(0, "multi_agent_v1__spawn_agent", "call_1", '{"task": "x"}'),
        ],
        [OutputTextDelta("Done.")],
    )
    raw = json.dumps(codex_body([user("Go")])).encode()
    first = post(live, zstandard.ZstdCompressor().compress(raw), **{"content-encoding": "zstd"})
    assert first.status_code == 200, first.text
    assert first.headers[DROPPED_TOOLS_HEADER] == "web_search"
    assert "left out hosted tools this server cannot run: web_search" in caplog.text
    completed = events_of(first.content)[-1]
    assert completed["type"] == "response.completed"
    reasoning, call = completed["response"]["output"]
    assert reasoning["encrypted_content"]
    assert "spawn" not in reasoning["encrypted_content"]  # sealed, not merely encoded
    assert (call["name"], call["namespace"]) == ("spawn_agent", "multi_agent_v1")
    # the model was offered the namespace's function under its flat name, no web search
    offered = [tool["name"] for tool in live.scripted.requests[0].tools]
    assert offered == ["exec_command", "multi_agent_v1__spawn_agent"]
    echoed = [tool["name"] for tool in completed["response"]["tools"]]
    assert echoed == offered

    # Codex's next turn: the whole history, store=false, the sealed reasoning included
    history = [
        user("Go"),
        reasoning,
        call,
        {"type": "function_call_output", "call_id": "call_1", "output": "spawned"},
    ]
    second = post(
        live,
        gzip.compress(json.dumps(codex_body(history)).encode()),
        **{"content-encoding": "gzip"},
    )
    assert second.status_code == 200, second.text
    assert events_of(second.content)[-1]["type"] == "response.completed"
    seen = live.scripted.requests[1].items
    assert seen[1]["content"] == [{"type": "reasoning_text", "text": "I should spawn a helper."}]
    assert seen[2]["name"] == "multi_agent_v1__spawn_agent"
    assert "namespace" not in seen[2]


def test_a_body_that_does_not_decompress_is_a_400_in_openai_s_shape(live: LiveServer) -> None:
    response = post(live, b"not zstd at all", **{"content-encoding": "zstd"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert "zstd" in error["message"]


def test_an_unknown_content_encoding_is_refused(live: LiveServer) -> None:
    response = post(live, b"{}", **{"content-encoding": "br"})
    assert response.status_code == 400
    assert "Content-Encoding" in response.json()["error"]["message"]


def test_hosted_tools_are_a_400_when_the_server_is_set_to_reject_them(tmp_path: Path) -> None:
    with running_server(tmp_path / "turnstream.db", hosted_tools="reject") as server:
        response = post(server, json.dumps(codex_body([user("Go")])).encode())
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("unsupported_tool", "tools")
    assert "'web_search'" in error["message"]


def test_codex_s_websocket_upgrade_is_accepted_now_that_websocket_mode_exists(
    live: LiveServer,
) -> None:
    # Codex tries WebSocket first (with its beta header); the upgrade is served
    response = httpx.get(
        f"{live.base_url}/responses",
        headers={
            "connection": "Upgrade",
            "upgrade": "websocket",
            "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
            "sec-websocket-version": "13",
            "openai-beta": "responses_websockets=2026-02-06",
        },
        timeout=10,
    )
    assert response.status_code == 101


def test_models_list_carries_codex_s_model_metadata_beside_data(live: LiveServer) -> None:
    body = httpx.get(f"{live.base_url}/models?client_version=0.171.0", timeout=10).json()
    assert [m["id"] for m in body["data"]] == [m["slug"] for m in body["models"]]
    required = {
        "slug", "display_name", "supported_reasoning_levels", "shell_type", "visibility",
        "supported_in_api", "priority", "base_instructions", "supports_reasoning_summaries",
        "support_verbosity", "truncation_policy", "supports_parallel_tool_calls",
        "experimental_supported_tools",
    }  # fmt: skip
    for model in body["models"]:
        assert required <= set(model)


def test_max_output_tokens_of_one_and_text_format_are_accepted_and_echoed(
    live: LiveServer,
) -> None:
    text = {"format": {"type": "json_object"}, "verbosity": "low"}
    response = httpx.post(
        f"{live.base_url}/responses",
        json={"model": "scripted", "input": "probe", "max_output_tokens": 1, "text": text},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert response.json()["text"] == text
    assert response.json()["max_output_tokens"] == 1
    assert live.scripted is not None
    assert live.scripted.requests[-1].text_format == {"type": "json_object"}


def test_reasoning_sealed_by_one_replica_opens_on_another_with_the_same_secret() -> None:
    token = ReasoningSeal("shared").seal("step by step")
    assert ReasoningSeal("shared").open(token) == "step by step"
    assert ReasoningSeal("another").open(token) is None
    assert ReasoningSeal("shared").open("gAAAA-not-a-token") is None


def test_reasoning_that_cannot_be_opened_is_left_for_the_model_to_not_see() -> None:
    item = {"type": "reasoning", "summary": [], "encrypted_content": "from-openai"}
    assert ReasoningSeal("s").reveal([item]) == [item]


def test_custom_tool_calls_round_trip_as_custom_items(tmp_path: Path) -> None:
    scripted = ScriptedProvider()
    scripted.push(
        [ToolCallDelta(0, "apply_patch", "call_p", json.dumps({"input": "*** Begin Patch"}))],
        [OutputTextDelta("Patched.")],
    )
    app = create_app(
        Settings(db_path=tmp_path / "t.db", enable_local_model=False), providers=[scripted]
    )
    patch = {"type": "custom", "name": "apply_patch", "description": "Edit files."}
    with TestClient(app) as client:
        first = client.post(
            "/v1/responses",
            json={"model": "scripted", "input": "patch it", "tools": [patch], "store": False},
        )
        assert first.status_code == 200, first.text
        [item] = first.json()["output"]
        call = ResponseCustomToolCall.model_validate(item)
        assert (call.name, call.input, call.call_id) == ("apply_patch", "*** Begin Patch", "call_p")
        second = client.post(
            "/v1/responses",
            json={
                "model": "scripted",
                "tools": [patch],
                "store": False,
                "input": [
                    {"role": "user", "content": "patch it"},
                    item,
                    {"type": "custom_tool_call_output", "call_id": "call_p", "output": "ok"},
                ],
            },
        )
        assert second.status_code == 200, second.text
        assert second.json()["output"][0]["content"][0]["text"] == "Patched."
        orphan = client.post(
            "/v1/responses",
            json={
                "model": "scripted",
                "input": [{"type": "custom_tool_call_output", "call_id": "nope", "output": ""}],
            },
        )
        assert orphan.status_code == 400
    offered = scripted.requests[0].tools[0]
    assert offered["name"] == "apply_patch"
    assert offered["parameters"]["required"] == ["input"]
    call_seen, output_seen = scripted.requests[1].items[1:]
    assert call_seen["type"] == "function_call"
    assert json.loads(call_seen["arguments"]) == {"input": "*** Begin Patch"}
    assert output_seen == {"type": "function_call_output", "call_id": "call_p", "output": "ok"}


def test_serve_reject_hosted_tools_flag_refuses_them(tmp_path: Path) -> None:
    server = spawn_server(tmp_path / "turnstream.db", None, "--reject-hosted-tools")
    try:
        body = {"model": "echo", "input": "hi", "tools": [WEB_SEARCH]}
        refused = httpx.post(f"{server.base_url}/responses", json=body, timeout=10)
        body["tools"] = [EXEC]
        accepted = httpx.post(f"{server.base_url}/responses", json=body, timeout=10)
    finally:
        server.stop()
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "unsupported_tool"
    assert accepted.status_code == 200
    assert DROPPED_TOOLS_HEADER not in accepted.headers
