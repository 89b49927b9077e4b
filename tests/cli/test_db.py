"""`turnstream db upgrade` and `turnstream db copy`, on both backends."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from tests.databases import BACKENDS, fresh_database_url, run_sync_on
from tests.livesrv import free_port
from turnstream.cli.main import app
from turnstream.storage import SQLiteStore
from turnstream.storage.migrations import head_revision

runner = CliRunner()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database_url(str(request.param), tmp_path) as url:
        yield url


def revision(db_url: str) -> list[str]:
    return asyncio.run(
        run_sync_on(
            db_url,
            lambda conn: list(
                conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars()
            ),
        )
    )


def test_db_upgrade_migrates_a_new_database_and_is_a_no_op_after(db_url: str) -> None:
    for _ in range(2):
        result = runner.invoke(app, ["db", "upgrade", "--db", db_url])
        assert result.exit_code == 0, result.output
        assert f"is at revision {head_revision()}" in result.output
    assert revision(db_url) == [head_revision()]


def test_db_upgrade_reads_turnstream_db(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TURNSTREAM_DB", db_url)
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert revision(db_url) == [head_revision()]


def test_db_upgrade_refuses_a_database_newer_than_the_code(db_url: str) -> None:
    assert runner.invoke(app, ["db", "upgrade", "--db", db_url]).exit_code == 0
    asyncio.run(
        run_sync_on(
            db_url,
            lambda conn: conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'")),
        )
    )

    result = runner.invoke(app, ["db", "upgrade", "--db", db_url])

    assert result.exit_code == 1
    assert "revision 9999, newer than this turnstream" in result.output


def test_db_copy_copies_and_then_refuses_to_copy_into_a_non_empty_target(
    db_url: str, tmp_path: Path
) -> None:
    source = tmp_path / "old.db"

    async def fill() -> None:
        store = SQLiteStore(source)
        await store.open()
        await store.create_conversation("conv_1", metadata={}, items=[], created_at=0)
        await store.close()

    asyncio.run(fill())

    first = runner.invoke(app, ["db", "copy", "--from", str(source), "--to", db_url])
    again = runner.invoke(app, ["db", "copy", "--from", str(source), "--to", db_url])

    assert first.exit_code == 0, first.output
    assert (
        "copied 0 responses, 0 response_input_items, 0 response_events, 1 conversations"
        in first.output
    )
    assert again.exit_code == 1
    assert "already holds conversations" in again.output


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_refuses_a_database_newer_than_the_code_in_one_line_before_uvicorn_starts(
    db_url: str, workers: str
) -> None:
    assert runner.invoke(app, ["db", "upgrade", "--db", db_url]).exit_code == 0
    asyncio.run(
        run_sync_on(
            db_url,
            lambda conn: conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'")),
        )
    )

    server = subprocess.run(
        [
            sys.executable,
            "-m",
            "turnstream.cli.main",
            "serve",
            "--db",
            db_url,
            "--no-local",
            "--port",
            str(free_port()),
            "--workers",
            workers,
        ],
        capture_output=True,
        text=True,
        timeout=180,  # a ceiling for a hang: a loaded machine imports slowly
    )

    assert server.returncode == 1, server.stderr
    lines = server.stderr.splitlines()
    assert len(lines) == 1, server.stderr  # no traceback, and uvicorn never started
    assert lines[0].startswith("turnstream: ")
    assert "revision 9999, newer than this turnstream" in lines[0]
