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
