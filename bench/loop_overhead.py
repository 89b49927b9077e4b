"""Loop overhead: the turnstream runtime vs a raw-SDK loop vs the OpenAI Agents SDK.

All three talk to the same `turnstream serve` process (echo model, fresh SQLite file),
in the same run, alternating order every repetition so a noisy machine hurts each
equally. Two workloads:

- **stream**: one 2,000-word echo answer, no tools. Events per second *seen by the
  caller* (each loop's own event objects), wall time per response.
- **tool round**: a user message -> `add` call -> output -> answer (2 responses).
  "Added ms per turn" is each loop's round time minus a floor (a bare httpx loop that
  posts the same requests and only splits the SSE frames), divided by 2 turns.

Then the client-side cost per event in isolation, with no server: the captured bytes
of the 2,000-word stream replayed through (a) the runtime's decode + parse + event
construction, (b) the SDK's `SSEDecoder` + `construct_type` into its pydantic event
union, and (c) both whole loops (`Agent.stream`, `responses.create(stream=True)`)
over an in-memory HTTP transport.

    .venv/bin/python bench/loop_overhead.py [--reps 15] [--words 2000]

Writes `bench/results/loop_overhead.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import agents
import httpx
import httpx2
import openai
from openai._models import construct_type
from openai._streaming import SSEDecoder
from openai.types.responses import ResponseStreamEvent

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.livesrv import spawn_server

from turnstream.runtime import Agent, RunCompleted, tool
from turnstream.runtime.turn import TurnReader
from turnstream.sse import Decoder

RESULTS = Path(__file__).resolve().parent / "results" / "loop_overhead.json"
INSTRUCTIONS = "Be brief."
ROUND_MESSAGE = 'add {"a": 2, "b": 3}'
ADD_SCHEMA = {
    "type": "object",
    "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
    "required": ["a", "b"],
    "additionalProperties": False,
}
RAW_TOOLS = [
    {
        "type": "function",
        "name": "add",
        "description": "Add two numbers.",
        "parameters": ADD_SCHEMA,
        "strict": True,
    }
]


@tool
def add(a: float, b: float) -> float:
    """Add two numbers."""
    return a + b


@agents.function_tool
def agents_add(a: float, b: float) -> float:
    """Add two numbers."""
    return a + b


agents_add.name = "add"

# -- the loops -------------------------------------------------------------------------


async def runtime_stream(client: openai.AsyncOpenAI, text: str) -> int:
    agent = Agent(client=client, model="echo", instructions=INSTRUCTIONS)
    count = 0
    async for _ in agent.stream(text):
        count += 1
    return count


async def runtime_round(client: openai.AsyncOpenAI) -> str:
    agent = Agent(client=client, model="echo", instructions=INSTRUCTIONS, tools=[add])
    async for event in agent.stream(ROUND_MESSAGE):
        if isinstance(event, RunCompleted):
            return event.result.final_output
    raise RuntimeError("no result")


async def raw_sdk_stream(client: openai.AsyncOpenAI, text: str) -> int:
    count = 0
    stream = await client.responses.create(
        model="echo", input=text, instructions=INSTRUCTIONS, stream=True
    )
    async for _ in stream:
        count += 1
    return count


async def raw_sdk_round(client: openai.AsyncOpenAI) -> str:
    """The loop from the original report, done right: follow up after EOF."""
    previous = None
    pending: list[Any] = [{"role": "user", "content": ROUND_MESSAGE}]
    while True:
        stream = await client.responses.create(
            model="echo",
            input=pending,
            instructions=INSTRUCTIONS,
            tools=RAW_TOOLS,  # type: ignore[arg-type]
            previous_response_id=previous,
            stream=True,
        )
        calls = []
        text = ""
        async for event in stream:
            if event.type == "response.output_item.done" and event.item.type == "function_call":
                calls.append(event.item)
            elif event.type == "response.completed":
                previous = event.response.id
                text = event.response.output_text
        if not calls:
            return text
        pending = [
            {
                "type": "function_call_output",
                "call_id": call.call_id,
                "output": json.dumps(float(sum(json.loads(call.arguments).values()))),
            }
            for call in calls
        ]


def agents_model(client: openai.AsyncOpenAI) -> agents.OpenAIResponsesModel:
    return agents.OpenAIResponsesModel(model="echo", openai_client=client)


async def agents_stream(client: openai.AsyncOpenAI, text: str) -> int:
    agent = agents.Agent(name="bench", instructions=INSTRUCTIONS, model=agents_model(client))
    result = agents.Runner.run_streamed(agent, input=text)
    count = 0
    async for _ in result.stream_events():
        count += 1
    return count


async def agents_round(client: openai.AsyncOpenAI) -> str:
    agent = agents.Agent(
        name="bench", instructions=INSTRUCTIONS, model=agents_model(client), tools=[agents_add]
    )
    result = agents.Runner.run_streamed(agent, input=ROUND_MESSAGE)
    async for _ in result.stream_events():
        pass
    return str(result.final_output)


async def floor_stream(http: httpx.AsyncClient, body: dict[str, Any]) -> tuple[int, str | None]:
    """Post and split SSE frames; the cheapest possible client (no JSON, no objects)."""
    count = 0
    response_id = None
    async with http.stream("POST", "/responses", json=body) as resp:
        resp.raise_for_status()
        async for chunk in resp.aiter_raw():
            count += chunk.count(b"\n\n")
            if response_id is None and b'"resp_' in chunk:
                start = chunk.index(b'"resp_') + 1
                response_id = chunk[start : chunk.index(b'"', start)].decode()
    return count, response_id


async def floor_round(http: httpx.AsyncClient) -> str:
    # The echo model's call id is unknown without parsing; a round trip still needs it,
    # so the floor reads the finished call from the stored response (one cheap GET is
    # not charged: it is subtracted below by timing only the two POSTs).
    body = {
        "model": "echo",
        "input": ROUND_MESSAGE,
        "instructions": INSTRUCTIONS,
        "tools": RAW_TOOLS,
        "stream": True,
    }
    started = time.perf_counter()
    _, response_id = await floor_stream(http, body)
    first = time.perf_counter() - started
    stored = (await http.get(f"/responses/{response_id}")).json()
    call = stored["output"][0]
    follow_up = {
        "model": "echo",
        "previous_response_id": response_id,
        "input": [{"type": "function_call_output", "call_id": call["call_id"], "output": "5.0"}],
        "instructions": INSTRUCTIONS,
        "tools": RAW_TOOLS,
        "stream": True,
    }
    started = time.perf_counter()
    await floor_stream(http, follow_up)
    return str(first + time.perf_counter() - started)


# -- measurement -----------------------------------------------------------------------


async def timed(fn: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = await fn()
    return time.perf_counter() - started, value


async def measure_server(base_url: str, reps: int, words: int) -> dict[str, Any]:
    text = " ".join(f"w{i}" for i in range(words))
    async with (
        openai.AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0) as client,
        httpx.AsyncClient(base_url=base_url, timeout=60) as http,
    ):
        floor_body = {"model": "echo", "input": text, "instructions": INSTRUCTIONS, "stream": True}
        stream_loops: dict[str, Callable[[], Awaitable[Any]]] = {
            "floor": lambda: floor_stream(http, floor_body),
            "runtime": lambda: runtime_stream(client, text),
            "raw_sdk": lambda: raw_sdk_stream(client, text),
            "agents_sdk": lambda: agents_stream(client, text),
        }
        round_loops: dict[str, Callable[[], Awaitable[Any]]] = {
            "floor": lambda: floor_round(http),
            "runtime": lambda: runtime_round(client),
            "raw_sdk": lambda: raw_sdk_round(client),
            "agents_sdk": lambda: agents_round(client),
        }
        names = list(stream_loops)
        for name in names:  # warm-up: connections, pydantic model building, imports
            await stream_loops[name]()
            await round_loops[name]()
        stream_times: dict[str, list[float]] = {n: [] for n in names}
        stream_events: dict[str, int] = {}
        round_times: dict[str, list[float]] = {n: [] for n in names}
        for rep in range(reps):
            order = names[rep % len(names) :] + names[: rep % len(names)]
            for name in order:
                seconds, count = await timed(stream_loops[name])
                stream_times[name].append(seconds)
                stream_events[name] = count[0] if isinstance(count, tuple) else count
            for name in reversed(order):
                seconds, answer = await timed(round_loops[name])
                if name == "floor":
                    seconds = float(answer)  # POSTs only
                elif "5" not in answer:
                    raise RuntimeError(f"{name} answered {answer!r}")
                round_times[name].append(seconds)
    out: dict[str, Any] = {}
    floor_round_s = statistics.median(round_times["floor"])
    for name in names:
        median_stream = statistics.median(stream_times[name])
        median_round = statistics.median(round_times[name])
        out[name] = {
            "stream_events_seen": stream_events[name],
            "stream_ms_median": median_stream * 1000,
            "events_per_second": stream_events[name] / median_stream,
            "round_ms_median": median_round * 1000,
            "added_ms_per_turn": (median_round - floor_round_s) * 1000 / 2,
        }
    return out


# -- client-side cost per event, no server ---------------------------------------------


async def capture(base_url: str, words: int) -> list[bytes]:
    text = " ".join(f"w{i}" for i in range(words))
    body = {"model": "echo", "input": text, "instructions": INSTRUCTIONS, "stream": True}
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=60) as http,
        http.stream("POST", "/responses", json=body) as resp,
    ):
        return [chunk async for chunk in resp.aiter_raw()]


def runtime_parse(chunks: list[bytes]) -> int:
    decoder = Decoder()
    reader = TurnReader(1)
    loads = json.loads
    count = 0
    for chunk in chunks:
        for event in decoder.feed(chunk):
            if reader.feed(loads(event.data)) is not None:
                count += 1
    return count


def sdk_parse(chunks: list[bytes]) -> int:
    decoder = SSEDecoder()
    count = 0
    for sse in decoder.iter_bytes(iter(chunks)):
        construct_type(type_=ResponseStreamEvent, value=json.loads(sse.data))
        count += 1
    return count


def replay_client(chunks: list[bytes]) -> openai.AsyncOpenAI:
    async def body() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body())

    http = openai.DefaultAsyncHttpxClient(transport=httpx2.MockTransport(handler))
    return openai.AsyncOpenAI(base_url="http://replay/v1", api_key="x", http_client=http)


def best_per_event(fn: Callable[[], int], repeat: int = 7) -> tuple[float, int]:
    best = float("inf")
    count = 0
    for _ in range(repeat):
        started = time.perf_counter()
        count = fn()
        best = min(best, time.perf_counter() - started)
    return best / count * 1e6, count


async def best_per_event_async(fn: Callable[[], Awaitable[int]], repeat: int = 7) -> float:
    best = float("inf")
    count = 1
    for _ in range(repeat):
        started = time.perf_counter()
        count = await fn()
        best = min(best, time.perf_counter() - started)
    return best / count * 1e6


async def measure_isolated(chunks: list[bytes]) -> dict[str, Any]:
    runtime_us, events = best_per_event(lambda: runtime_parse(chunks))
    sdk_us, _ = best_per_event(lambda: sdk_parse(chunks))
    async with replay_client(chunks) as client:
        runtime_loop_us = await best_per_event_async(lambda: runtime_stream(client, "x"))
        sdk_loop_us = await best_per_event_async(lambda: raw_sdk_stream(client, "x"))
    return {
        "events": events,
        "bytes": sum(len(c) for c in chunks),
        "runtime_parse_us_per_event": runtime_us,
        "sdk_parse_us_per_event": sdk_us,
        "runtime_loop_us_per_event": runtime_loop_us,
        "sdk_loop_us_per_event": sdk_loop_us,
    }


# -- main ------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--words", type=int, default=2000)
    args = parser.parse_args()
    agents.set_tracing_disabled(True)
    with tempfile.TemporaryDirectory() as tmp:
        server = spawn_server(Path(tmp) / "bench.db")
        try:
            loops = asyncio.run(measure_server(server.base_url, args.reps, args.words))
            chunks = asyncio.run(capture(server.base_url, args.words))
        finally:
            server.stop()
    isolated = asyncio.run(measure_isolated(chunks))

    print(f"\n{args.words}-word echo stream and tool rounds, {args.reps} alternated reps")
    print(
        f"{'loop':<12}{'events':>8}{'events/s':>12}{'stream ms':>11}{'round ms':>10}{'+ms/turn':>10}"
    )
    for name, row in loops.items():
        print(
            f"{name:<12}{row['stream_events_seen']:>8}{row['events_per_second']:>12.0f}"
            f"{row['stream_ms_median']:>11.1f}{row['round_ms_median']:>10.2f}"
            f"{row['added_ms_per_turn']:>10.2f}"
        )
    rt, raw, ag = loops["runtime"], loops["raw_sdk"], loops["agents_sdk"]
    ratios = {
        "events_per_second_runtime_vs_raw_sdk": rt["events_per_second"] / raw["events_per_second"],
        "events_per_second_runtime_vs_agents_sdk": rt["events_per_second"]
        / ag["events_per_second"],
        "stream_time_raw_sdk_over_runtime": raw["stream_ms_median"] / rt["stream_ms_median"],
        "stream_time_agents_sdk_over_runtime": ag["stream_ms_median"] / rt["stream_ms_median"],
        "round_time_raw_sdk_over_runtime": raw["round_ms_median"] / rt["round_ms_median"],
        "round_time_agents_sdk_over_runtime": ag["round_ms_median"] / rt["round_ms_median"],
        "parse_cost_sdk_over_runtime": isolated["sdk_parse_us_per_event"]
        / isolated["runtime_parse_us_per_event"],
        "loop_cost_sdk_over_runtime": isolated["sdk_loop_us_per_event"]
        / isolated["runtime_loop_us_per_event"],
    }
    print("\nratios:")
    for key, value in ratios.items():
        print(f"  {key:<42}{value:8.2f}x")
    print(f"\nper event, no server ({isolated['events']} events, {isolated['bytes']} bytes):")
    for key in (
        "runtime_parse_us_per_event",
        "sdk_parse_us_per_event",
        "runtime_loop_us_per_event",
        "sdk_loop_us_per_event",
    ):
        print(f"  {key:<30}{isolated[key]:8.2f} us")

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "loop_overhead",
                "words": args.words,
                "reps": args.reps,
                "python": platform.python_version(),
                "machine": platform.machine(),
                "openai": openai.__version__,
                "openai_agents": getattr(agents, "__version__", None),
                "loops": loops,
                "ratios": ratios,
                "isolated": isolated,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
