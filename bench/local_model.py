"""Benchmark the embedded local model through turnstream's LocalProvider.

Measures, per model size, in one run:
- generation speed through LocalProvider against xllamacpp called directly on the
  same loaded model (tokens/s and their ratio);
- time to first token: cold (first turn carrying the three tools, after the
  system-prompt warm-up) and warm (the next turn of that conversation);
- tool-decision accuracy on bench/data/tool_decisions.jsonl (call with the right
  arguments, or plain text), and whether every answer turn after a tool result is
  plain prose, for each tool strategy asked for.

Usage: python bench/local_model.py [--sizes 1.5b,0.5b] [--strategies prompted,native]
       [--limit N]
Writes bench/results/local_model.json and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import statistics
import time
from pathlib import Path
from typing import Any

from turnstream.engine.deltas import Delta, OutputTextDelta, ToolCallDelta, UsageDelta
from turnstream.providers._local_chat import system_prompt
from turnstream.providers._local_model import ensure_model
from turnstream.providers.base import GenerationRequest
from turnstream.providers.local import LocalProvider, xllamacpp_engine_factory

HERE = Path(__file__).parent
DATA = HERE / "data" / "tool_decisions.jsonl"
RESULTS = HERE / "results" / "local_model.json"
STORY = "Write a short story of about 150 words about a lighthouse keeper."
MARKUP = re.compile(r"<tool_call>|<tool_response>|<\|im_|```json|\{\s*\"name\"|^\s*[\[{]")


def rss_mb() -> float | None:
    """This process's resident memory now (Linux only)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


def message(role: str, text: str) -> dict[str, Any]:
    kind = "output_text" if role == "assistant" else "input_text"
    return {"type": "message", "role": role, "content": [{"type": kind, "text": text}]}


def load_cases() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    lines = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    return lines[0]["tools"], lines[1:]


def args_match(expected: dict[str, Any], actual_json: str) -> bool:
    try:
        actual = json.loads(actual_json)
    except json.JSONDecodeError:
        return False
    for key, want in expected.items():
        got = actual.get(key)
        if isinstance(want, int | float) and not isinstance(want, bool):
            try:
                if abs(float(got) - float(want)) > 1e-6:
                    return False
            except (TypeError, ValueError):
                return False
        elif str(want).strip().lower() != str(got).strip().lower():
            return False
    return True


async def collect(
    provider: LocalProvider, request: GenerationRequest, *, stop_on_text: bool = False
) -> dict[str, Any]:
    started = time.perf_counter()
    first: float | None = None
    text: list[str] = []
    calls: dict[int, dict[str, str]] = {}
    usage: UsageDelta | None = None
    stream = provider.stream(request)
    try:
        async for delta in stream:
            if first is None and isinstance(delta, OutputTextDelta | ToolCallDelta):
                first = time.perf_counter() - started
            _absorb(delta, text, calls)
            if isinstance(delta, UsageDelta):
                usage = delta
            if stop_on_text and text:
                break
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    return {
        "text": "".join(text),
        "calls": list(calls.values()),
        "ttft": first,
        "total": time.perf_counter() - started,
        "usage": usage,
    }


def _absorb(delta: Delta, text: list[str], calls: dict[int, dict[str, str]]) -> None:
    if isinstance(delta, OutputTextDelta):
        text.append(delta.text)
    elif isinstance(delta, ToolCallDelta):
        call = calls.setdefault(delta.index, {"name": "", "arguments": "", "call_id": ""})
        call["name"] = delta.name or call["name"]
        call["call_id"] = delta.call_id or call["call_id"]
        call["arguments"] += delta.arguments


async def decisions(
    provider: LocalProvider, tools: list[dict[str, Any]], cases: list[dict[str, Any]]
) -> dict[str, Any]:
    right = 0
    answers_ok = 0
    answers = 0
    details = []
    for case in cases:
        request = GenerationRequest(
            model="m", items=[message("user", case["prompt"])], tools=tools, max_output_tokens=120
        )
        got = await collect(provider, request, stop_on_text=case["expect"] == "text")
        decision = "call" if got["calls"] else "text"
        ok = decision == case["expect"]
        detail: dict[str, Any] = {"prompt": case["prompt"], "expect": case["expect"]}
        detail["got"] = got["calls"] or got["text"][:80]
        if ok and decision == "call":
            call = got["calls"][0]
            ok = call["name"] == case["name"] and args_match(case["args"], call["arguments"])
            if ok:
                answers += 1
                items = [
                    message("user", case["prompt"]),
                    {"type": "function_call", **call},
                    {
                        "type": "function_call_output",
                        "call_id": call["call_id"],
                        "output": json.dumps(case["tool_output"]),
                    },
                ]
                reply = await collect(
                    provider,
                    GenerationRequest(model="m", items=items, tools=tools, max_output_tokens=60),
                )
                prose = not reply["calls"] and bool(reply["text"].strip())
                prose = prose and not MARKUP.search(reply["text"])
                answers_ok += prose
                detail["answer"] = reply["calls"] or reply["text"][:120]
                detail["answer_prose"] = prose
        right += ok
        detail["ok"] = ok
        details.append(detail)
    return {
        "right": right,
        "cases": len(cases),
        "accuracy": right / len(cases),
        "answer_turns_prose": answers_ok,
        "answer_turns": answers,
        "details": details,
    }


async def throughput(provider: LocalProvider, path: Path) -> dict[str, Any]:
    """Same model, same body, decoded directly by xllamacpp and through the provider."""
    await provider.ready()
    engine = provider._slot_for("m").engine  # the very same loaded llama.cpp server
    assert engine is not None
    body = {
        "messages": [
            {"role": "system", "content": system_prompt(None)},
            {"role": "user", "content": STORY},
        ],
        "max_tokens": 128,
        "temperature": 0.0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    direct: list[float] = []
    via: list[float] = []
    for _ in range(5):
        marks: list[float] = []
        counts: list[int] = []

        def on_chunk(
            chunk: dict[str, Any], marks: list[float] = marks, counts: list[int] = counts
        ) -> bool:
            for choice in chunk.get("choices") or ():
                if (choice.get("delta") or {}).get("content"):
                    marks.append(time.perf_counter())
            if chunk.get("usage"):
                counts.append(chunk["usage"]["completion_tokens"])
            return False

        await asyncio.to_thread(engine.handle_chat_completions, body, on_chunk)
        direct.append((counts[-1] - 1) / (marks[-1] - marks[0]))

        request = GenerationRequest(
            model="m", items=[message("user", STORY)], max_output_tokens=128, temperature=0.0
        )
        stamps: list[float] = []
        usage: UsageDelta | None = None
        async for delta in provider.stream(request):
            if isinstance(delta, OutputTextDelta):
                stamps.append(time.perf_counter())
            elif isinstance(delta, UsageDelta):
                usage = delta
        assert usage is not None
        via.append((usage.output_tokens - 1) / (stamps[-1] - stamps[0]))
    # Medians of alternating runs: other work on a shared machine hits both sides alike.
    best_direct, best_via = statistics.median(direct), statistics.median(via)
    return {
        "direct_runs": [round(x, 2) for x in direct],
        "provider_runs": [round(x, 2) for x in via],
        "direct_tokens_per_s": round(best_direct, 2),
        "provider_tokens_per_s": round(best_via, 2),
        "ratio": round(best_via / best_direct, 3),
    }


async def first_token(provider: LocalProvider, tools: list[dict[str, Any]]) -> dict[str, Any]:
    turn1 = [message("user", "Hello! What can you help me with?")]
    cold = await collect(
        provider, GenerationRequest(model="m", items=turn1, tools=tools, max_output_tokens=24)
    )
    turn2 = [*turn1, message("assistant", cold["text"]), message("user", "Tell me a fun fact.")]
    warm = await collect(
        provider, GenerationRequest(model="m", items=turn2, tools=tools, max_output_tokens=24)
    )
    return {
        "cold_ttft_s": round(cold["ttft"], 2),
        "cold_input_tokens": cold["usage"].input_tokens,
        "warm_ttft_s": round(warm["ttft"], 2),
        "warm_cached_tokens": warm["usage"].cached_tokens,
        "warm_input_tokens": warm["usage"].input_tokens,
    }


async def bench_size(size: str, strategies: list[str], limit: int | None) -> dict[str, Any]:
    tools, cases = load_cases()
    cases = cases[:limit] if limit else cases
    path = ensure_model(size)  # type: ignore[arg-type]
    result: dict[str, Any] = {"size": size}
    for index, strategy in enumerate(strategies):
        provider = LocalProvider(
            {"m": size},  # type: ignore[dict-item]
            strategy=strategy,  # type: ignore[arg-type]
            engine_factory=xllamacpp_engine_factory(threads=2),
            model_path=lambda _size: path,
        )
        started = time.perf_counter()
        provider.start()
        await provider.ready()
        entry: dict[str, Any] = {"load_s": round(time.perf_counter() - started, 2)}
        entry["rss_mb_after_load"] = rss_mb()
        if index == 0:
            entry.update(await first_token(provider, tools))
            entry.update(await throughput(provider, path))
        entry["decisions"] = await decisions(provider, tools, cases)
        await provider.aclose()
        result[strategy] = entry
    return result


def print_table(results: list[dict[str, Any]], strategies: list[str]) -> None:
    print(
        f"{'size':6} {'strategy':10} {'load s':>7} {'tok/s direct':>12} {'tok/s via':>10} "
        f"{'ratio':>6} {'cold ttft':>9} {'warm ttft':>9} {'decisions':>10} {'answers prose':>13}"
    )
    for result in results:
        for strategy in strategies:
            e = result[strategy]
            d = e["decisions"]
            print(
                f"{result['size']:6} {strategy:10} {e['load_s']:7.2f} "
                f"{e.get('direct_tokens_per_s', ''):>12} {e.get('provider_tokens_per_s', ''):>10} "
                f"{e.get('ratio', ''):>6} {e.get('cold_ttft_s', ''):>9} {e.get('warm_ttft_s', ''):>9} "
                f"{d['right']:>4}/{d['cases']:<5} {d['answer_turns_prose']:>6}/{d['answer_turns']:<6}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1.5b,0.5b")
    parser.add_argument("--strategies", default="prompted,native")
    parser.add_argument("--limit", type=int, default=None, help="only the first N cases")
    parser.add_argument("--output", type=Path, default=RESULTS)
    options = parser.parse_args()
    sizes = options.sizes.split(",")
    strategies = options.strategies.split(",")
    results = [asyncio.run(bench_size(size, strategies, options.limit)) for size in sizes]
    print_table(results, strategies)
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(
        json.dumps(
            {
                "machine": {
                    "python": platform.python_version(),
                    "cpu_count": os.cpu_count(),
                },
                "threads": 2,
                "results": results,
            },
            indent=2,
            default=str,
        )
        + "\n"
    )
    print(f"wrote {options.output}")


if __name__ == "__main__":
    main()
