"""`turnstream chat` driven in a real pseudo-terminal, on the echo test model."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.livesrv import running_server
from tests.runtime.server_taps import HoldTerminalEvent

ECHO = ["--no-local", "--model", "echo"]
SAMPLE_TOOLS = "tests.cli.sample_tools:TOOLS"


def test_a_question_that_needs_a_tool_shows_the_tool_card_and_the_answer(terminal: Any) -> None:
    term = terminal(*ECHO)
    term.prompt()
    term.ask('calculate {"expression": "6*7"}')
    term.expect("⚙ calculate")
    term.expect(re.escape('{"expression": "6*7"}'))
    term.expect(re.escape("6*7 = 42"))
    term.expect("done in")
    term.expect(re.escape("Tool results: 6*7 = 42"))
    term.prompt()
    assert term.exit() == 0


def test_ctrl_c_mid_answer_stops_it_and_the_next_question_works(
    terminal: Any, slow_config: Path
) -> None:
    term = terminal("--no-local", "--config", str(slow_config), "--model", "echo-slow")
    term.prompt()
    term.ask("please convert_units")
    # echo answers by quoting the tool's (long) error message, one word per 0.15 s
    term.expect("Tool results:")
    term.child.sendintr()
    term.expect("stopped")
    term.prompt()
    before = term.child.before
    assert "or K" not in before  # the answer never reached its end
    term.ask('calculate {"expression": "1+1"}')
    term.expect(re.escape("Tool results: 1+1 = 2"), timeout=30)
    term.prompt()
    assert term.exit() == 0


def test_ctrl_c_while_a_tool_runs_keeps_the_conversation_usable(
    terminal: Any, slow_config: Path
) -> None:
    term = terminal("--no-local", "--model", "echo", "--tools", SAMPLE_TOOLS)
    term.prompt()
    term.ask('slow_lookup {"key": "k"}')
    term.expect("looking it up")  # the tool itself has started
    term.child.sendintr()
    term.expect("stopped")
    term.prompt()
    # the cancelled call's output is owed and sent first; the server accepts the turn
    term.ask('shout {"text": "still here"}')
    term.expect(["STILL HERE", r"error: [^\r\n]*"])  # an error fails now, not at the timeout
    assert term.child.after == "STILL HERE", term.child.after
    term.prompt()
    term.ask("/history")
    term.expect("slow_lookup")
    term.expect("cancelled")
    term.prompt()
    assert term.exit() == 0


def test_resume_lists_earlier_conversations_and_restores_one(terminal: Any) -> None:
    first = terminal(*ECHO)
    first.prompt()
    first.ask('calculate {"expression": "2**5"}')
    first.expect(re.escape("Tool results: 2**5 = 32"))
    first.prompt()
    assert first.exit() == 0

    second = terminal(*ECHO)
    second.prompt()
    second.ask("/resume")
    second.expect(re.escape('calculate {"expression": "2**5"}'))
    second.expect(r"resume which\?")
    second.ask("1")
    second.expect("resumed conv_")
    second.expect(re.escape("2**5 = 32"))  # the history so far is shown
    second.prompt()
    second.ask("/history")
    second.expect(re.escape("Tool results: 2**5 = 32"))
    second.prompt()
    assert second.exit() == 0


def test_the_slash_commands_answer(terminal: Any) -> None:
    term = terminal(*ECHO)
    term.prompt()
    term.ask("/tools")
    term.expect("calculate")
    term.expect("current_time")
    term.expect("convert_units")
    term.prompt()
    term.ask("/model nonexistent")
    term.expect("does not serve 'nonexistent'")
    term.prompt()
    term.ask("/history")
    term.expect("nothing yet")
    term.prompt()
    term.ask("/resume conv_doesnotexist")
    term.expect("does not exist")
    term.prompt()
    term.ask("/new")
    term.expect("new conversation")
    term.prompt()
    assert term.exit() == 0


def test_ctrl_c_after_the_server_stored_a_call_but_before_its_end_was_read_keeps_it_usable(
    terminal: Any, tmp_path: Path
) -> None:
    holder: list[HoldTerminalEvent] = []

    def wrap(app: Any) -> HoldTerminalEvent:
        holder.append(HoldTerminalEvent(app))
        return holder[0]

    with running_server(tmp_path / "server.db", wrap=wrap) as live:
        try:
            term = terminal("--base-url", live.base_url, "--model", "echo", "--tools", SAMPLE_TOOLS)
            term.prompt()
            term.ask('slow_lookup {"key": "k"}')
            term.expect("running")
            term.child.sendintr()
            term.expect("stopped")
            holder[0].release.set()
            term.prompt()
            term.ask('shout {"text": "still here"}')
            term.expect(["STILL HERE", r"error: [^\r\n]*"])
            assert term.child.after == "STILL HERE", term.child.after
        finally:
            holder[0].release.set()
