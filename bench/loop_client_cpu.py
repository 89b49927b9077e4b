"""Client CPU of the runtime vs the bare httpx floor, with no server in the measurement.

`loop_overhead.py` times whole loops against a live server; on a shared 2-core machine
its wall times move with every other process. This bench takes the server out: it
captures the server's bytes for the 2,000-word stream and for both responses of the
tool round once, then replays them through in-memory HTTP transports (httpx's and the
SDK's `MockTransport`), and reports this process's CPU time (best of several batches)
for the same loops as `loop_overhead.py`:

- per streamed event: the floor (split frames, `json.loads`), the runtime
  (`Agent.stream`), the raw SDK (`responses.create(stream=True)`);
- per tool round (2 responses, 1 tool run): the floor, the runtime with a sync tool
  (worker thread) and with an async one, the raw SDK loop.

The request building, SSE decoding, parsing, state machine, tool execution and event
objects are all in it; the network and the server are not.

    .venv/bin/python bench/loop_client_cpu.py [--batches 7]

Writes `bench/results/loop_client_cpu.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import httpx2
import openai

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import loop_overhead as lo
from tests.livesrv import spawn_server

RESULTS = Path(__file__).resolve().parent / "results" / "loop_client_cpu.json"
Captured = dict[str, list[bytes]]


async def capture(base_url: str, words: int) -> Captured:
    text = " ".join(f"w{i}" for i in range(words))
    first_body = {
        "model": "echo",
        "input": lo.ROUND_MESSAGE,
        "instructions": lo.INSTRUCTIONS,
        "tools": lo.RAW_TOOLS,
        "stream": True,
    }
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:

        async def grab(body: dict[str, Any]) -> list[bytes]:
            async with http.stream("POST", "/responses", json=body) as resp:
                return [chunk async for chunk in resp.aiter_raw()]

        stream = await grab(
            {"model": "echo", "input": text, "instructions": lo.INSTRUCTIONS, "stream": True}
        )
        first = await grab(first_body)
        _, response_id, calls, _ = await lo.floor_stream(http, first_body)
        follow_up = {
            **first_body,
            "previous_response_id": response_id,
            "input": [
                {"type": "function_call_output", "call_id": calls[0]["call_id"], "output": "5.0"}
            ],
        }
        second = await grab(follow_up)
    return {"stream": stream, "first": first, "second": second}


def pick(captured: Captured, content: bytes) -> list[bytes]:
    if b"previous_response_id" in content:
        return captured["second"]
    return captured["first"] if b'"tools"' in content else captured["stream"]


async def replay(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def clients(captured: Captured) -> tuple[httpx.AsyncClient, openai.AsyncOpenAI]:
    def floor_handler(request: httpx.Request) -> httpx.Response:
        chunks = pick(captured, request.content)
        return httpx.Response(
            200, headers={"content-type": "text/event-stream"}, content=replay(chunks)
        )

    def sdk_handler(request: httpx2.Request) -> httpx2.Response:
        chunks = pick(captured, request.content)
        return httpx2.Response(
            200, headers={"content-type": "text/event-stream"}, content=replay(chunks)
        )

    http = httpx.AsyncClient(
        base_url="http://replay/v1", transport=httpx.MockTransport(floor_handler)
    )
    sdk_http = openai.DefaultAsyncHttpxClient(transport=httpx2.MockTransport(sdk_handler))
    client = openai.AsyncOpenAI(
        base_url="http://replay/v1", api_key="x", max_retries=0, http_client=sdk_http
    )
    return http, client


async def best_cpu(fn: Callable[[], Awaitable[Any]], batches: int, per_batch: int) -> float:
    """Best CPU seconds per call over `batches` batches of `per_batch` calls."""
    for _ in range(per_batch):  # warm-up
        await fn()
    best = float("inf")
    for _ in range(batches):
        started = time.process_time()
        for _ in range(per_batch):
            await fn()
        best = min(best, (time.process_time() - started) / per_batch)
    return best


async def measure(captured: Captured, batches: int) -> dict[str, Any]:
    http, client = clients(captured)
    text = "x"
    body = {"model": "echo", "input": text, "instructions": lo.INSTRUCTIONS, "stream": True}
    events, _, _, _ = await lo.floor_stream(http, body)
    stream: dict[str, Callable[[], Awaitable[Any]]] = {
        "floor": lambda: lo.floor_stream(http, body),
        "runtime": lambda: lo.runtime_stream(client, text),
        "raw_sdk": lambda: lo.raw_sdk_stream(client, text),
    }
    rounds: dict[str, Callable[[], Awaitable[Any]]] = {
        "floor": lambda: lo.floor_round(http),
        "runtime": lambda: lo.runtime_round(client, lo.add),
        "runtime_async_tool": lambda: lo.runtime_round(client, lo.add_async),
        "raw_sdk": lambda: lo.raw_sdk_round(client),
    }
    out: dict[str, Any] = {"events_per_stream": events, "stream_us_per_event": {}, "round": {}}
    for name, fn in stream.items():
        per_batch = 1 if name == "raw_sdk" else 3
        seconds = await best_cpu(fn, batches, per_batch)
        out["stream_us_per_event"][name] = seconds / events * 1e6
    for name, fn in rounds.items():
        seconds = await best_cpu(fn, batches, 100)
        out["round"][name] = {"us_per_round": seconds * 1e6}
    floor_round = out["round"]["floor"]["us_per_round"]
    for row in out["round"].values():
        row["added_us_per_turn"] = (row["us_per_round"] - floor_round) / 2
    floor_event = out["stream_us_per_event"]["floor"]
    out["stream_cpu_vs_floor"] = {
        name: us / floor_event for name, us in out["stream_us_per_event"].items()
    }
    await http.aclose()
    await client.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batches", type=int, default=7)
    parser.add_argument("--words", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = spawn_server(Path(tmp) / "bench.db")
        try:
            captured = asyncio.run(capture(server.base_url, args.words))
        finally:
            server.stop()
    result = asyncio.run(measure(captured, args.batches))
    print(f"\nclient CPU, no server, best of {args.batches} batches")
    print(f"per streamed event ({result['events_per_stream']} events):")
    for name, us in result["stream_us_per_event"].items():
        ratio = result["stream_cpu_vs_floor"][name]
        print(f"  {name:<20}{us:8.2f} us  {ratio:5.2f}x the floor")
    print("per tool round (2 responses, 1 tool):")
    for name, row in result["round"].items():
        print(
            f"  {name:<20}{row['us_per_round']:8.0f} us"
            f"  +{row['added_us_per_turn']:6.0f} us per turn over the floor"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "loop_client_cpu",
                "words": args.words,
                "batches": args.batches,
                "python": platform.python_version(),
                "openai": openai.__version__,
                **result,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
