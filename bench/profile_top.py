"""Summarise a `py-spy record --format raw` profile: the top frames by own and total time.

    python bench/profile_top.py PROFILE [--top 25] [--only SUBSTRING]

Each line of a raw profile is `frame;frame;...;leaf COUNT`. *Own* counts the samples
where a frame is the leaf (where CPU actually went); *total* counts the samples with
the frame anywhere on the stack (once per sample). `--only` keeps the samples whose
stack contains SUBSTRING (e.g. `Runner.run`: the event loop, start-up imports left out).
`--stages` also splits the samples by stage of the hot path: each sample goes to the
stage of the frame nearest its leaf that names one (so pydantic under the state
machine counts as the state machine).
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

STAGES: list[tuple[str, tuple[str, ...]]] = [
    ("store (SQLAlchemy, aiosqlite)", ("aiosqlite/", "sqlalchemy/", "turnstream/storage/", "observed_store")),
    ("upstream read (httpx, httpcore, h11, anyio; or providers/_http1)", ("httpx/", "httpcore/", "h11/", "anyio/", "sniffio/", "providers/_http1.py")),
    ("SSE decode + chunk translate", ("Decoder.", "_chat_stream.py", "_translate (", "json/")),
    ("state machine (engine, pydantic events)", ("turnstream/engine/",)),
    ("event encoding (sse.encode)", ("encode (turnstream/sse.py", "encode_data")),
    ("queue, drain, pump", ("server/replay.py", "server/streaming.py", "asyncio/queues.py")),
    ("ASGI send chain + socket write", ("httptools_impl.py", "middleware", "starlette/", "server/access.py", "server/gate.py", "fastapi/telemetry")),
    ("request handling (admission, parsing, routing)", ("server/", "protocol/", "fastapi/", "pydantic")),
    ("provider + run (generators, spans)", ("providers/", "_tracing.py")),
    ("event loop, tasks, timers (uvloop, asyncio)", ("Runner.run", "asyncio/", "uvloop")),
]  # fmt: skip
"""Stages of the hot path and the frame substrings that name them, nearest first."""


def _stage(frames: list[str]) -> str:
    for frame in reversed(frames):
        for label, needles in STAGES:
            if any(needle in frame for needle in needles):
                return label
    return "other"


def _short(frame: str) -> str:
    # "func (path/to/file.py:12)" -> "func (file.py)" : line numbers split one function
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    return f"{name} ({'/'.join(path.split('/')[-2:])})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--only")
    parser.add_argument("--stages", action="store_true")
    args = parser.parse_args()
    stages: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in args.profile.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or (args.only and args.only not in stack):
            continue
        n = int(count)
        samples += n
        stages[_stage(stack.split(";"))] += n
        frames = [_short(f) for f in stack.split(";")]
        own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n
    print(f"{samples} samples")
    if args.stages:
        print(f"{'%':>6}  stage")
        for label, n in stages.most_common():
            print(f"{100 * n / samples:>6.1f}  {label}")
        print()
    print(f"{'own %':>6}  frame")
    for frame, n in own.most_common(args.top):
        print(f"{100 * n / samples:>6.1f}  {frame}")
    print(f"\n{'total %':>7}  frame")
    for frame, n in total.most_common(args.top):
        print(f"{100 * n / samples:>7.1f}  {frame}")


if __name__ == "__main__":
    main()
