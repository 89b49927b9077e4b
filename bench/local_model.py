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

With `--serving` it measures serving instead (`run_serving`, results in
bench/results/local_serving.json): time to first token and tokens/s at 1, 2 and 4
concurrent chats on the default slots, how soon a cancel during prompt evaluation
frees the slot (small against large batches, side by side), and `turnstream serve`'s
start-up: when /healthz answers, when /readyz says ready, and the first chat turn's
time to first token after that (`FIRST_TURNS`, one per round). With
`--compare NAME=SRC` (repeatable) the start-up runs for each code tree in turn, round
by round, so that two versions are measured side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import re
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from turnstream.engine.deltas import (
    Delta,
    OutputTextDelta,
    QueuedDelta,
    ToolCallDelta,
    UsageDelta,
)
from turnstream.providers._local_chat import system_prompt
from turnstream.providers._local_model import ensure_model
from turnstream.providers.base import GenerationRequest
from turnstream.providers.local import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_SLOTS,
    LocalProvider,
    xllamacpp_engine_factory,
)

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


# -- serving: slots, queueing, cancelling, start-up (`--serving`) ------------------------

SERVING_RESULTS = HERE / "results" / "local_serving.json"
CHAT_PROMPTS = [
    "Write a short story of about 120 words about a lighthouse keeper.",
    "Explain in about 120 words how a bicycle gear works.",
    "Describe a walk through a rainy city in about 120 words.",
    "Write about 120 words on why people keep journals.",
]
LONG_PROMPT = "Summarise this list in one line: " + ", ".join(
    f"item {i} is a {w}" for i, w in enumerate(["red apple", "blue car", "green door"] * 130)
)


async def one_chat(provider: LocalProvider, prompt: str, max_tokens: int) -> dict[str, Any]:
    """One chat turn: when it was queued, its first token, and its tokens per second."""
    request = GenerationRequest(
        model="local", items=[message("user", prompt)], max_output_tokens=max_tokens
    )
    started = time.perf_counter()
    first: float | None = None
    queued = False
    usage: UsageDelta | None = None
    async for delta in provider.stream(request):
        if isinstance(delta, QueuedDelta):
            queued = True
        elif first is None and isinstance(delta, OutputTextDelta | ToolCallDelta):
            first = time.perf_counter() - started
        elif isinstance(delta, UsageDelta):
            usage = delta
    total = time.perf_counter() - started
    tokens = usage.output_tokens if usage else 0
    decode_s = total - (first or total)
    return {
        "queued": queued,
        "ttft_s": round(first, 3) if first is not None else None,
        "total_s": round(total, 3),
        "output_tokens": tokens,
        "tokens_per_s": round((tokens - 1) / decode_s, 2) if tokens > 1 and decode_s > 0 else None,
    }


async def concurrency(provider: LocalProvider, chats: int, max_tokens: int) -> dict[str, Any]:
    started = time.perf_counter()
    runs = await asyncio.gather(
        *(one_chat(provider, CHAT_PROMPTS[i % len(CHAT_PROMPTS)], max_tokens) for i in range(chats))
    )
    wall = time.perf_counter() - started
    ttfts = [r["ttft_s"] for r in runs if r["ttft_s"] is not None]
    rates = [r["tokens_per_s"] for r in runs if r["tokens_per_s"] is not None]
    return {
        "chats": chats,
        "queued": sum(r["queued"] for r in runs),
        "ttft_median_s": round(statistics.median(ttfts), 3) if ttfts else None,
        "ttft_max_s": max(ttfts) if ttfts else None,
        "per_chat_tokens_per_s_median": round(statistics.median(rates), 2) if rates else None,
        "aggregate_tokens_per_s": round(sum(r["output_tokens"] for r in runs) / wall, 2),
        "wall_s": round(wall, 2),
        "runs": runs,
    }


async def cancel_during_prompt(provider: LocalProvider, after: float) -> dict[str, Any]:
    """Start a long prompt, close the stream `after` s into its evaluation, and time how
    long the worker takes to give the slot back (llama.cpp returned)."""
    request = GenerationRequest(
        model="local", items=[message("user", LONG_PROMPT)], max_output_tokens=8
    )
    stream = provider.stream(request)
    reader = asyncio.ensure_future(stream.__anext__())
    await asyncio.sleep(after)
    first_token_arrived = reader.done()
    reader.cancel()
    with contextlib.suppress(BaseException):
        await reader
    workers = list(provider._active)  # the thread that gives the slot back when llama.cpp returns
    closed = time.perf_counter()
    await stream.aclose()  # type: ignore[attr-defined]
    for worker in workers:
        await asyncio.to_thread(worker.join)
    return {
        "slot_free_after_s": round(time.perf_counter() - closed, 3),
        "token_before_cancel": first_token_arrived,
    }


async def prompt_rate(provider: LocalProvider) -> float:
    """Prompt evaluation speed (tokens/s) on a ~300-token prompt with an uncached prefix."""
    salt = f"[{time.time_ns()}] "
    request = GenerationRequest(
        model="local", items=[message("user", salt + LONG_PROMPT[:1000])], max_output_tokens=1
    )
    got = await collect(provider, request)
    usage = got["usage"]
    evaluated = usage.input_tokens - usage.cached_tokens if usage else 0
    return round(evaluated / got["ttft"], 1) if got["ttft"] else 0.0


async def concurrency_part(size: str, rounds: int, chat_tokens: int) -> dict[str, Any]:
    path = ensure_model(size)  # type: ignore[arg-type]
    provider = LocalProvider(
        {"local": size},  # type: ignore[dict-item]
        model_path=lambda _: path,
        engine_factory=xllamacpp_engine_factory(threads=2, slots=DEFAULT_SLOTS),
    )
    provider.start()
    await provider.ready()
    levels: dict[str, list[dict[str, Any]]] = {}
    for round_ in range(rounds):
        for chats in (1, 2, 4):
            level = await concurrency(provider, chats, chat_tokens)
            levels.setdefault(str(chats), []).append(level)
            print(
                f"round {round_} chats {chats}: ttft {level['ttft_median_s']} s, "
                f"{level['per_chat_tokens_per_s_median']} tok/s per chat, "
                f"{level['aggregate_tokens_per_s']} in all, {level['queued']} queued",
                flush=True,
            )
    await provider.aclose()
    return {
        chats: {
            "ttft_median_s": statistics.median(r["ttft_median_s"] for r in runs),
            "per_chat_tokens_per_s_median": statistics.median(
                r["per_chat_tokens_per_s_median"] for r in runs
            ),
            "aggregate_tokens_per_s_median": statistics.median(
                r["aggregate_tokens_per_s"] for r in runs
            ),
            "queued_per_round": [r["queued"] for r in runs],
            "rounds": runs,
        }
        for chats, runs in levels.items()
    }


async def cancel_part(size: str, rounds: int, compare_batch: int) -> dict[str, Any]:
    path = ensure_model(size)  # type: ignore[arg-type]
    # cancel latency and prompt speed: the default small batch against a larger one
    # (llama.cpp's usual is 512), two engines side by side, alternated round by round
    engines = {}
    for batch in (DEFAULT_BATCH_SIZE, compare_batch):
        engines[batch] = LocalProvider(
            {"local": size},  # type: ignore[dict-item]
            model_path=lambda _: path,
            engine_factory=xllamacpp_engine_factory(threads=2, slots=1, batch_size=batch),
        )
        engines[batch].start()
        await engines[batch].ready()
    cancels: dict[int, list[dict[str, Any]]] = {b: [] for b in engines}
    rates: dict[int, list[float]] = {b: [] for b in engines}
    # A cancel waits for the batch under way: at a fixed moment it would land at the
    # same phase of a batch every round. Random moments (the same ones for each batch
    # size, from a fixed seed) sample the whole batch.
    moments = random.Random(12).uniform
    for round_ in range(rounds):
        after = moments(1.0, 2.0)
        for batch, engine in engines.items():
            rates[batch].append(await prompt_rate(engine))
            cancels[batch].append(await cancel_during_prompt(engine, after=after))
            print(
                f"round {round_} batch {batch}: prompt {rates[batch][-1]} tok/s, slot free "
                f"{cancels[batch][-1]['slot_free_after_s']} s after the cancel",
                flush=True,
            )
    for engine in engines.values():
        await engine.aclose()
    return {
        str(batch): {
            "slot_free_after_s_median": statistics.median(
                c["slot_free_after_s"] for c in cancels[batch]
            ),
            "slot_free_after_s_max": max(c["slot_free_after_s"] for c in cancels[batch]),
            "prompt_tokens_per_s_median": statistics.median(rates[batch]),
            "runs": cancels[batch],
            "prompt_rates": rates[batch],
        }
        for batch in engines
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


FIRST_TURNS = (
    "Hi!",
    "What is 17 plus 25?",
    "Hi! Tell me a fun fact about owls.",
    "What time is it in Tokyo?",
)
"""The first turns a new user types, one per round: two answered in text, two by a call
(whose first event is the call, once its arguments are whole and reviewed)."""


async def serve_start_up(rounds: int, offset: int = 0) -> dict[str, Any]:
    """`turnstream serve` as a user starts it: /healthz, /readyz, then the chat page's
    first turn (its instructions and tools, through the runtime) and its first token.
    Round `r` types `FIRST_TURNS[offset + r]` (cyclically)."""
    import httpx
    from openai import AsyncOpenAI

    from turnstream.runtime import Agent, TextDelta, ToolCallStarted
    from turnstream.runtime.builtin_tools import BUILTIN_TOOLS
    from turnstream.web.chats import CHAT_INSTRUCTIONS

    results = []
    for round_ in range(rounds):
        with tempfile.TemporaryDirectory() as tmp:
            port = free_port()
            started = time.perf_counter()
            process = await asyncio.create_subprocess_exec(
                *[
                    sys.executable,
                    "-m",
                    "turnstream.cli.main",
                    "serve",
                    "--port",
                    str(port),
                    "--db",
                    str(Path(tmp) / "bench.db"),
                    "--log-level",
                    "warning",
                ],
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            entry: dict[str, Any] = {}
            try:
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                    while "healthz_s" not in entry:
                        with contextlib.suppress(httpx.TransportError):
                            if (await http.get("/healthz")).status_code == 200:
                                entry["healthz_s"] = round(time.perf_counter() - started, 2)
                        await asyncio.sleep(0.05)
                    # no timeout: while xllamacpp builds its server it holds the GIL, and
                    # the process answers nothing for seconds (measured, not failed on)
                    asked = time.perf_counter()
                    readyz = await http.get("/readyz", timeout=None)
                    entry["first_readyz_answer_s"] = round(time.perf_counter() - asked, 2)
                    entry["readyz_at_healthz"] = readyz.json()["status"]
                    # polling is the point: it is what a load balancer (or the page) does;
                    # the slowest answer shows whether the server stalls while it loads
                    slowest = entry["first_readyz_answer_s"]
                    while True:
                        asked = time.perf_counter()
                        status = (await http.get("/readyz", timeout=None)).status_code
                        slowest = max(slowest, time.perf_counter() - asked)
                        if status == 200:
                            break
                        await asyncio.sleep(0.1)
                    entry["ready_s"] = round(time.perf_counter() - started, 2)
                    entry["slowest_readyz_answer_s"] = round(slowest, 2)
                async with AsyncOpenAI(
                    base_url=f"http://127.0.0.1:{port}/v1", api_key="bench"
                ) as client:
                    agent = Agent(
                        client=client,
                        model="local",
                        instructions=CHAT_INSTRUCTIONS,
                        tools=BUILTIN_TOOLS,
                    )
                    sent = time.perf_counter()
                    first = None
                    prompt = FIRST_TURNS[(offset + round_) % len(FIRST_TURNS)]
                    async for event in agent.stream(prompt):
                        if first is None and isinstance(event, TextDelta | ToolCallStarted):
                            first = time.perf_counter() - sent
                            entry["first_turn_first_event"] = (
                                "text" if isinstance(event, TextDelta) else f"call {event.name}"
                            )
                    entry["first_turn_prompt"] = prompt
                    entry["first_turn_ttft_s"] = round(first, 3) if first is not None else None
            finally:
                process.terminate()
                async with asyncio.timeout(30):
                    await process.wait()
            results.append(entry)
            print(f"serve round {round_}: {entry}", flush=True)
    ttfts = [r["first_turn_ttft_s"] for r in results if r.get("first_turn_ttft_s") is not None]
    return {
        "rounds": results,
        "healthz_s_median": statistics.median(r["healthz_s"] for r in results),
        "ready_s_median": statistics.median(r["ready_s"] for r in results),
        "first_turn_ttft_s_median": statistics.median(ttfts) if ttfts else None,
        "first_turn_ttft_s_by_prompt": {
            prompt: [r["first_turn_ttft_s"] for r in results if r["first_turn_prompt"] == prompt]
            for prompt in FIRST_TURNS
            if any(r.get("first_turn_prompt") == prompt for r in results)
        },
    }


async def serve_side_by_side(rounds: int, compare: Sequence[str]) -> dict[str, Any]:
    """`serve_start_up` for several code trees (`name=/path/to/src`), alternated round
    by round so that the machine's load falls on each alike: round `r` of every tree
    types the same first turn."""
    trees = dict(spec.split("=", 1) for spec in compare)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    saved = os.environ.get("PYTHONPATH")
    try:
        for round_ in range(rounds):
            for name, src in trees.items():
                os.environ["PYTHONPATH"] = src  # the server subprocess imports that tree
                runs[name] += (await serve_start_up(1, offset=round_))["rounds"]
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved
    return {
        "trees": trees,
        "rounds": runs,
        "first_turn_ttft_s": {
            name: {
                prompt: [
                    r["first_turn_ttft_s"] for r in entries if r["first_turn_prompt"] == prompt
                ]
                for prompt in FIRST_TURNS
                if any(r["first_turn_prompt"] == prompt for r in entries)
            }
            for name, entries in runs.items()
        },
    }


def run_serving(
    size: str,
    rounds: int,
    output: Path | None,
    chat_tokens: int = 64,
    compare_batch: int = 512,
    parts: Sequence[str] = ("concurrency", "cancel", "serve"),
    compare: Sequence[str] = (),
) -> None:
    """Run the serving parts asked for; the JSON is rewritten after each part, so a
    part that is cut short on a loaded machine does not lose the ones before it."""
    target = output or SERVING_RESULTS
    target.parent.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "cpu_count": os.cpu_count()},
        "size": size,
        "slots": DEFAULT_SLOTS,
        "batch_size": DEFAULT_BATCH_SIZE,
        "threads": 2,
        "chat_tokens": chat_tokens,
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
    }
    runs = {
        "concurrency": lambda: concurrency_part(size, rounds, chat_tokens),
        "cancel": lambda: cancel_part(size, rounds, compare_batch),
        "serve": lambda: serve_start_up(rounds),
        "serve_compare": lambda: serve_side_by_side(rounds, compare),
    }
    if compare:
        parts = ["serve_compare" if part == "serve" else part for part in parts]
    for part in parts:
        report[part] = asyncio.run(runs[part]())
        report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
        target.write_text(json.dumps(report, indent=2, default=str) + "\n")
    if "concurrency" in report:
        print("chats  queued  ttft s  tok/s per chat  tok/s total")
        for chats, level in report["concurrency"].items():
            print(
                f"{chats:>5} {level['queued_per_round']!s:>7} {level['ttft_median_s']:>7} "
                f"{level['per_chat_tokens_per_s_median']:>15} "
                f"{level['aggregate_tokens_per_s_median']:>12}"
            )
    for batch, figures in report.get("cancel", {}).items():
        print(
            f"batch {batch:>4}: slot free {figures['slot_free_after_s_median']} s after a cancel "
            f"(max {figures['slot_free_after_s_max']}), prompt "
            f"{figures['prompt_tokens_per_s_median']} tok/s"
        )
    for name, prompts in report.get("serve_compare", {}).get("first_turn_ttft_s", {}).items():
        print(f"first turn's first token, {name}: {prompts}")
    if "serve" in report:
        start_up = report["serve"]
        print(
            f"serve: /healthz after {start_up['healthz_s_median']} s, ready after "
            f"{start_up['ready_s_median']} s, first turn's first token "
            f"{start_up['first_turn_ttft_s_median']} s"
        )
    print(
        f"load average before {report['load_average_before']}, after {report['load_average_after']}"
    )
    print(f"wrote {target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1.5b,0.5b")
    parser.add_argument("--strategies", default="prompted,native")
    parser.add_argument("--limit", type=int, default=None, help="only the first N cases")
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--serving", action="store_true", help="measure serving (see above)")
    parser.add_argument("--rounds", type=int, default=3, help="--serving: repeats per figure")
    parser.add_argument("--chat-tokens", type=int, default=64, help="--serving: tokens per chat")
    parser.add_argument(
        "--compare-batch", type=int, default=512, help="--serving: the batch size to compare"
    )
    parser.add_argument(
        "--parts", default="concurrency,cancel,serve", help="--serving: which measurements"
    )
    parser.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="NAME=SRC",
        help="--serving: run the serve part for each code tree, alternated round by round",
    )
    options = parser.parse_args()
    if options.serving:
        run_serving(
            options.sizes.split(",")[0],
            options.rounds,
            options.output,
            options.chat_tokens,
            options.compare_batch,
            options.parts.split(","),
            options.compare,
        )
        return
    options.output = options.output or RESULTS
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
