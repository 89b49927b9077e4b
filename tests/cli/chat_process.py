"""How the CLI tests start `turnstream chat`: its arguments and a clean environment."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ROOT", "SLOW_TOML", "chat_args", "chat_env"]

ROOT = Path(__file__).resolve().parents[2]
SLOW_TOML = """
[[models]]
name = "echo-slow"
provider = "echo"
delay = 0.15
"""


def chat_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment without the user's OpenAI settings, with its data in `tmp_path`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env.update(
        TURNSTREAM_DB=str(tmp_path / "chat.db"),
        XDG_DATA_HOME=str(tmp_path / "data"),
        # this checkout's code (and `tests.cli.sample_tools`), whatever the venv points at
        PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
        TERM="xterm-256color",
        COLUMNS="100",
        **extra,
    )
    return env


def chat_args(*args: str) -> list[str]:
    return ["-m", "turnstream.cli.main", "chat", *args]
