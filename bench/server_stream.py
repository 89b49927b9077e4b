"""Server streaming throughput: 1,000-delta responses through a real uvicorn.

Starts `turnstream serve` (echo model, a fresh SQLite file) as one server process,
then streams from it with 1, 10 and 100 concurrent clients, reading the raw SSE bytes.
Prints time to first event and events per second, and writes
`bench/results/server_stream.json`.

    .venv/bin/python bench/server_stream.py [--deltas 1000] [--concurrency 1 10 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.livesrv import spawn_server

from turnstream.sse import Decoder

RESULTS = Path(__file__).resolve().parent / "results" / "server_stream.json"


async def one_stream(http: httpx.AsyncClient, body: dict[str, object]) -> tuple[float, int, float]:
    start = time.perf_counter()
    first = 0.0
    count = 0
    decoder = Decoder()
    async with http.stream("POST", "/responses", json=body) as resp:
        resp.raise_for_status()
        async for chunk in resp.aiter_raw():
            events = decoder.feed(chunk)
            if events and not first:
                first = time.perf_counter() - start
            count += len(events)
    return first, count, time.perf_counter() - start


async def run_level(base_url: str, concurrency: int, deltas: int, store: bool) -> dict[str, float]:
    words = " ".join(f"w{i}" for i in range(deltas))
    body = {"model": "echo", "input": words, "stream": True, "store": store}
    limits = httpx.Limits(
        max_connections=concurrency + 5, max_keepalive_connections=concurrency + 5
    )
    async with httpx.AsyncClient(base_url=base_url, timeout=120, limits=limits) as http:
        await one_stream(http, body)  # warm-up: connections, caches
        start = time.perf_counter()
        results = await asyncio.gather(*(one_stream(http, body) for _ in range(concurrency)))
        wall = time.perf_counter() - start
    events = sum(r[1] for r in results)
    return {
        "concurrency": concurrency,
        "store": store,
        "events_per_stream": results[0][1],
        "ttfe_ms_median": statistics.median(r[0] for r in results) * 1000,
        "ttfe_ms_max": max(r[0] for r in results) * 1000,
        "events_per_second": events / wall,
        "wall_s": wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--deltas", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 10, 100])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = spawn_server(Path(tmp) / "bench.db")
        try:
            rows = [
                asyncio.run(run_level(server.base_url, c, args.deltas, True))
                for c in args.concurrency
            ]
        finally:
            server.stop()
    print(
        f"{'streams':>8} {'events/stream':>14} {'TTFE med ms':>12} {'TTFE max ms':>12} {'events/s':>10}"
    )
    for row in rows:
        print(
            f"{row['concurrency']:>8} {row['events_per_stream']:>14} {row['ttfe_ms_median']:>12.1f} {row['ttfe_ms_max']:>12.1f} {row['events_per_second']:>10.0f}"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "bench": "server_stream",
                "deltas": args.deltas,
                "machine": platform.machine(),
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
