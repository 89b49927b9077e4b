"""`turnstream chat -m` and `--json`: output streams and exit codes, as a script sees them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.cli.chat_process import ROOT, chat_args, chat_env
from tests.livesrv import running_server


def run_chat(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *chat_args(*args)],
        env=chat_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=str(ROOT),
    )


def test_one_shot_prints_the_answer_to_stdout_and_tool_activity_to_stderr(
    tmp_path: Path,
) -> None:
    done = run_chat(
        tmp_path, "--no-local", "--model", "echo", "-m", 'calculate {"expression": "6*7"}'
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Tool results: 6*7 = 42\n"
    assert '⚙ calculate {"expression":"6*7"}' in done.stderr
    assert "→ calculate: 6*7 = 42" in done.stderr
    assert "conversation: conv_" in done.stderr


def test_json_mode_prints_one_event_per_line_ending_with_run_completed(tmp_path: Path) -> None:
    done = run_chat(
        tmp_path, "--no-local", "--model", "echo", "--json", "-m", 'calculate {"expression": "1+2"}'
    )
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    kinds = [e["type"] for e in events]
    assert kinds[0] == "turn_started"
    assert kinds[-1] == "run_completed"
    order = ["tool_call_started", "tool_call_ready", "tool_result", "text_done", "run_completed"]
    assert [k for k in kinds if k in order] == order
    result = next(e for e in events if e["type"] == "tool_result")
    assert result["output"] == "1+2 = 3"
    assert result["is_error"] is False
    assert events[-1]["final_output"] == "Tool results: 1+2 = 3"
    assert events[-1]["conversation"].startswith("conv_")


def test_an_unreachable_base_url_exits_non_zero_with_a_clear_message(tmp_path: Path) -> None:
    done = run_chat(tmp_path, "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "-m", "hi")
    assert done.returncode == 1
    assert "cannot reach http://127.0.0.1:9/v1" in done.stderr
    assert done.stdout == ""


def test_json_mode_failure_is_an_error_line_and_a_non_zero_exit(tmp_path: Path) -> None:
    with running_server(tmp_path / "s.db") as live:
        done = run_chat(
            tmp_path, "--base-url", live.base_url, "--model", "echo", "--json", "-m", "hi"
        )
        assert done.returncode == 0, done.stderr
    failed = run_chat(tmp_path, "--base-url", live.base_url, "--model", "echo", "--json", "-m", "x")
    assert failed.returncode == 1
    assert "cannot reach" in failed.stderr


def test_an_unknown_model_exits_non_zero_and_lists_the_served_ones(tmp_path: Path) -> None:
    done = run_chat(tmp_path, "--no-local", "--model", "nope", "-m", "hi")
    assert done.returncode == 1
    assert "does not serve the model 'nope'" in done.stderr
    assert "echo" in done.stderr


def test_a_remote_server_is_used_through_base_url(tmp_path: Path) -> None:
    with running_server(tmp_path / "s.db") as live:
        done = run_chat(
            tmp_path, "--base-url", live.base_url, "--model", "echo", "-m", "current_time please"
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Tool results: ")
    assert "UTC" in done.stdout


def test_user_tools_load_from_module_attr(tmp_path: Path) -> None:
    done = run_chat(
        tmp_path,
        "--no-local",
        "--model",
        "echo",
        "--no-builtin-tools",
        "--tools",
        "tests.cli.sample_tools:shout",
        "-m",
        'shout {"text": "hey"}',
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Tool results: HEY\n"


def test_bad_tools_and_option_combinations_are_usage_errors(tmp_path: Path) -> None:
    not_tool = run_chat(tmp_path, "--tools", "tests.cli.sample_tools:NOT_A_TOOL", "-m", "x")
    assert not_tool.returncode == 2
    assert "is a int, not a Tool" in not_tool.stderr
    missing = run_chat(tmp_path, "--tools", "no_such_module:x", "-m", "x")
    assert missing.returncode == 2
    assert "cannot import no_such_module" in missing.stderr
    no_message = run_chat(tmp_path, "--json")
    assert no_message.returncode == 2
    assert "--json needs -m" in no_message.stderr
