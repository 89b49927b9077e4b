"""The bridge at a model's pace: turnstream vs the upstream direct, side by side.

A fake Chat Completions upstream (`bench/paced_upstream.py`, its own process) streams
100 one-word chunks, one every 10 ms (a model at 100 tokens/s). The same answer is
read directly from it and through `turnstream serve` (`store=true`, its own process,
a fresh SQLite file unless `--db-url`), at each concurrency level, alternating the two
block by block (and which goes first) so machine noise hits both alike.

Per target and level it reports the medians of time to first event (TTFE), time to
first text delta (TTFT) and total, and the server's CPU per request and per chunk (from
`/proc/<pid>/stat`, turnstream's process during its blocks only). It prints a table,
writes `bench/results/bridge_paced.json` and renders `bench/results/bridge_paced.png`
(TTFE and total against concurrency, direct and turnstream, and any `--compare`).

    PYTHONPATH=src .venv/bin/python bench/bridge_paced.py [--concurrency 1 10 25 50]
        [--rounds 4] [--c1-streams 8] [--profile py-spy.txt]

`--profile FILE` runs the server under `py-spy record` (raw, collapsed stacks) for the
whole run; `bench/profile_top.py FILE` summarises it.

`--floor translate` (and/or `--floor relay`) adds `bench/floor_bridge.py` as a target:
the least a Python bridge can cost on this machine (raw asyncio protocols, one
`json.loads` and one `json.dumps` per chunk, or none), so that turnstream's CPU per
chunk can be read against what the machine charges for the wake-ups and the writes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from turnstream.sse import Decoder  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "bridge_paced.json"
_TICK = os.sysconf("SC_CLK_TCK")
_LISTENING = re.compile(rb"Uvicorn running on http://[0-9.]+:(\d+)")


def cpu_seconds(pid: int) -> float:
    """User + system CPU so far of a process and its live children (serve's workers)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    total = (int(fields[11]) + int(fields[12])) / _TICK
    with contextlib.suppress(OSError):
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            with contextlib.suppress(OSError):
                total += cpu_seconds(int(child))
    return total


@dataclass
class Sample:
    ttfe: float
    ttft: float
    total: float
    events: int


@dataclass
class Target:
    name: str
    url: str
    body: dict[str, Any]
    pid: int
    samples: dict[int, list[Sample]] = field(default_factory=dict)
    cpu: dict[int, float] = field(default_factory=dict)
    errors: int = 0


def _is_text(event_name: str | None, data: str) -> bool:
    if event_name is not None:
        return event_name == "response.output_text.delta"
    if not data.startswith("{"):
        return False
    choices = json.loads(data).get("choices") or [{}]
    return bool((choices[0].get("delta") or {}).get("content"))


async def one(http: httpx.AsyncClient, target: Target) -> Sample:
    """One stream; a connection that fails before its first byte is retried once (the
    stream's times start again) and counted in `target.errors`."""
    try:
        return await _one(http, target)
    except httpx.TransportError:
        target.errors += 1
        return await _one(http, target)


async def _one(http: httpx.AsyncClient, target: Target) -> Sample:
    start = time.perf_counter()
    first = text = 0.0
    events = 0
    decoder = Decoder()
    async with http.stream("POST", target.url, json=target.body) as resp:
        resp.raise_for_status()
        async for raw in resp.aiter_raw():
            got = decoder.feed(raw)
            if not got:
                continue
            now = time.perf_counter() - start
            first = first or now
            if not text and any(_is_text(e.event, e.data) for e in got):
                text = now
            events += len(got)
    return Sample(first, text, time.perf_counter() - start, events)


async def block(http: httpx.AsyncClient, target: Target, concurrency: int, streams: int) -> None:
    """`streams` streams, `concurrency` at a time (c=1: one after the other)."""
    before = cpu_seconds(target.pid)
    got: list[Sample] = []
    for _ in range(max(streams // concurrency, 1)):
        got += await asyncio.gather(*(one(http, target) for _ in range(concurrency)))
    target.cpu[concurrency] = target.cpu.get(concurrency, 0.0) + cpu_seconds(target.pid) - before
    target.samples.setdefault(concurrency, []).extend(got)


async def measure(targets: list[Target], levels: list[int], rounds: int, c1_streams: int) -> None:
    limits = httpx.Limits(
        max_connections=max(levels) + 5, max_keepalive_connections=max(levels) + 5
    )
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        for target in targets:  # warm-up: connections, imports, the first SQLite writes
            await asyncio.gather(*(one(http, target) for _ in range(min(max(levels), 10))))
        for level in levels:
            streams = c1_streams if level == 1 else level
            for r in range(rounds):
                for target in targets if r % 2 == 0 else targets[::-1]:
                    await block(http, target, level, streams)


def summarise(target: Target, level: int, chunks: int) -> dict[str, Any]:
    got = target.samples[level]
    return {
        "streams": len(got),
        "ttfe_ms": statistics.median(s.ttfe for s in got) * 1000,
        "ttft_ms": statistics.median(s.ttft for s in got) * 1000,
        "total_ms": statistics.median(s.total for s in got) * 1000,
        "total_p90_ms": statistics.quantiles([s.total for s in got], n=10)[-1] * 1000
        if len(got) > 1
        else got[0].total * 1000,
        "events": got[0].events,
        "server_cpu_ms_per_request": target.cpu[level] / len(got) * 1000,
        "server_cpu_ms_per_chunk": target.cpu[level] / len(got) / chunks * 1000,
    }


def spawn_upstream(chunks: int, delay_ms: float) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "bench" / "paced_upstream.py"),
            "--chunks",
            str(chunks),
            "--delay-ms",
            str(delay_ms),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    return process, f"http://127.0.0.1:{process.stdout.readline().strip()}/v1"


@contextlib.contextmanager
def spawn_floor(upstream: str, mode: str) -> Any:
    """`bench/floor_bridge.py` in `mode` on a free port; yields (base URL, pid)."""
    script = str(ROOT / "bench" / "floor_bridge.py")
    process = subprocess.Popen(
        [sys.executable, script, "--upstream", upstream, "--mode", mode],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    try:
        yield f"http://127.0.0.1:{process.stdout.readline().strip()}", process.pid
    finally:
        process.kill()
        process.wait()


@contextlib.contextmanager
def spawn_turnstream(
    tmp: Path,
    upstream: str,
    db_url: str | None,
    profile: Path | None,
    src: Path = ROOT / "src",
    workers: int = 1,
    profile_rate: int = 250,
) -> Any:
    """`turnstream serve` (from the sources in `src`) on a free port; yields (base URL,
    pid of the server process)."""
    tmp.mkdir(exist_ok=True)
    config = tmp / "models.toml"
    config.write_text(f'[[models]]\nname = "bridged"\nbase_url = "{upstream}"\n', encoding="utf-8")
    serve = [sys.executable, "-m", "turnstream.cli.main", "serve", "--port", "0", "--no-local",
             "--config", str(config), "--db", db_url or str(tmp / "bench.db"),
             "--workers", str(workers)]  # fmt: skip
    # default log level (info): the per-request lines are part of what a server costs
    env = {**os.environ, "PYTHONPATH": str(src)}
    args = serve
    if profile is not None:
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        args = [py_spy, "record", "--format", "raw", "--rate", str(profile_rate), "--nonblocking", "--gil",
                "-o", str(profile), "--", *serve]  # fmt: skip
    log_path = tmp / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log, env=env)
    try:
        port = None
        deadline = time.monotonic() + 60
        while port is None:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(log_path.read_text(errors="replace"))
            if found := _LISTENING.search(log_path.read_bytes()):
                port = int(found.group(1))
            time.sleep(0.05)
        pid = process.pid
        if profile is not None:  # py-spy's child is the server
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            pid = int(children[0])
        yield f"http://127.0.0.1:{port}/v1", pid
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def plot(rows: list[dict[str, Any]], out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = [row["concurrency"] for row in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in (
        (axes[0], "ttfe_ms", "time to first event (ms, median)"),
        (axes[1], "total_ms", "total (ms, median)"),
    ):
        names = [name for name in rows[0] if name != "concurrency"]
        for name in names:
            style = {"direct": "o--", "turnstream": "s-"}.get(name, "^:")
            ax.plot(levels, [row[name][key] for row in rows], style, label=name)
        ax.set_xlabel("concurrent streams")
        ax.set_ylabel(label)
        ax.set_xticks(levels)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chunks", type=int, default=100)
    parser.add_argument("--delay-ms", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 10, 25, 50])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--c1-streams", type=int, default=8, help="streams per c=1 block")
    parser.add_argument("--db-url", help="a database URL instead of a fresh SQLite file")
    parser.add_argument("--profile", type=Path, help="py-spy raw output for the server")
    parser.add_argument("--profile-rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument(
        "--compare",
        metavar="NAME=SRC",
        action="append",
        default=[],
        help="also measure a turnstream from another source tree (e.g. main=/work/main/src)",
    )
    parser.add_argument(
        "--floor",
        choices=("translate", "relay"),
        action="append",
        default=[],
        help="also measure bench/floor_bridge.py in this mode: the least a Python bridge costs",
    )
    parser.add_argument("--src", type=Path, default=ROOT / "src", help="turnstream's sources")
    parser.add_argument("--workers", type=int, default=1, help="turnstream serve --workers")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    upstream_process, upstream = spawn_upstream(args.chunks, args.delay_ms)
    try:
        with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
            server, pid = stack.enter_context(
                spawn_turnstream(
                    Path(tmp),
                    upstream,
                    args.db_url,
                    args.profile,
                    args.src,
                    args.workers,
                    args.profile_rate,
                )
            )
            chat = {"model": "bench", "stream": True, "messages": [{"role": "user", "content": "go"}],
                    "stream_options": {"include_usage": True}}  # fmt: skip
            targets = [
                Target("direct", f"{upstream}/chat/completions", chat, upstream_process.pid),
                Target(
                    "turnstream",
                    f"{server}/responses",
                    {"model": "bridged", "input": "go", "stream": True, "store": True},
                    pid,
                ),
            ]
            for spec in args.compare:
                name, _, src = spec.partition("=")
                other, other_pid = stack.enter_context(
                    spawn_turnstream(Path(tmp) / name, upstream, args.db_url, None, Path(src))
                )
                body = {"model": "bridged", "input": "go", "stream": True, "store": True}
                targets.append(Target(name, f"{other}/responses", body, other_pid))
            for mode in args.floor:
                floor = stack.enter_context(spawn_floor(upstream, mode))
                targets.append(Target(f"floor-{mode}", f"{floor[0]}/v1/responses", {}, floor[1]))
            runner = asyncio.run
            with contextlib.suppress(ImportError):
                import uvloop

                runner = uvloop.run
            runner(measure(targets, args.concurrency, args.rounds, args.c1_streams))
    finally:
        upstream_process.kill()
        upstream_process.wait()
    rows = []
    names = [t.name for t in targets]
    for level in args.concurrency:
        row: dict[str, Any] = {"concurrency": level}
        for target in targets:
            row[target.name] = summarise(target, level, args.chunks)
        direct = row["direct"]
        for name in names[1:]:
            ours = row[name]
            ours["total_ratio"] = ours["total_ms"] / direct["total_ms"]
            ours["ttfe_ratio"] = ours["ttfe_ms"] / direct["ttfe_ms"]
            ours["added_ttft_ms"] = ours["ttft_ms"] - direct["ttft_ms"]
        rows.append(row)
    print(f"{'c':>3} {'target':>10} {'TTFE':>7} {'TTFT':>7} {'total':>7} {'p90':>7} "
          f"{'xtotal':>6} {'xTTFE':>6} {'+TTFT':>6} {'cpu/req':>8} {'cpu/chunk':>9}")  # fmt: skip
    for row in rows:
        for name in names:
            v = row[name]
            print(
                f"{row['concurrency']:>3} {name:>10.10} {v['ttfe_ms']:>7.1f} {v['ttft_ms']:>7.1f} "
                f"{v['total_ms']:>7.1f} {v['total_p90_ms']:>7.1f} {v.get('total_ratio', 1):>6.3f} "
                f"{v.get('ttfe_ratio', 1):>6.2f} {v.get('added_ttft_ms', 0):>6.1f} "
                f"{v['server_cpu_ms_per_request']:>8.2f} {v['server_cpu_ms_per_chunk']:>9.3f}"
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "bench": "bridge_paced",
        "chunks": args.chunks,
        "delay_ms": args.delay_ms,
        "rounds": args.rounds,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "retried_after_transport_errors": {t.name: t.errors for t in targets},
        "store": "postgresql" if args.db_url else "sqlite",
        "workers": args.workers,
        "note": "direct's cpu is the fake upstream's; turnstream's is the server process's",
        "rows": rows,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    png = args.out.with_suffix(".png")
    plot(rows, png, f"{args.chunks} chunks at {1000 / args.delay_ms:g}/s per stream, stored")
    print(f"wrote {args.out} and {png}")


if __name__ == "__main__":
    main()
