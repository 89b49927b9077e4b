"""Run `turnstream chat` as a real process: in a pseudo-terminal (pexpect) or piped."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.chat_process import ROOT, SLOW_TOML, chat_args, chat_env


@pytest.fixture
def slow_config(tmp_path: Path) -> Path:
    path = tmp_path / "models.toml"
    path.write_text(SLOW_TOML, encoding="utf-8")
    return path


class Terminal:
    """`turnstream chat` in a pty; closed (and reaped) by the fixture."""

    def __init__(self, tmp_path: Path, *args: str, timeout: float = 60) -> None:
        import pexpect

        self.child: Any = pexpect.spawn(
            sys.executable,
            chat_args(*args),
            env=chat_env(tmp_path),
            encoding="utf-8",
            timeout=timeout,
            dimensions=(40, 110),
            cwd=str(ROOT),
        )
        self.log = (tmp_path / "pty.log").open("a", encoding="utf-8")
        self.child.logfile_read = self.log

    def prompt(self) -> None:
        self.child.expect("you›")

    def ask(self, text: str) -> None:
        self.child.sendline(text)

    def expect(self, pattern: str | list[str], timeout: float = -1) -> None:
        self.child.expect(pattern, timeout=timeout)

    def exit(self) -> int:
        import pexpect

        self.child.sendline("/exit")
        self.child.expect(pexpect.EOF, timeout=20)
        self.child.close()
        status: int = self.child.exitstatus
        return status

    def close(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)
        self.child.close()
        self.log.close()


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Any]:
    pytest.importorskip("pexpect")
    opened: list[Terminal] = []

    def open_terminal(*args: str, timeout: float = 60) -> Terminal:
        term = Terminal(tmp_path, *args, timeout=timeout)
        opened.append(term)
        return term

    yield open_terminal
    for term in opened:
        term.close()
