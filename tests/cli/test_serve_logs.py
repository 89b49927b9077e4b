"""`turnstream serve --log-format json`: every line the server writes is a JSON object,
the request line has every field, and user text stays out of it."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from typer.testing import CliRunner

from tests.livesrv import spawn_server
from turnstream.cli.main import app


def test_json_logs_are_one_object_per_line_with_the_request_fields(tmp_path: Path) -> None:
    server = spawn_server(tmp_path / "logs.db", None, "--log-level", "info", "--log-format", "json")
    try:
        reply = httpx.post(
            f"{server.base_url}/responses",
            json={"model": "echo", "input": "zebra-secret"},
            timeout=30,
        )
        assert reply.status_code == 200
    finally:
        server.stop()
    assert server.log_path is not None
    text = server.log_path.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    (create,) = [
        line
        for line in lines
        if line["logger"] == "turnstream.requests" and line.get("route") == "/v1/responses"
    ]
    assert create["request_id"] == reply.headers["x-request-id"]
    assert create["response_id"] == reply.json()["id"]
    assert create["model"] == "echo"
    assert create["status"] == 200
    assert create["client"].startswith("127.0.0.1:")
    assert create["response_status"] == "completed"
    assert {
        "conversation_id",
        "first_event_ms",
        "duration_ms",
        "input_tokens",
        "output_tokens",
    } <= (create.keys())
    # uvicorn's own access line is replaced by ours; its other lines are JSON too
    assert not [line for line in lines if line["logger"] == "uvicorn.access"]
    assert any(line["logger"].startswith("uvicorn") for line in lines)
    assert "zebra-secret" not in text


def test_text_logs_have_one_line_per_request_with_the_client(tmp_path: Path) -> None:
    server = spawn_server(tmp_path / "text.db", None, "--log-level", "info")
    try:
        reply = httpx.post(
            f"{server.base_url}/responses", json={"model": "echo", "input": "hi"}, timeout=30
        )
        assert reply.status_code == 200
    finally:
        server.stop()
    assert server.log_path is not None
    lines = [line for line in server.log_path.read_text().splitlines() if "/v1/responses" in line]
    # ours alone: uvicorn's access line said less and was written before the head
    assert len(lines) == 1, lines
    assert "turnstream.requests" in lines[0]
    assert "client=127.0.0.1:" in lines[0]
    assert f"response_id={reply.json()['id']}" in lines[0]


def test_an_unknown_log_format_is_refused() -> None:
    result = CliRunner().invoke(app, ["serve", "--log-format", "xml", "--no-local"])
    assert result.exit_code == 2
    assert "must be text or json" in result.output
