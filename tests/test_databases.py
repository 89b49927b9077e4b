"""tests/databases.py: without PostgreSQL its cases skip with one reason, or fail under CI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ONE_PG_CASE = (
    "tests/storage/test_events.py::test_waiting_with_nothing_appended_ends_empty_after_the_wait"
)


def run_without_postgres(ci: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    # port 1 on loopback: nothing listens there, so the connection is refused at once
    env["TURNSTREAM_TEST_POSTGRES"] = "postgresql://root@127.0.0.1:1/test"
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rsfE",
            "-p",
            "no:cacheprovider",
            f"{ONE_PG_CASE}[sqlite]",
            f"{ONE_PG_CASE}[postgresql]",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_without_postgresql_its_cases_skip_with_the_reason() -> None:
    result = run_without_postgres(ci=None)
    assert result.returncode == 0, result.stdout
    assert "1 passed, 1 skipped" in result.stdout
    assert "PostgreSQL is not reachable at postgresql://root@127.0.0.1:1/test" in result.stdout


def test_under_ci_a_missing_postgresql_fails_instead() -> None:
    result = run_without_postgres(ci="true")
    assert result.returncode == 1, result.stdout
    assert "1 passed, 1 error" in result.stdout  # failed in its fixture: an error
    assert "CI must run the PostgreSQL tests" in result.stdout


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("1", True), ("YES", True), ("", False), ("0", False), ("false", False)],
)
def test_the_ci_variable_is_read_the_way_ci_services_set_it(
    value: str, expected: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.databases import under_ci

    monkeypatch.setenv("CI", value)
    assert under_ci() is expected
