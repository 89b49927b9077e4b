"""`--local-threads` (and `$TURNSTREAM_LOCAL_THREADS`) on `serve` and `chat`."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from turnstream.cli.main import app


@pytest.mark.parametrize("command", ["serve", "chat"])
def test_fewer_than_one_thread_is_a_usage_error(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--local-threads", "0", "--no-local"])
    assert result.exit_code == 2
    assert "--local-threads" in result.output


@pytest.mark.parametrize("command", ["serve", "chat"])
def test_the_environment_variable_is_read_and_checked_too(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--no-local"], env={"TURNSTREAM_LOCAL_THREADS": "0"})
    assert result.exit_code == 2
    assert "--local-threads" in result.output
