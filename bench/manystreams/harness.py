"""The harness of `bench/many_streams.py`: runs the generator against a target,
samples the server's CPU and memory meanwhile, and sums a run up."""

from __future__ import annotations

import argparse
import collections
import contextlib
import itertools
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
ENTRY = ROOT / "bench" / "many_streams.py"
"""The script the generator runs as (`--role client`)."""
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _proc_stat(pid: int) -> tuple[float, int]:
    """(CPU seconds, RSS bytes) of one process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK, int(fields[21]) * PAGE


def _workers(supervisor: int) -> list[int]:
    """The uvicorn worker processes under `supervisor` (not multiprocessing's helpers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(re.search(r"PPid:\s+(\d+)", status).group(1))  # type: ignore[union-attr]  # always there
        if ppid == supervisor and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


class Sampler:
    """Samples the server workers' RSS every 100 ms while a run goes."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.peak = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def rss(self) -> int:
        return sum(_proc_stat(pid)[1] for pid in self.pids)

    def cpu(self) -> float:
        return sum(_proc_stat(pid)[0] for pid in self.pids)

    def loop(self) -> None:
        while not self.stop.wait(0.1):
            self.peak = max(self.peak, self.rss())

    def __enter__(self) -> Sampler:
        self.peak = self.rss()
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_once(
    port: int,
    path: str,
    body: dict[str, Any],
    n: int,
    args: argparse.Namespace,
    server_pids: list[int],
    upstream_pid: int,
) -> dict[str, Any]:
    interval = args.interval_ms / 1000
    # a stream that takes 5x its nominal time plus 30 s is counted as an error
    timeout = args.chunks * interval * 5 + 30
    config = json.dumps([port, path, json.dumps(body), n, args.ramp, timeout])
    up_cpu = _proc_stat(upstream_pid)[0]
    sampler = Sampler(server_pids)
    rss_before = sampler.rss()
    server_cpu = sampler.cpu()
    with sampler:
        client = subprocess.run(
            [sys.executable, str(ENTRY), "--role", "client", "--role-config", config],
            capture_output=True,
            check=True,
            timeout=300,
        )
    server_cpu = sampler.cpu() - server_cpu
    out = json.loads(client.stdout)
    records = out["records"]
    errors: list[str] = []
    gaps: list[float] = []
    lateness: list[float] = []
    for r in records:
        if r["status"] != 200:
            errors.append(f"status {r['status']}: {r['error']}")
        elif r["error"]:
            errors.append(r["error"])
        elif not r["terminal"]:
            errors.append("no terminal event")
        elif len(r["arrivals"]) != args.chunks:
            errors.append(f"{len(r['arrivals'])} content events of {args.chunks}")
        arrivals = r["arrivals"]
        gaps += [b - a for a, b in itertools.pairwise(arrivals)]
        lateness += r["lateness"]
    firsts = [r["first_event"] for r in records if r["first_event"] is not None]
    first_content = [r["arrivals"][0] for r in records if r["arrivals"]]
    totals = [r["total"] for r in records if r["status"] == 200]
    chunks_seen = sum(len(r["arrivals"]) for r in records)
    return {
        "errors": len(errors),
        "error_samples": sorted(set(errors))[:5],
        "ttfe_p50_ms": _pct(firsts, 0.5) * 1000,
        "ttfe_p99_ms": _pct(firsts, 0.99) * 1000,
        "first_content_p50_ms": _pct(first_content, 0.5) * 1000,
        "first_content_p99_ms": _pct(first_content, 0.99) * 1000,
        "gap_p50_ms": _pct(gaps, 0.5) * 1000,
        "gap_p99_ms": _pct(gaps, 0.99) * 1000,
        "gap_max_ms": max(gaps, default=float("nan")) * 1000,
        "gap_excess_p99_ms": (_pct(gaps, 0.99) - interval) * 1000,
        "lateness_p50_ms": _pct(lateness, 0.5) * 1000,
        "lateness_p99_ms": _pct(lateness, 0.99) * 1000,
        "total_p50_s": _pct(totals, 0.5),
        "total_p99_s": _pct(totals, 0.99),
        "nominal_s": args.chunks * interval,
        "client_cpu_s": out["cpu_s"],
        "upstream_cpu_s": _proc_stat(upstream_pid)[0] - up_cpu,
        "server_cpu_s": server_cpu,
        "server_cpu_per_chunk_ms": server_cpu / max(chunks_seen, 1) * 1000 if server_pids else 0.0,
        "server_rss_before_mib": rss_before / 2**20,
        "server_rss_peak_mib": sampler.peak / 2**20,
        "server_rss_per_stream_kib": (sampler.peak - rss_before) / n / 1024,
    }


_MEDIAN_KEYS = (
    "errors",
    "ttfe_p50_ms",
    "ttfe_p99_ms",
    "first_content_p50_ms",
    "first_content_p99_ms",
    "gap_p50_ms",
    "gap_p99_ms",
    "gap_max_ms",
    "gap_excess_p99_ms",
    "lateness_p50_ms",
    "lateness_p99_ms",
    "total_p50_s",
    "total_p99_s",
    "client_cpu_s",
    "upstream_cpu_s",
    "server_cpu_s",
    "server_cpu_per_chunk_ms",
    "server_rss_before_mib",
    "server_rss_peak_mib",
    "server_rss_per_stream_kib",
)


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    row = {key: statistics.median(r[key] for r in runs) for key in _MEDIAN_KEYS}
    row["errors_total"] = sum(r["errors"] for r in runs)
    row["error_samples"] = sorted({e for r in runs for e in r["error_samples"]})[:5]
    row["runs"] = runs
    return row


@contextlib.contextmanager
def database(backend: str, tmp: Path) -> Iterator[tuple[Path, str | None]]:
    if backend == "sqlite":
        yield tmp / "bench.db", None
    else:
        from tests.databases import fresh_postgres_url

        schema = fresh_postgres_url()
        url = schema.__enter__()
        try:
            yield tmp / "bench.db", url
        finally:
            try:
                schema.__exit__(None, None, None)
            except Exception as exc:  # the figures matter more than the cleanup
                print(f"  could not drop the bench schema ({exc!r}); drop it by hand", flush=True)


def bench_backend(
    backend: str, upstream: int, upstream_pid: int, args: argparse.Namespace
) -> dict[str, Any]:
    from tests.livesrv import spawn_server

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        config = tmp / "models.toml"
        config.write_text(
            f'[[models]]\nname = "bridged"\nbase_url = "http://127.0.0.1:{upstream}/v1"\n',
            encoding="utf-8",
        )
        with database(backend, tmp) as (db_path, db_url):
            server = spawn_server(
                db_path, config, "--workers", str(args.workers), *args.server_arg, db_url=db_url
            )
            # --workers 1 serves from the process itself
            pids = _workers(server.process.pid) or [server.process.pid]
            try:
                variants = {
                    "direct": (
                        upstream,
                        "/v1/chat/completions",
                        {
                            "model": "fake",
                            "stream": True,
                            "messages": [{"role": "user", "content": "go"}],
                        },
                        [],
                    ),
                    "turnstream": (
                        server.port,
                        "/v1/responses",
                        {"model": "bridged", "input": "go", "stream": True, "store": True},
                        pids,
                    ),
                }
                # warm-up: every worker imports its lazy modules and opens its pools
                for port, path, body, server_pids in variants.values():
                    run_once(port, path, body, 20, args, server_pids, upstream_pid)
                rows = []
                for n in args.streams:
                    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
                    for _ in range(args.rounds):
                        for name, (port, path, body, server_pids) in variants.items():
                            got = run_once(port, path, body, n, args, server_pids, upstream_pid)
                            runs[name].append(got)
                            print(
                                f"  {backend} n={n} {name}: errors {got['errors']} "
                                f"gap p99 {got['gap_p99_ms']:.0f} ms, first content p99 "
                                f"{got['first_content_p99_ms']:.0f} ms, total p50 "
                                f"{got['total_p50_s']:.2f} s",
                                flush=True,
                            )
                    rows.append({"streams": n, **{k: summarise(v) for k, v in runs.items()}})
            finally:
                server.stop()
                # the workers may outlive the supervisor a moment, holding database locks
                deadline = time.monotonic() + 15
                while any(Path(f"/proc/{pid}").exists() for pid in pids):
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.1)
                log_errors = _log_errors(server.log_path)
    for line in log_errors:
        print(f"  server log: {line}")
    return {
        "backend": backend,
        "rows": rows,
        "server_args": args.server_arg,
        "server_log_errors": log_errors,
    }


def _log_errors(path: Path | None) -> list[str]:
    """The distinct exception lines of the server's log, most frequent first."""
    if path is None or not path.exists():
        return []
    lines = path.read_text(errors="replace").splitlines()
    found = collections.Counter(
        line.strip()[:200]
        for line in lines
        if re.match(r"^[\w.]+(Error|Exception|Timeout)\b", line.strip())
    )
    return [f"{count}x {line}" for line, count in found.most_common(5)]
