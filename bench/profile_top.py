"""Summarise a `py-spy record --format raw` profile: the top frames by own and total time.

    python bench/profile_top.py PROFILE [--top 25] [--only SUBSTRING]

Each line of a raw profile is `frame;frame;...;leaf COUNT`. *Own* counts the samples
where a frame is the leaf (where CPU actually went); *total* counts the samples with
the frame anywhere on the stack (once per sample). `--only` keeps the samples whose
stack contains SUBSTRING (e.g. `_produce` for the run's producer task).
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_LINE = re.compile(r"(?:/[^ ;()]*/)?(site-packages/|src/)?")


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
    args = parser.parse_args()
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in args.profile.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or (args.only and args.only not in stack):
            continue
        n = int(count)
        samples += n
        frames = [_short(f) for f in stack.split(";")]
        own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n
    print(f"{samples} samples")
    print(f"{'own %':>6}  frame")
    for frame, n in own.most_common(args.top):
        print(f"{100 * n / samples:>6.1f}  {frame}")
    print(f"\n{'total %':>7}  frame")
    for frame, n in total.most_common(args.top):
        print(f"{100 * n / samples:>7.1f}  {frame}")


if __name__ == "__main__":
    main()
