"""Replicas: 100 concurrent conversations doing tool rounds, on 1 or 2 server processes.

Runs, side by side in one run (the machine is shared and noisy):

- `sqlite-1`: one `turnstream serve` on a fresh SQLite file;
- `postgres-1`: one on a fresh PostgreSQL schema;
- `postgres-2`: two on one fresh PostgreSQL schema, each conversation's requests
  alternating between them as a load balancer would.

Every conversation does `--rounds` tool rounds with the echo model: a streamed
request that calls a tool, then a streamed request carrying the tool's output. Each
stream is read to its end before the next request, so a `conversation_locked`
answer would be a lock wait the server caused; they are retried (honouring
`retry-after-ms`) and counted. Prints requests/s, p50/p99 time to first event and
the lock waits, and writes `bench/results/replicas.json`.

    .venv/bin/python bench/replicas.py [--conversations 100] [--rounds 5]

PostgreSQL is the machine's (`$TURNSTREAM_TEST_POSTGRES`, default
`postgresql://root@127.0.0.1:5432/test`); each configuration gets its own schema,
dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.databases import fresh_postgres_url
from tests.livesrv import ServerProcess, spawn_server

from turnstream.sse import Decoder

RESULTS = Path(__file__).resolve().parent / "results" / "replicas.json"
TOOLS = [
    {
        "type": "function",
        "name": "lookup",
        "description": "Look something up.",
        "parameters": {
            "type": "object",
            "properties": {"q": {"type": "string"}},
            "required": ["q"],
        },
    }
]


@dataclass
class Tally:
    first_event: list[float] = field(default_factory=list)
    requests: int = 0
    lock_waits: int = 0
    lock_wait_s: float = 0.0
    errors: int = 0
    reconnects: int = 0
    """Requests retried because a pooled keep-alive connection was gone (the server
    closes idle ones after 5 s, and a loaded machine leaves some idle that long)."""


async def stream_once(
    http: httpx.AsyncClient, base_url: str, body: dict[str, Any], tally: Tally
) -> dict[str, Any]:
    """One streamed request to its terminal event (retrying `conversation_locked`);
    returns the final Response."""
    while True:
        began = time.perf_counter()
        try:
            result = await _stream(http, base_url, body, tally, began)
        except httpx.TransportError:
            tally.reconnects += 1
            continue
        if result is None:
            continue  # conversation_locked: waited, try again
        return result


async def _stream(
    http: httpx.AsyncClient, base_url: str, body: dict[str, Any], tally: Tally, began: float
) -> dict[str, Any] | None:
    async with http.stream("POST", f"{base_url}/responses", json=body) as resp:
        if resp.status_code == 400:
            error = json.loads(await resp.aread())["error"]
            if error.get("code") == "conversation_locked":
                wait = int(resp.headers.get("retry-after-ms", "50")) / 1000
                tally.lock_waits += 1
                tally.lock_wait_s += wait
                await asyncio.sleep(wait)
                return None
        resp.raise_for_status()
        decoder = Decoder()
        final: dict[str, Any] | None = None
        first = True
        async for chunk in resp.aiter_raw():
            for event in decoder.feed(chunk):
                if first:
                    tally.first_event.append(time.perf_counter() - began)
                    first = False
                data = json.loads(event.data)
                if data["type"] in ("response.completed", "response.failed"):
                    final = data["response"]
    tally.requests += 1
    if final is None or final["status"] != "completed":
        tally.errors += 1
        return final or {}
    return final


async def conversation(
    http: httpx.AsyncClient, replicas: list[str], rounds: int, index: int, tally: Tally
) -> None:
    created = await http.post(f"{replicas[0]}/conversations", json={})
    conversation_id = created.json()["id"]
    turn = index  # spread the first requests over the replicas too
    for round_number in range(rounds):
        ask = {
            "model": "echo",
            "input": f"lookup round {round_number}",
            "tools": TOOLS,
            "conversation": conversation_id,
            "stream": True,
        }
        final = await stream_once(http, replicas[turn % len(replicas)], ask, tally)
        turn += 1
        calls = [item for item in final.get("output", []) if item["type"] == "function_call"]
        if not calls:
            continue
        answer = {
            "model": "echo",
            "input": [
                {"type": "function_call_output", "call_id": calls[0]["call_id"], "output": "42"}
            ],
            "tools": TOOLS,
            "conversation": conversation_id,
            "stream": True,
        }
        await stream_once(http, replicas[turn % len(replicas)], answer, tally)
        turn += 1


async def measure(replicas: list[str], conversations: int, rounds: int) -> dict[str, Any]:
    # a new connection per request: a kept-alive one that the server closes as idle
    # (after 5 s, which a loaded machine reaches) fails a non-idempotent POST
    limits = httpx.Limits(max_connections=conversations + 10, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        warm = Tally()
        await asyncio.gather(*(conversation(http, replicas, 1, i, warm) for i in range(4)))
        tally = Tally()
        began = time.perf_counter()
        await asyncio.gather(
            *(conversation(http, replicas, rounds, i, tally) for i in range(conversations))
        )
        wall = time.perf_counter() - began
    ordered = sorted(tally.first_event)
    return {
        "replicas": len(replicas),
        "conversations": conversations,
        "rounds": rounds,
        "requests": tally.requests,
        "errors": tally.errors,
        "requests_per_second": tally.requests / wall,
        "ttfe_ms_p50": statistics.median(ordered) * 1000,
        "ttfe_ms_p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
        "lock_waits": tally.lock_waits,
        "lock_wait_s": tally.lock_wait_s,
        "reconnects": tally.reconnects,
        "wall_s": wall,
    }


@contextlib.contextmanager
def servers(kind: str, count: int, tmp: Path) -> Iterator[list[str]]:
    spawned: list[ServerProcess] = []
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(fresh_postgres_url()) if kind == "postgres" else None
        try:
            for n in range(count):
                spawned.append(spawn_server(tmp / f"{kind}-{count}-{n}.db", None, db_url=url))
            yield [server.base_url for server in spawned]
        finally:
            for server in spawned:
                server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--conversations", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, kind, count in (
            ("sqlite-1", "sqlite", 1),
            ("postgres-1", "postgres", 1),
            ("postgres-2", "postgres", 2),
        ):
            with servers(kind, count, Path(tmp)) as replicas:
                row = asyncio.run(measure(replicas, args.conversations, args.rounds))
            rows.append({"setup": name, **row})
            print(name, "done", flush=True)
    print(
        f"{'setup':>11} {'requests':>9} {'req/s':>8} {'TTFE p50 ms':>12} "
        f"{'TTFE p99 ms':>12} {'lock waits':>11} {'errors':>7}"
    )
    for row in rows:
        print(
            f"{row['setup']:>11} {row['requests']:>9} {row['requests_per_second']:>8.1f} "
            f"{row['ttfe_ms_p50']:>12.1f} {row['ttfe_ms_p99']:>12.1f} "
            f"{row['lock_waits']:>11} {row['errors']:>7}"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "bench": "replicas",
                "machine": platform.machine(),
                "cpus": os.cpu_count(),
                "load_average_at_end": os.getloadavg(),
                "python": platform.python_version(),
                "rows": rows,
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
