"""How much of a streaming server's time goes to CPython's garbage collector.

Starts `turnstream serve` (from `--src`, beside the paced upstream of
`bridge_paced.py`) with a probe that times every collection (`gc.callbacks`), runs
`--blocks` blocks of `--concurrency` paced streams, and prints the collections and
their time per generation during those blocks only, per request. Compare two source
trees by running it twice (e.g. `--src /work/main/src`).

    PYTHONPATH=src .venv/bin/python bench/gc_pauses.py [--src src] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bridge_paced as paced

# the probe: a sitecustomize that the server process imports at start-up
PROBE = """
import atexit, gc, json, os, signal, time
_stats, _began = {}, [0.0]
def _timed(phase, info):
    if phase == "start":
        _began[0] = time.perf_counter()
        return
    n, t = _stats.get(info["generation"], (0, 0.0))
    _stats[info["generation"]] = (n + 1, t + time.perf_counter() - _began[0])
gc.callbacks.append(_timed)
signal.signal(signal.SIGUSR1, lambda *_: _stats.clear())
def _write():
    with open(os.environ["TURNSTREAM_GC_STATS"], "w") as out:
        json.dump(_stats, out)
signal.signal(signal.SIGUSR2, lambda *_: _write())
"""


async def streams(target: paced.Target, concurrency: int, blocks: int) -> None:
    limits = httpx.Limits(max_connections=concurrency + 5)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        for _ in range(blocks):
            await asyncio.gather(*(paced.one(http, target) for _ in range(concurrency)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--src", type=Path, default=paced.ROOT / "src")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--blocks", type=int, default=3)
    args = parser.parse_args()
    upstream_process, upstream = paced.spawn_upstream(100, 10.0)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            probe = Path(tmp) / "probe"
            probe.mkdir()
            (probe / "sitecustomize.py").write_text(PROBE, encoding="utf-8")
            stats_file = Path(tmp) / "gc.json"
            os.environ["TURNSTREAM_GC_STATS"] = str(stats_file)
            src = Path(f"{args.src.resolve()}{os.pathsep}{probe}")
            with paced.spawn_turnstream(Path(tmp) / "server", upstream, None, None, src) as (
                base,
                pid,
            ):
                body = {"model": "bridged", "input": "go", "stream": True, "store": True}
                target = paced.Target("turnstream", f"{base}/responses", body, pid)
                asyncio.run(streams(target, min(args.concurrency, 10), 1))  # warm-up
                os.kill(pid, signal.SIGUSR1)
                time.sleep(0.2)
                cpu = paced.cpu_seconds(pid)
                asyncio.run(streams(target, args.concurrency, args.blocks))
                cpu = paced.cpu_seconds(pid) - cpu
                os.kill(pid, signal.SIGUSR2)
                time.sleep(0.5)
                stats = json.loads(stats_file.read_text())
    finally:
        upstream_process.kill()
        upstream_process.wait()
    requests = args.concurrency * args.blocks
    print(f"{requests} requests, server CPU {cpu / requests * 1000:.1f} ms/request")
    total = 0.0
    for generation in sorted(stats):
        count, seconds = stats[generation]
        total += seconds
        print(f"  gen {generation}: {count} collections, {seconds * 1000:.1f} ms")
    print(f"  GC: {total / requests * 1000:.2f} ms/request")


if __name__ == "__main__":
    main()
