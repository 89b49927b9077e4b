"""`turnstream chat -m` waits for the embedded model to load instead of failing.

The server answers `model_loading` once a request has waited `load_wait` seconds:
right for a client that can retry, but a new user's first one-shot question on a slow
machine would fail on it. Here the model loads far longer than `load_wait` (a fake
engine, so no real model is needed) and the question still gets its answer.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import turnstream.providers.local as local
from turnstream.cli.main import app


class SlowEngine:
    """Answers every question with "42"; built only after `load_seconds`."""

    def handle_chat_completions(self, prompt: dict[str, Any], callback: Any = None) -> Any:
        return self._answer(callback, {"delta": {"content": "42"}}, {"delta": {}})

    def handle_completions(self, prompt: dict[str, Any], callback: Any = None) -> Any:
        return self._answer(callback, {"text": "42"}, {"text": ""})

    @staticmethod
    def _answer(callback: Any, text: dict[str, Any], end: dict[str, Any]) -> Any:
        if callback is None:
            return {"choices": []}
        for part, finish in ((text, None), (end, "stop")):
            if callback({"choices": [{"index": 0, "finish_reason": finish, **part}]}):
                return None
        return None


def test_a_one_shot_question_waits_for_a_slow_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = threading.Event()
    real = local.LocalProvider

    def slow_provider(**kwargs: Any) -> local.LocalProvider:
        def build(path: Path) -> SlowEngine:
            time.sleep(1.0)  # twenty times the server's own wait below
            built.set()
            return SlowEngine()

        return real(
            engine_factory=build,
            model_path=lambda size: tmp_path / "model.gguf",
            load_wait=0.05,
            **kwargs,
        )

    monkeypatch.setattr(local, "LocalProvider", slow_provider)
    monkeypatch.setattr(local, "local_model_available", lambda: True)
    result = CliRunner().invoke(
        app, ["chat", "--db", str(tmp_path / "chat.db"), "-m", "What is 40 plus 2?"]
    )
    assert result.exit_code == 0, result.output
    assert built.is_set()
    assert "42" in result.stdout
    assert "loading the model local" in result.stderr


def _recording_provider(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, built: list[str]
) -> list[dict[str, Any]]:
    """Make the server's LocalProvider a fake-engine one that records each model it
    builds (by size) and the keyword arguments it was given."""
    real = local.LocalProvider
    given: list[dict[str, Any]] = []

    def provider(**kwargs: Any) -> local.LocalProvider:
        given.append(kwargs)

        def build(path: Path) -> SlowEngine:
            built.append(path.stem)
            return SlowEngine()

        return real(
            engine_factory=build, model_path=lambda size: tmp_path / f"{size}.gguf", **kwargs
        )

    monkeypatch.setattr(local, "LocalProvider", provider)
    monkeypatch.setattr(local, "local_model_available", lambda: True)
    return given


def test_the_chat_loads_only_its_own_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The other model's load used to start once the first was ready, beside the
    # user's first question, and slow it down on a 2-core machine.
    built: list[str] = []
    given = _recording_provider(tmp_path, monkeypatch, built)
    result = CliRunner().invoke(
        app, ["chat", "--db", str(tmp_path / "chat.db"), "-m", "What is 40 plus 2?"]
    )
    assert result.exit_code == 0, result.output
    assert "42" in result.stdout
    assert [g["preload"] for g in given] == [("local",)]
    assert built == ["1.5b"]

    built.clear()
    result = CliRunner().invoke(
        app,
        ["chat", "--db", str(tmp_path / "chat.db"), "--model", "local-small", "-m", "And 2 more?"],
    )
    assert result.exit_code == 0, result.output
    assert built == ["0.5b"]


def test_switching_to_the_other_model_begins_its_load_and_shows_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from turnstream.cli._embedded import EmbeddedServer
    from turnstream.cli.chat import _load_state
    from turnstream.server.settings import Settings

    built: list[str] = []
    _recording_provider(tmp_path, monkeypatch, built)
    server = EmbeddedServer(Settings(db_path=tmp_path / "chat.db", local_preload=("local",)))
    server.start()
    try:
        deadline = time.monotonic() + 20
        while _load_state(server, "local") != (True, 1.0) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _load_state(server, "local") == (True, 1.0)
        assert built == ["1.5b"], "the other model waits for its first use"
        # what the terminal's `/model local-small` progress bar reads: not ready,
        # and asking begins the load (on the server's loop, from this thread)
        assert _load_state(server, "local-small") == (False, 0.0)
        while _load_state(server, "local-small") != (True, 1.0) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _load_state(server, "local-small") == (True, 1.0)
        assert built == ["1.5b", "0.5b"]
        assert _load_state(server, "echo") == (True, 1.0), "echo does not load"
        assert _load_state(None, "local") is None, "nor does a server that is not embedded"
    finally:
        server.stop()
