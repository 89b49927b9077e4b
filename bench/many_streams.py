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
import json
import os
import platform
import resource
import subprocess
import sys
from pathlib import Path

# the parts live beside this script (bench/ is the script's sys.path[0])
from manystreams.generator import generate
from manystreams.harness import ROOT, bench_backend
from manystreams.report import plot, print_table
from manystreams.upstream import serve_upstream

RESULTS = ROOT / "bench" / "results" / "many_streams.json"


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
