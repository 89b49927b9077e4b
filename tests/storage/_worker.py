"""A separate OS process on a shared database (run by test_processes.py).

python _worker.py open DB_URL
    open (creating/migrating) the store, then close it.
python _worker.py race DB_URL CONV NAME ROUNDS GO_FILE
    open the store, touch ready-NAME next to GO_FILE, wait for GO_FILE, then
    ROUNDS times: spin on acquire_lock (touching refused-NAME when turned away), append a "<NAME> start" item
    (finish_turn, keeping the lease), yield, append "<NAME> end" and release
    (finish_turn). Prints the number of acquire attempts.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from turnstream.storage import create_store


def marker(name: str, what: str, round_: int) -> dict[str, object]:
    return {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": f"{name} {what} {round_}"}],
    }


async def race(db: str, conv: str, name: str, rounds: int, go_file: Path) -> int:
    store = create_store(db)
    await store.open()
    try:
        go_file.with_name(f"ready-{name}").touch()
        await asyncio.to_thread(wait_for, go_file)
        attempts = 0
        for round_ in range(rounds):
            while True:
                attempts += 1
                if await store.acquire_lock(conv, name, ttl=30):
                    break
                # tell the test this process has met a held lease (its barrier)
                go_file.with_name(f"refused-{name}").touch()
                await asyncio.sleep(0.001)  # a client backing off, not a hot spin
            for what, release in (("start", False), ("end", True)):
                await store.finish_turn(
                    conv,
                    name,
                    response_id="resp_none",
                    response={},
                    items=[marker(name, what, round_)],
                    store_response=False,
                    release=release,
                )
                # Hold the lease a little while between the two, as a real turn does.
                await asyncio.sleep(0.0005)
        return attempts
    finally:
        await store.close()


def wait_for(go_file: Path) -> None:
    # A file barrier, so both processes start racing at the same moment.
    while not go_file.exists():
        time.sleep(0.005)


async def open_only(db: str) -> None:
    store = create_store(db)
    await store.open()
    await store.close()


if __name__ == "__main__":
    mode, db, *rest = sys.argv[1:]
    if mode == "open":
        asyncio.run(open_only(db))
    else:
        conv, name, rounds, go_file = rest
        print(asyncio.run(race(db, conv, name, int(rounds), Path(go_file))))
