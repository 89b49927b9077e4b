"""`turnstream serve --workers N`: N worker processes behind one port, either backend."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tests.databases import BACKENDS, fresh_database_url, run_sync_on
from tests.livesrv import spawn_server
from turnstream.cli._apps import settings_from_json, settings_to_json
from turnstream.server.limits import Limits
from turnstream.server.settings import FaultSettings, PromptWarmup, Settings
from turnstream.storage.schema import store_owners


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database_url(request.param, tmp_path) as url:
        yield url


def owners(conn: Connection) -> int:
    return int(conn.scalar(sa.select(sa.func.count()).select_from(store_owners)) or 0)


async def count_owners(db_url: str) -> int:
    return await run_sync_on(db_url, owners)


def test_two_workers_serve_one_port_each_with_its_own_store(db_url: str, tmp_path: Path) -> None:
    import asyncio

    server = spawn_server(tmp_path / "w.db", None, "--workers", "2", db_url=db_url)
    try:
        # each worker process opens its own store: two live owners in the database
        deadline = time.monotonic() + 30
        while asyncio.run(count_owners(db_url)) < 2:
            assert time.monotonic() < deadline, "the second worker never opened its store"
            time.sleep(0.1)
        conversation = httpx.post(f"{server.base_url}/conversations", json={}).json()["id"]
        for i in range(6):
            answer = httpx.post(
                f"{server.base_url}/responses",
                json={"model": "echo", "input": f"turn {i}", "conversation": conversation},
            )
            assert answer.status_code == 200, answer.text
        items = httpx.get(
            f"{server.base_url}/conversations/{conversation}/items", params={"limit": 100}
        ).json()["data"]
        assert len(items) == 12
    finally:
        server.stop()


def test_settings_survive_the_trip_to_the_workers_through_the_environment(
    tmp_path: Path,
) -> None:
    settings = Settings(
        db_path=tmp_path / "x.db",
        db_url="postgresql://u@h:1/d",
        lease_ttl=2.5,
        event_ttl=7.0,
        lock_release="after_body",
        config_path=tmp_path / "models.toml",
        enable_local_model=False,
        faults=FaultSettings(rate_limit=0.5, seed=3),
        limits=Limits(max_body_bytes=1024, requests_per_minute=60),
        local_warmup=PromptWarmup(instructions="hi", tools=[{"type": "function", "name": "f"}]),
        local_threads=1,
    )
    assert settings_from_json(settings_to_json(settings)) == settings
