"""The embedded model's first chat turns, in-process: how soon each shows its first token.

`bench/local_model.py --serving --parts serve` measures the real path (`turnstream
serve` started, `/readyz`, the chat page's first turn over HTTP) but pays a model load
for every prompt. This script loads the 1.5B once per code tree, as `serve` does (the
chat apps' instructions and tools in the prompt cache), and then, for each prompt,
first makes both slots evaluate another message (so the prompt is new to both, as a
user's first message is), then streams the chat's request through `LocalProvider`
and records when the first text or call arrives, what it was, the turn's end, and
any call the review rejected on the way.

With `--compare NAME=SRC` (repeatable) each code tree runs in its own process, and
the trees alternate round by round, so that versions are measured side by side on
the same (shared, noisy) machine.

Usage: python bench/first_turn.py [--rounds N] [--threads N]
       [--compare NAME=SRC ...] [--output PATH]
Writes bench/results/first_turn.json (unless --output) and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PROMPTS = (
    "Hi!",
    "Good morning!",
    "Hello there, how are you?",
    "Tell me a joke.",
    "Hi! Tell me a fun fact about owls.",
    "What is 17 plus 25?",
    "What's 6 times 7?",
    "What time is it in Tokyo?",
)
"""What a new user types first: greetings and small talk (answered in text, though
the 1.5B first writes a call for some), and requests that a tool answers."""


def _user(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


class _Rejections(logging.Handler):
    """The provider's log lines about rejected calls, for the turn being measured."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "rejected" in record.getMessage():
            self.seen.append(record.getMessage()[:100])


async def _one_tree(rounds: int, threads: int | None) -> list[dict[str, Any]]:
    """Every prompt, `rounds` times, on the code this process imports."""
    from turnstream.engine.deltas import OutputTextDelta, ToolCallDelta
    from turnstream.providers.base import GenerationRequest
    from turnstream.providers.local import LocalProvider
    from turnstream.runtime.builtin_tools import BUILTIN_TOOLS
    from turnstream.web.chats import CHAT_INSTRUCTIONS

    tools = [tool.definition() for tool in BUILTIN_TOOLS]
    provider = LocalProvider(
        {"local": "1.5b"},
        threads=threads,
        warmup_instructions=CHAT_INSTRUCTIONS,
        warmup_tools=tools,
    )
    rejections = _Rejections()
    logger = logging.getLogger("turnstream.providers.local")
    logger.addHandler(rejections)
    logger.setLevel(logging.INFO)
    provider.start()
    await provider.ready()

    def chat(text: str, **kwargs: Any) -> GenerationRequest:
        return GenerationRequest(
            "local", [_user(text)], instructions=CHAT_INSTRUCTIONS, tools=tools, **kwargs
        )

    async def evaluate_another(text: str) -> None:
        async for _ in provider.stream(chat(text, max_output_tokens=1)):
            pass

    results = []
    try:
        for round_ in range(rounds):
            for index, prompt in enumerate(PROMPTS):
                # both slots at once, so that llama.cpp gives each one of them
                await asyncio.gather(
                    *(evaluate_another(f"Say ok ({round_}.{index}.{n}).") for n in (0, 1))
                )
                rejections.seen.clear()
                sent = time.perf_counter()
                first: float | None = None
                kind = None
                text = ""
                async for delta in provider.stream(chat(prompt)):
                    if isinstance(delta, OutputTextDelta | ToolCallDelta) and first is None:
                        first = time.perf_counter() - sent
                        kind = (
                            "text" if isinstance(delta, OutputTextDelta) else f"call {delta.name}"
                        )
                    if isinstance(delta, OutputTextDelta):
                        text += delta.text
                entry = {
                    "round": round_,
                    "prompt": prompt,
                    "first_s": round(first, 3) if first is not None else None,
                    "first": kind,
                    "turn_s": round(time.perf_counter() - sent, 3),
                    "text": text[:100],
                    "rejected": list(rejections.seen),
                }
                print(json.dumps(entry), flush=True)
                results.append(entry)
    finally:
        await provider.aclose()
    return results


def _child(rounds: int, threads: int | None) -> None:
    results = asyncio.run(_one_tree(rounds, threads))
    print("RESULTS " + json.dumps(results), flush=True)


def _run_tree(src: str | None, rounds: int, threads: int | None) -> list[dict[str, Any]]:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = src
    command = [sys.executable, __file__, "--child", "--rounds", str(rounds)]
    if threads is not None:
        command += ["--threads", str(threads)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("RESULTS "):
            results: list[dict[str, Any]] = json.loads(line.removeprefix("RESULTS "))
            return results
    raise RuntimeError(f"the run under {src} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")


def _summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    by_prompt: dict[str, Any] = {}
    for prompt in PROMPTS:
        firsts = [r["first_s"] for r in results if r["prompt"] == prompt and r["first_s"]]
        by_prompt[prompt] = {
            "first_s": firsts,
            "first_s_median": round(statistics.median(firsts), 3) if firsts else None,
            "first": sorted({str(r["first"]) for r in results if r["prompt"] == prompt}),
            "rejected_turns": sum(1 for r in results if r["prompt"] == prompt and r["rejected"]),
        }
    firsts = [r["first_s"] for r in results if r["first_s"]]
    return {
        "by_prompt": by_prompt,
        "first_s_median": round(statistics.median(firsts), 3) if firsts else None,
        "under_1s": sum(1 for f in firsts if f < 1.0),
        "turns": len(results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="repeats of every prompt")
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp's threads")
    parser.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="NAME=SRC",
        help="a code tree's src directory; the trees alternate round by round",
    )
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.rounds, args.threads)
        return
    trees: dict[str, str | None] = {"this": None}
    if args.compare:
        trees = dict(item.split("=", 1) for item in args.compare)
    load_before = os.getloadavg()
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    for round_ in range(args.rounds):
        for name, src in trees.items():
            for entry in _run_tree(src, 1, args.threads):
                entry["round"] = round_
                results[name].append(entry)
            print(f"round {round_} {name}: done", flush=True)
    report = {
        "machine": {"python": platform.python_version(), "cpu_count": os.cpu_count()},
        "threads": args.threads,
        "rounds": args.rounds,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "trees": trees,
        "summary": {name: _summary(entries) for name, entries in results.items()},
        "turns": results,
    }
    output = args.output or Path(__file__).parent / "results" / "first_turn.json"
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nfirst event after the message (s, median of {args.rounds}):")
    print(f"{'prompt':40}" + "".join(f"{name:>12}" for name in trees))
    for prompt in PROMPTS:
        cells = [report["summary"][n]["by_prompt"][prompt]["first_s_median"] for n in trees]
        print(f"{prompt:40}" + "".join(f"{c if c is not None else '-':>12}" for c in cells))
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
