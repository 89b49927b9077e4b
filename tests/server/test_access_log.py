"""One structured line per request (`turnstream.requests`): every field present, JSON
for machines, and no prompt or output text unless `log_content` is set."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from turnstream.engine.deltas import OutputTextDelta, UsageDelta
from turnstream.server.logs import REQUEST_LOGGER, JSONFormatter, TextFormatter

from .inprocess import serving

FIELDS = {
    "request_id",
    "method",
    "route",
    "status",
    "duration_ms",
    "response_id",
    "conversation_id",
    "model",
    "response_status",
    "first_event_ms",
    "input_tokens",
    "output_tokens",
}


def request_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == REQUEST_LOGGER]


async def test_a_json_request_line_parses_and_has_every_field(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=REQUEST_LOGGER)
    async with serving(tmp_path) as served:
        conv = (await served.client.post("/v1/conversations", json={})).json()["id"]
        served.scripted.push(
            [OutputTextDelta(text="the secret answer"), UsageDelta(input_tokens=5, output_tokens=2)]
        )
        reply = await served.client.post(
            "/v1/responses",
            json={
                "model": "scripted",
                "input": "my secret prompt",
                "conversation": conv,
                "stream": True,
            },
        )
    assert reply.status_code == 200
    create = request_lines(caplog)[-1]
    line = JSONFormatter().format(create)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed.keys() >= FIELDS
    assert parsed["request_id"] == reply.headers["x-request-id"]
    assert parsed["route"] == "/v1/responses"
    assert parsed["status"] == 200
    assert parsed["conversation_id"] == conv
    assert parsed["response_id"].startswith("resp_")
    assert parsed["model"] == "scripted"
    assert parsed["response_status"] == "completed"
    assert (parsed["input_tokens"], parsed["output_tokens"]) == (5, 2)
    assert 0 <= parsed["first_event_ms"] <= parsed["duration_ms"]
    assert parsed["level"] == "info"
    assert parsed["logger"] == REQUEST_LOGGER
    # no user content by default
    assert "secret" not in line
    assert "input" not in parsed
    assert "output" not in parsed


async def test_log_content_adds_the_prompt_and_the_output(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=REQUEST_LOGGER)
    async with serving(tmp_path, log_content=True) as served:
        served.scripted.push([OutputTextDelta(text="the answer")])
        await served.client.post("/v1/responses", json={"model": "scripted", "input": "the prompt"})
    parsed = json.loads(JSONFormatter().format(request_lines(caplog)[-1]))
    assert parsed["output"] == "the answer"
    assert "the prompt" in json.dumps(parsed["input"])


async def test_the_text_format_reads_as_one_line_with_key_value_fields(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=REQUEST_LOGGER)
    async with serving(tmp_path) as served:
        await served.client.post("/v1/responses", json={"model": "scripted", "input": "hi"})
        await served.client.get("/v1/responses/resp_missing")
    create, missing = request_lines(caplog)[-2:]
    text = TextFormatter().format(create)
    assert text.startswith(f"INFO {REQUEST_LOGGER}: POST /v1/responses 200 ")
    assert "model=scripted" in text
    assert "response_status=completed" in text
    assert "\n" not in text
    # a request without a run has the request's own fields only
    assert "response_id" not in missing.fields  # type: ignore[attr-defined]  # set by `extra=`
    assert missing.fields["status"] == 404  # type: ignore[attr-defined]  # set by `extra=`


async def test_probes_and_scrapes_are_logged_at_debug_level(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=REQUEST_LOGGER)
    async with serving(tmp_path) as served:
        for path in ("/healthz", "/readyz", "/metrics"):
            assert (await served.client.get(path)).status_code == 200
    assert request_lines(caplog) == []


def test_other_records_render_as_json_too() -> None:
    record = logging.LogRecord(
        "turnstream.server", logging.WARNING, __file__, 1, "hi %s", ("x",), None
    )
    assert json.loads(JSONFormatter().format(record))["message"] == "hi x"
