"""Real JavaScript clients, unchanged, against a real turnstream server.

The clients are pinned in `js/package.json` and `js/package-lock.json`, and
`scripts/setup` installs them with `npm ci`. Each test runs one against the live
server (uvicorn on a loopback port) with a scripted model; the server's wire
recorder validates every event and Response they receive against the Open
Responses spec when the server stops. Without Node.js the tests are skipped with
that reason, except under `CI=true`, where a missing client is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.livesrv import running_server
from turnstream.engine.deltas import FinishDelta, OutputTextDelta, ToolCallDelta
from turnstream.providers.base import GenerationRequest
from turnstream.server.model_catalog import BASE_INSTRUCTIONS

JS_DIR = Path(__file__).parent / "js"
CODEX = JS_DIR / "node_modules" / ".bin" / "codex"
AI_SDK_SCRIPT = JS_DIR / "ai_sdk_tool_round_trip.mjs"


def _require_js_clients() -> str:
    node = shutil.which("node")
    if node is None:
        reason = "Node.js is not installed (apt-get install nodejs npm, then scripts/setup)"
    elif not CODEX.exists() or not (JS_DIR / "node_modules" / "ai").exists():
        reason = "the pinned JavaScript clients are not installed (run scripts/setup)"
    else:
        return node
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the JavaScript client tests: {reason}")
    pytest.skip(reason)


def _last_output(request: GenerationRequest) -> str:
    outputs = [i for i in request.items if i.get("type") == "function_call_output"]
    assert outputs, "the client sent no tool output back"
    output = outputs[-1]["output"]
    return output if isinstance(output, str) else json.dumps(output)


def _answer_with_last_output(prefix: str) -> object:
    def answer(request: GenerationRequest) -> list[object]:
        return [OutputTextDelta(f"{prefix}{_last_output(request).strip().splitlines()[-1]}")]

    return answer


def test_codex_exec_creates_a_file_and_runs_a_command_through_turnstream(tmp_path: Path) -> None:
    _require_js_clients()
    work = tmp_path / "work"
    work.mkdir()
    home = tmp_path / "codex-home"
    home.mkdir()
    last_message = tmp_path / "last-message.txt"
    with running_server(tmp_path / "turnstream.db") as live:
        assert live.scripted is not None
        live.scripted.push(
            [
                OutputTextDelta("I'll write the file first."),
                ToolCallDelta(
                    0,
                    "exec_command",
                    "call_write",
                    json.dumps({"cmd": "printf 'turnstream was here\\n' > notes.txt"}),
                ),
                FinishDelta(),
            ],
            [ToolCallDelta(0, "exec_command", "call_read", json.dumps({"cmd": "cat notes.txt"}))],
            [_answer_with_last_output("notes.txt says: ")],
        )
        # Command auth (rather than env_key) makes Codex read the server's model
        # catalogue, as the README configures it.
        provider = (
            f'model_providers.ts={{name="turnstream",base_url="{live.base_url}",'
            'wire_api="responses",auth={command="echo",args=["unused"]}}'
        )
        completed = subprocess.run(
            [
                str(CODEX),
                "exec",
                "--skip-git-repo-check",
                "-c",
                "model_provider=ts",
                "-c",
                provider,
                "-m",
                "scripted",
                # Codex's sandbox needs unprivileged user namespaces (bubblewrap), which
                # a root container does not have; the task only touches its own tmp dir.
                "--sandbox",
                "danger-full-access",
                "--output-last-message",
                str(last_message),
                "Create notes.txt containing 'turnstream was here', then print it.",
            ],
            cwd=work,
            env={**os.environ, "CODEX_HOME": str(home)},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=180,
        )
        requests = list(live.scripted.requests)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert (work / "notes.txt").read_text() == "turnstream was here\n"
    assert last_message.read_text().strip() == "notes.txt says: turnstream was here"
    assert len(requests) == 3
    # Codex decoded GET /v1/models and used what it says about the model
    assert "Model metadata" not in completed.stderr
    assert BASE_INSTRUCTIONS in json.dumps(requests[0].items)
    # Codex's own sub-agent tools arrive as a namespace; the model sees them flat.
    offered = {str(tool["name"]) for tool in requests[0].tools}
    assert "exec_command" in offered
    assert any(name.startswith("multi_agent_v1__") for name in offered)
    # every turn carried the whole history, tool outputs paired with their calls
    answered = {i.get("call_id") for i in requests[2].items if i["type"] == "function_call_output"}
    assert answered == {"call_write", "call_read"}


def test_ai_sdk_streams_a_tool_round_trip_through_turnstream(tmp_path: Path) -> None:
    node = _require_js_clients()
    with running_server(tmp_path / "turnstream.db") as live:
        assert live.scripted is not None
        live.scripted.push(
            [ToolCallDelta(0, "get_weather", None, '{"city": "Paris"}')],
            [_answer_with_last_output("Here is the weather: ")],
        )
        completed = subprocess.run(
            [node, str(AI_SDK_SCRIPT), "scripted"],
            cwd=JS_DIR,
            env={**os.environ, "TURNSTREAM_BASE_URL": live.base_url},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
        )
        requests = list(live.scripted.requests)
    assert completed.returncode == 0, completed.stderr[-3000:]
    seen = json.loads(completed.stdout.strip().splitlines()[-1])
    assert seen["executed"] == ["Paris"]
    assert seen["toolCalls"] == [{"name": "get_weather", "input": {"city": "Paris"}}]
    assert seen["steps"] == 2
    assert seen["finishReason"] == "stop"
    assert "18" in seen["text"]
    assert seen["streamed"] == seen["text"]
    assert len(requests) == 2
    assert requests[1].items[-1]["type"] == "function_call_output"
