"""What the Chat Completions bridge adds: turnstream in front of a fast upstream.

A fake OpenAI-compatible upstream (its own process) streams 500 chunks as fast as it
can. The same stream is read (a) directly from the upstream, (b) through
`turnstream serve` with `store=true` and (c) with `store=false`, with 1 and 50
concurrent streams, alternating the three in each round so machine noise hits them
alike. Prints time to first event, total time, the ratios and the added milliseconds,
and writes `bench/results/bridge_overhead.json`.

    .venv/bin/python bench/bridge_overhead.py [--chunks 500] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.livesrv import spawn_server  # noqa: E402

from turnstream.sse import Decoder  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "bridge_overhead.json"

UPSTREAM = """
import sys, time
from tests.providers.fake_chat_upstream import FakeChatUpstream, FakeReply, text_chunk, finish_chunk, usage_chunk
n = int(sys.argv[1])
chunks = [text_chunk(f"w{i} ") for i in range(n)] + [finish_chunk(), usage_chunk(10, n)]
fake = FakeChatUpstream(default_reply=lambda body: FakeReply(chunks=chunks))
fake.start()
print(fake.port, flush=True)
while True:
    time.sleep(3600)
"""


async def one(
    http: httpx.AsyncClient, url: str, body: dict[str, object]
) -> tuple[float, float, int]:
    start = time.perf_counter()
    first = 0.0
    events = 0
    decoder = Decoder()
    async with http.stream("POST", url, json=body) as resp:
        resp.raise_for_status()
        async for raw in resp.aiter_raw():
            got = decoder.feed(raw)
            if got and not first:
                first = time.perf_counter() - start
            events += len(got)
    return first, time.perf_counter() - start, events


async def level(upstream: str, server: str, concurrency: int, rounds: int) -> dict[str, object]:
    variants = {
        "direct": (
            f"{upstream}/chat/completions",
            {"model": "fake", "messages": [{"role": "user", "content": "go"}], "stream": True},
        ),
        "turnstream_store": (
            f"{server}/responses",
            {"model": "bridged", "input": "go", "stream": True, "store": True},
        ),
        "turnstream_nostore": (
            f"{server}/responses",
            {"model": "bridged", "input": "go", "stream": True, "store": False},
        ),
    }
    samples: dict[str, list[tuple[float, float, int]]] = {name: [] for name in variants}
    limits = httpx.Limits(
        max_connections=concurrency + 5, max_keepalive_connections=concurrency + 5
    )
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        for url, body in variants.values():  # warm-up
            await one(http, url, body)
        for _ in range(rounds):
            for name, (url, body) in variants.items():
                samples[name] += await asyncio.gather(
                    *(one(http, url, body) for _ in range(concurrency))
                )
    row: dict[str, object] = {"concurrency": concurrency}
    for name, got in samples.items():
        row[name] = {
            "ttfe_ms": statistics.median(s[0] for s in got) * 1000,
            "total_ms": statistics.median(s[1] for s in got) * 1000,
            "events": got[0][2],
        }
    direct = row["direct"]
    assert isinstance(direct, dict)
    for name in ("turnstream_store", "turnstream_nostore"):
        through = row[name]
        assert isinstance(through, dict)
        through["total_ratio"] = through["total_ms"] / direct["total_ms"]
        through["added_ttfe_ms"] = through["ttfe_ms"] - direct["ttfe_ms"]
        through["added_total_ms"] = through["total_ms"] - direct["total_ms"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chunks", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 50])
    args = parser.parse_args()
    fake = subprocess.Popen(
        [sys.executable, "-c", UPSTREAM, str(args.chunks)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert fake.stdout is not None
        upstream = f"http://127.0.0.1:{fake.stdout.readline().strip()}/v1"
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "models.toml"
            config.write_text(
                f'[[models]]\nname = "bridged"\nbase_url = "{upstream}"\n', encoding="utf-8"
            )
            server = spawn_server(Path(tmp) / "bench.db", config)
            try:
                rows = [
                    asyncio.run(level(upstream, server.base_url, c, args.rounds))
                    for c in args.concurrency
                ]
            finally:
                server.stop()
    finally:
        fake.kill()
        fake.wait()
    print(
        f"{'streams':>7} {'variant':>20} {'TTFE ms':>9} {'total ms':>9} {'ratio':>6} {'added ms':>9}"
    )
    for row in rows:
        for name in ("direct", "turnstream_store", "turnstream_nostore"):
            v = row[name]
            assert isinstance(v, dict)
            print(
                f"{row['concurrency']:>7} {name:>20} {v['ttfe_ms']:>9.1f} {v['total_ms']:>9.1f} "
                f"{v.get('total_ratio', 1.0):>6.2f} {v.get('added_total_ms', 0.0):>9.1f}"
            )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "bench": "bridge_overhead",
                "chunks": args.chunks,
                "machine": platform.machine(),
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
