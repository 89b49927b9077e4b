"""Many streams: N concurrent paced streams through one `turnstream serve --workers 2`.

A fake Chat Completions upstream (its own process) answers every request with
`--chunks` content chunks, one every `--interval-ms` (10 chunks/s by default, a slow
model's pace). Each content chunk carries the monotonic time it was *scheduled* for
(`@<microseconds>;`), so a client can tell how late it arrived. For each N in
`--streams`, N streams are opened at once, first straight to the upstream (`direct`,
the floor: it shows whether the load generator and the upstream keep their pace on
this machine) and then through turnstream (`turnstream`, stored), alternating the
two in every round so machine noise hits them alike. Prints, per N and variant
(medians over `--rounds`):

- errors: a non-200 answer, a failed or missing terminal event, a lost connection
  or a content chunk missing;
- time to first event and to the first content chunk (from the request's start);
- the gap between two content events of a stream, and its excess over the pace
  (`gap - interval`): the issue's "p99 gap under 50 ms" is read as that excess, since
  the pace itself puts `interval` between two events;
- lateness: an event's arrival minus the time the upstream scheduled it;
- total time against the nominal `chunks x interval`;
- server: the RSS of its worker processes before the run and at its peak, their
  difference per open stream, and their CPU per content chunk;
- the CPU the load generator and the upstream used, to show what the server competed
  with.

Writes `bench/results/many_streams.json` and `bench/results/many_streams.png`
(`--output` for another name; `--plot-only` re-renders the PNG from a JSON).

    .venv/bin/python bench/many_streams.py [--streams 100 250 500 1000] [--rounds 3]
        [--backend sqlite postgresql]

The load generator and the upstream are lean raw-asyncio (uvloop) programs, not
httpx/starlette: a naive Python client and upstream could not keep a 3-second
stream's pace for 1,000 streams on 2 cores. PostgreSQL is the machine's
(`$TURNSTREAM_TEST_POSTGRES`), on a fresh schema dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import itertools
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "many_streams.json"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


# -- the upstream ----------------------------------------------------------------------


class UpstreamConnection(asyncio.Protocol):
    """One HTTP/1.1 connection to the fake upstream; answers one chat request at a time
    with a paced SSE stream driven by loop timers (no task per stream)."""

    def __init__(self, chunks: int, interval: float) -> None:
        self.chunks = chunks
        self.interval = interval
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.busy = False
        self.close_after = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while not self.busy:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1").lower()
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip() == "content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            self.close_after = "\r\nconnection: close" in head
            self.answer(head.split(" ", 2)[1], body)

    def answer(self, path: str, body: bytes) -> None:
        assert self.transport is not None
        if not path.endswith("/chat/completions"):
            data = b'{"object":"list","data":[]}'
            self.transport.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                % (len(data), data)
            )
            return
        request = json.loads(body)
        self.busy = True
        self.usage = bool((request.get("stream_options") or {}).get("include_usage"))
        self.head = (
            b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":0,'
            b'"model":"fake","choices":[{"index":0,"delta":'
        )
        self.transport.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
            + _chunk(self.head + b'{"role":"assistant","content":""},"finish_reason":null}]}\n\n')
        )
        self.start = time.monotonic()
        self.sent = 0
        asyncio.get_running_loop().call_at(self.start, self.tick)

    def tick(self) -> None:
        if self.transport is None or self.transport.is_closing():
            self.busy = False
            return
        due = self.start + self.sent * self.interval
        payload = b'{"content":"@%d;"},"finish_reason":null}]}\n\n' % int(due * 1e6)
        out = _chunk(self.head + payload)
        self.sent += 1
        if self.sent < self.chunks:
            asyncio.get_running_loop().call_at(self.start + self.sent * self.interval, self.tick)
        else:
            out += _chunk(self.head + b'{},"finish_reason":"stop"}]}\n\n')
            if self.usage:
                out += _chunk(
                    b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":0,'
                    b'"model":"fake","choices":[],"usage":{"prompt_tokens":1,'
                    b'"completion_tokens":%d,"total_tokens":%d}}\n\n'
                    % (self.chunks, self.chunks + 1)
                )
            out += _chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n"
            self.busy = False
        self.transport.write(out)
        if not self.busy and self.close_after:
            self.transport.close()
        elif not self.busy and self.buffer:
            self.data_received(b"")


def _chunk(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


async def serve_upstream(chunks: int, interval: float) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: UpstreamConnection(chunks, interval), "127.0.0.1", 0, backlog=4096
    )
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


# -- the load generator ----------------------------------------------------------------

_CONTENT = re.compile(rb'"(?:content|delta)":"@(\d+);')
_TERMINAL = (b"data: [DONE]", b'"type":"response.completed"')
_CODE = re.compile(rb'"code":"([^"]*)"')
_FAILED = (b'"type":"response.failed"', b'"type":"response.incomplete"', b'"type":"error"')


class ClientStream(asyncio.Protocol):
    """One streamed request read with a minimal HTTP/1.1 + SSE parser; records when each
    event and content chunk arrives."""

    def __init__(self, request: bytes, done: asyncio.Future[dict[str, Any]]) -> None:
        self.request = request
        self.done = done
        self.started = time.monotonic()
        self.raw = b""
        self.head_done = False
        self.chunked = False
        self.chunk_left = 0  # bytes of the current chunk still to come (+2 for its CRLF)
        self.sse = b""
        self.status = 0
        self.transport: asyncio.BaseTransport | None = None
        self.first_event: float | None = None
        self.arrivals: list[float] = []
        self.lateness: list[float] = []
        self.terminal = False
        self.error: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        transport.write(self.request)  # type: ignore[attr-defined]  # a uvloop TCPTransport

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        self.raw += data
        if not self.head_done:
            end = self.raw.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.raw[:end].lower()
            self.status = int(head.split(b" ", 2)[1])
            self.chunked = b"transfer-encoding: chunked" in head
            self.raw = self.raw[end + 4 :]
            self.head_done = True
        self.sse += self.body()
        while (end := self.sse.find(b"\n\n")) >= 0:
            event = self.sse[:end]
            self.sse = self.sse[end + 2 :]
            if self.first_event is None:
                self.first_event = now
            if found := _CONTENT.search(event):
                self.arrivals.append(now)
                self.lateness.append(now - int(found.group(1)) / 1e6)
            elif any(marker in event for marker in _TERMINAL):
                self.terminal = True
            elif any(marker in event for marker in _FAILED):
                code = _CODE.search(event)
                self.error = f"failed: {code.group(1).decode() if code else event[:200]!r}"

    def body(self) -> bytes:
        """Takes what `raw` holds of the body, without the chunked framing."""
        if self.chunked:
            parts = []
            while self.raw:
                if self.chunk_left == 0:
                    end = self.raw.find(b"\r\n")
                    if end < 0:
                        break
                    size = int(self.raw[:end].split(b";")[0], 16)
                    self.raw = self.raw[end + 2 :]
                    if size == 0:
                        break
                    self.chunk_left = size + 2
                before = self.chunk_left
                take = self.raw[:before]
                self.raw = self.raw[len(take) :]
                self.chunk_left = before - len(take)
                parts.append(take[: max(0, before - 2)])  # not the chunk's closing CRLF
            return b"".join(parts)
        body, self.raw = self.raw, b""
        return body

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None and self.error is None:
            self.error = f"connection lost: {exc!r}"
        self.finish()

    def finish(self) -> None:
        if self.done.done():
            return
        self.done.set_result(
            {
                "status": self.status,
                "error": self.error,
                "terminal": self.terminal,
                "first_event": None
                if self.first_event is None
                else self.first_event - self.started,
                "arrivals": [t - self.started for t in self.arrivals],
                "lateness": self.lateness,
                "total": time.monotonic() - self.started,
            }
        )


async def generate(port: int, path: str, body: bytes, n: int, ramp: float, limit_s: float) -> None:
    """Opens `n` streams (spread over `ramp` seconds), waits for all, prints the
    records as JSON."""
    loop = asyncio.get_running_loop()
    request = (
        b"POST %s HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        b"accept: text/event-stream\r\nconnection: close\r\ncontent-length: %d\r\n\r\n%s"
        % (path.encode(), len(body), body)
    )
    begin = time.monotonic()
    deadline = begin + ramp + limit_s

    async def one(i: int) -> dict[str, Any]:
        await asyncio.sleep(begin + ramp * i / n - time.monotonic())
        done: asyncio.Future[dict[str, Any]] = loop.create_future()
        try:
            _, stream = await loop.create_connection(
                lambda: ClientStream(request, done), "127.0.0.1", port
            )
        except OSError as exc:
            return {
                "status": 0,
                "error": f"connect: {exc!r}",
                "terminal": False,
                "first_event": None,
                "arrivals": [],
                "lateness": [],
                "total": 0.0,
            }
        try:
            async with asyncio.timeout(deadline - time.monotonic()):
                return await asyncio.shield(done)
        except TimeoutError:
            stream.error = stream.error or "timed out"
            stream.finish()
            stream.transport.close()  # type: ignore[attr-defined]  # a uvloop TCPTransport
            return done.result()

    cpu = time.process_time()
    records = await asyncio.gather(*(one(i) for i in range(n)))
    json.dump({"records": records, "cpu_s": time.process_time() - cpu}, sys.stdout)


# -- the harness -----------------------------------------------------------------------


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
            [sys.executable, __file__, "--role", "client", "--role-config", config],
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


def print_table(result: dict[str, Any]) -> None:
    print(f"\n{result['backend']}: medians over rounds (gap excess = gap p99 - interval)")
    print(
        f"{'N':>5} {'variant':>10} {'err':>4} {'TTFE p50':>9} {'1st p99':>8} {'gap p50':>8} "
        f"{'gap p99':>8} {'excess':>7} {'late p99':>9} {'total':>6} {'cpu/chunk':>9} "
        f"{'RSS MiB':>13} {'KiB/strm':>8} {'gen+up cpu':>10}"
    )
    for row in result["rows"]:
        for name in ("direct", "turnstream"):
            v = row[name]
            rss = (
                f"{v['server_rss_before_mib']:.0f}->{v['server_rss_peak_mib']:.0f}"
                if name == "turnstream"
                else "-"
            )
            per = f"{v['server_rss_per_stream_kib']:.0f}" if name == "turnstream" else "-"
            cpu = f"{v['server_cpu_per_chunk_ms']:.3f}" if name == "turnstream" else "-"
            print(
                f"{row['streams']:>5} {name:>10} {v['errors_total']:>4} {v['ttfe_p50_ms']:>8.0f}m "
                f"{v['first_content_p99_ms']:>7.0f}m {v['gap_p50_ms']:>7.0f}m "
                f"{v['gap_p99_ms']:>7.0f}m {v['gap_excess_p99_ms']:>6.0f}m "
                f"{v['lateness_p99_ms']:>8.0f}m {v['total_p50_s']:>5.2f}s {cpu:>9} {rss:>13} "
                f"{per:>8} {v['client_cpu_s'] + v['upstream_cpu_s']:>9.1f}s"
            )
            for sample in v["error_samples"]:
                print(f"{'':>17} error: {sample}")


def plot(results: list[dict[str, Any]], interval_ms: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for result in results:
        for name, style in (("direct", "--"), ("turnstream", "-")):
            label = (
                f"{name} ({result['backend']})"
                if name == "turnstream"
                else f"direct ({result['backend']} run)"
            )
            ns = [row["streams"] for row in result["rows"]]
            axes[0].plot(
                ns,
                [row[name]["gap_excess_p99_ms"] for row in result["rows"]],
                style,
                marker="o",
                label=label,
            )
            axes[1].plot(
                ns,
                [row[name]["first_content_p99_ms"] for row in result["rows"]],
                style,
                marker="o",
                label=label,
            )
            axes[2].plot(
                ns,
                [row[name]["ttfe_p50_ms"] for row in result["rows"]],
                style,
                marker="o",
                label=label,
            )
    axes[0].axhline(50, color="grey", linewidth=0.8)
    axes[0].set_title(f"p99 gap beyond the {interval_ms:.0f} ms pace (goal < 50 ms)")
    axes[1].set_title("p99 time to first content chunk")
    axes[2].set_title("median time to first event")
    for ax in axes[1:]:
        ax.set_yscale("log")  # direct and turnstream are orders of magnitude apart
    for ax in axes:
        ax.set_xlabel("concurrent streams")
        ax.set_ylabel("ms")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, nargs="+", default=[100, 250, 500, 1000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--chunks", type=int, default=30)
    parser.add_argument("--interval-ms", type=float, default=100.0)
    parser.add_argument("--ramp", type=float, default=0.0, help="seconds over which streams open")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--backend", nargs="+", default=["sqlite"], choices=["sqlite", "postgresql"]
    )
    parser.add_argument(
        "--output", type=Path, default=RESULTS, help="the JSON; the PNG goes beside it"
    )
    parser.add_argument(
        "--server-arg",
        action="append",
        default=[],
        help="an extra `turnstream serve` argument (repeat; e.g. --server-arg=--db-pool-size=40)",
    )
    parser.add_argument("--plot-only", action="store_true", help="re-render the PNG from --output")
    parser.add_argument("--role", choices=["bench", "upstream", "client"], default="bench")
    parser.add_argument("--role-config", help=argparse.SUPPRESS)
    args = parser.parse_args()

    import uvloop

    if args.role == "upstream":
        uvloop.run(serve_upstream(args.chunks, args.interval_ms / 1000))
        return
    if args.role == "client":
        port, path, body, n, ramp, timeout = json.loads(args.role_config)
        uvloop.run(generate(port, path, body.encode(), n, ramp, timeout))
        return

    if args.plot_only:
        saved = json.loads(args.output.read_text(encoding="utf-8"))
        plot(saved["results"], saved["interval_ms"], args.output.with_suffix(".png"))
        return
    # every stream holds up to three sockets on this machine; the children inherit this
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    sys.path.insert(0, str(ROOT))
    upstream = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--role",
            "upstream",
            "--chunks",
            str(args.chunks),
            "--interval-ms",
            str(args.interval_ms),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert upstream.stdout is not None
        port = int(upstream.stdout.readline())
        results = [bench_backend(b, port, upstream.pid, args) for b in args.backend]
    finally:
        upstream.kill()
        upstream.wait()
    for result in results:
        print_table(result)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {
                "bench": "many_streams",
                "chunks": args.chunks,
                "interval_ms": args.interval_ms,
                "ramp_s": args.ramp,
                "workers": args.workers,
                "rounds": args.rounds,
                "machine": platform.machine(),
                "cpus": os.cpu_count(),
                "results": results,
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    plot(results, args.interval_ms, args.output.with_suffix(".png"))
    print(f"wrote {args.output} and its .png")


if __name__ == "__main__":
    main()
