"""Several OS processes on one database: the lock and the migrations hold across them."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from tests.storage.conftest import OpenStore

WORKER = Path(__file__).with_name("_worker.py")
ROUNDS = 100
# several processes doing hundreds of committed rounds: the default ceiling (120 s)
# catches hangs, and a loaded machine needs longer than that without hanging
pytestmark = pytest.mark.timeout(400)


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait(process: subprocess.Popen[str]) -> str:
    # a ceiling for a hung worker, not a speed claim: a loaded machine is slow here
    out, err = process.communicate(timeout=240)
    assert process.returncode == 0, err
    return out


async def test_two_processes_racing_for_the_lock_never_hold_it_at_once(
    tmp_path: Path, db_url: str, open_store: OpenStore
) -> None:
    db = db_url
    store = await open_store()
    await store.create_conversation("conv_race", metadata={}, items=[], created_at=0)
    go = tmp_path / "go"
    names = ("p1", "p2")
    workers = [start("race", str(db), "conv_race", name, str(ROUNDS), str(go)) for name in names]
    # Both open their stores, then start together against a lease the test holds, and
    # race once each has been turned away by it: they contend on every machine.
    while not all((tmp_path / f"ready-{name}").exists() for name in names):
        assert all(w.poll() is None for w in workers), "a worker died before the race"
        await asyncio.sleep(0.01)
    assert await store.acquire_lock("conv_race", "the-test", ttl=60)
    go.touch()
    while not all((tmp_path / f"refused-{name}").exists() for name in names):
        assert all(w.poll() is None for w in workers), "a worker died before the race"
        await asyncio.sleep(0.01)
    await store.release_lock("conv_race", "the-test")
    attempts = [int(wait(w)) for w in workers]

    items = await store.all_items("conv_race")
    await store.close()

    markers = [item["content"][0]["text"].split() for item in items]
    assert len(markers) == 2 * 2 * ROUNDS
    # Every lease period is exactly "X start n" then "X end n": had both processes held
    # the lease at once, their markers would interleave.
    for start_marker, end_marker in zip(markers[::2], markers[1::2], strict=True):
        assert start_marker[1] == "start"
        assert end_marker[1] == "end"
        assert start_marker[0] == end_marker[0]
        assert start_marker[2] == end_marker[2]
    # Each was turned away by the test's lease before the race began.
    assert all(count > ROUNDS for count in attempts)


async def test_processes_opening_one_new_database_at_once_all_succeed(
    db_url: str, open_store: OpenStore
) -> None:
    openers = [start("open", db_url) for _ in range(4)]
    for opener in openers:
        await asyncio.to_thread(wait, opener)

    store = await open_store()  # the schema is there, at the newest revision
    await store.create_conversation("conv_1", metadata={}, items=[], created_at=0)
