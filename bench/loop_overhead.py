"""Loop overhead: the turnstream runtime vs a raw-SDK loop vs the OpenAI Agents SDK.

All three talk to the same `turnstream serve` process (echo model, fresh SQLite file),
in the same run, alternating order every repetition so a noisy machine hurts each
equally. Two workloads:

- **stream**: one 2,000-word echo answer, no tools. Events per second *seen by the
  caller* (each loop's own event objects), wall time per response.
- **tool round**: a user message -> `add` call -> output -> answer (2 responses, 1 tool
  run). "Added ms per turn" is each loop's round time minus the floor's, paired
  repetition by repetition, divided by the 2 turns (responses) of the round. The
  runtime runs it twice: with `add` as a sync tool (run in a worker thread, the
  runtime's rule for sync tools) and as an async one.

The floor is a bare httpx loop that posts the same requests, splits the SSE frames and
`json.loads` each `data`: the least work that hands a caller the events (a text
delta is only known once its JSON is read) and finds the call and the response id a
tool round needs. (Until the runtime overhead work it only counted `\\n\\n` and
fetched the call from the stored response with an untimed GET: less work than any
real loop, which overstated every loop's overhead on the stream.)

Each loop's wall time and this process's CPU time are recorded every repetition; the
order of the loops rotates every repetition. Reported: medians and quartiles over the
repetitions, and ratios paired with the floor's run beside them.

Then the client-side cost per event in isolation, with no server: the captured bytes
of the 2,000-word stream replayed through (a) the runtime's decode + parse + event
construction, (b) the SDK's `SSEDecoder` + `construct_type` into its pydantic event
union, and (c) both whole loops (`Agent.stream`, `responses.create(stream=True)`)
over an in-memory HTTP transport.

    .venv/bin/python bench/loop_overhead.py [--reps 15] [--words 2000]

Writes `bench/results/loop_overhead.json` and the plot `bench/results/loop_overhead.png`
(needs matplotlib: the `bench` extra).
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

from turnstream.runtime import Agent, RunCompleted, Tool, tool
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


@tool(name="add")
async def add_async(a: float, b: float) -> float:
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


async def runtime_round(client: openai.AsyncOpenAI, add_tool: Tool = add) -> str:
    agent = Agent(client=client, model="echo", instructions=INSTRUCTIONS, tools=[add_tool])
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


async def floor_stream(
    http: httpx.AsyncClient, body: dict[str, Any]
) -> tuple[int, str | None, list[dict[str, Any]], str]:
    """The cheapest honest client: post, split the SSE frames, `json.loads` each `data`.

    That is the least a loop does to hand its caller the events (a text delta is only
    known once its JSON is read) and to find the calls and the response id a tool round
    needs; it relies on this server's framing (one `data:` line per frame, `\\n\\n`
    ends a frame), builds no objects and handles no errors. Returns the number of
    events, the response id, the function-call items and the answer's text.
    """
    count = 0
    response_id = None
    calls: list[dict[str, Any]] = []
    text = ""
    rest = b""
    loads = json.loads
    async with http.stream("POST", "/responses", json=body) as resp:
        resp.raise_for_status()
        async for chunk in resp.aiter_raw():
            frames = (rest + chunk).split(b"\n\n") if rest else chunk.split(b"\n\n")
            rest = frames.pop()
            for frame in frames:
                start = frame.find(b"data: ")
                if start < 0:
                    continue  # a comment (keepalive)
                event = loads(frame[start + 6 :])
                count += 1
                kind = event["type"]
                if kind == "response.output_item.done" and event["item"]["type"] == "function_call":
                    calls.append(event["item"])
                elif kind == "response.output_text.done":
                    text += event["text"]
                elif kind == "response.completed":
                    response_id = event["response"]["id"]
    return count, response_id, calls, text


async def floor_round(http: httpx.AsyncClient) -> str:
    """The same two requests as the other loops, the call read from the stream."""
    body = {
        "model": "echo",
        "input": ROUND_MESSAGE,
        "instructions": INSTRUCTIONS,
        "tools": RAW_TOOLS,
        "stream": True,
    }
    _, response_id, calls, _ = await floor_stream(http, body)
    follow_up = {
        "model": "echo",
        "previous_response_id": response_id,
        "input": [
            {
                "type": "function_call_output",
                "call_id": call["call_id"],
                "output": json.dumps(float(sum(json.loads(call["arguments"]).values()))),
            }
            for call in calls
        ],
        "instructions": INSTRUCTIONS,
        "tools": RAW_TOOLS,
        "stream": True,
    }
    _, _, _, text = await floor_stream(http, follow_up)
    return text


# -- measurement -----------------------------------------------------------------------


async def timed(fn: Callable[[], Awaitable[Any]]) -> tuple[float, float, Any]:
    """Wall seconds, this process's CPU seconds, and the value."""
    cpu = time.process_time()
    started = time.perf_counter()
    value = await fn()
    return time.perf_counter() - started, time.process_time() - cpu, value


def spread(values: list[float], scale: float = 1.0) -> dict[str, float]:
    """Median and spread (quartiles, min, max) of repeated measurements."""
    ordered = sorted(v * scale for v in values)
    q1, _, q3 = statistics.quantiles(ordered, n=4) if len(ordered) > 1 else ordered * 3
    return {
        "median": statistics.median(ordered),
        "q1": q1,
        "q3": q3,
        "min": ordered[0],
        "max": ordered[-1],
    }


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
            "runtime": lambda: runtime_round(client, add),
            "runtime_async_tool": lambda: runtime_round(client, add_async),
            "raw_sdk": lambda: raw_sdk_round(client),
            "agents_sdk": lambda: agents_round(client),
        }
        for name in round_loops:  # warm-up: connections, pydantic model building, imports
            if name in stream_loops:
                await stream_loops[name]()
            await round_loops[name]()
        stream_wall: dict[str, list[float]] = {n: [] for n in stream_loops}
        stream_cpu: dict[str, list[float]] = {n: [] for n in stream_loops}
        stream_events: dict[str, int] = {}
        round_wall: dict[str, list[float]] = {n: [] for n in round_loops}
        round_cpu: dict[str, list[float]] = {n: [] for n in round_loops}
        for rep in range(reps):
            # rotate the order every repetition, so no loop always follows another
            names = list(stream_loops)
            order = names[rep % len(names) :] + names[: rep % len(names)]
            for name in order:
                wall, cpu, value = await timed(stream_loops[name])
                stream_wall[name].append(wall)
                stream_cpu[name].append(cpu)
                stream_events[name] = value[0] if isinstance(value, tuple) else value
            names = list(round_loops)
            order = names[rep % len(names) :] + names[: rep % len(names)]
            for name in reversed(order):
                wall, cpu, answer = await timed(round_loops[name])
                if "5" not in answer:
                    raise RuntimeError(f"{name} answered {answer!r}")
                round_wall[name].append(wall)
                round_cpu[name].append(cpu)
    out: dict[str, Any] = {}
    for name in round_loops:
        row: dict[str, Any] = {}
        if name in stream_loops:
            events = stream_events[name]
            row["stream_events_seen"] = events
            row["stream_ms"] = spread(stream_wall[name], 1000)
            row["stream_ms_median"] = row["stream_ms"]["median"]
            row["events_per_second"] = events / statistics.median(stream_wall[name])
            row["events_per_second_spread"] = spread([events / w for w in stream_wall[name]])
            # each repetition against the floor run beside it, then the median ratio
            row["events_per_second_vs_floor"] = spread(
                [f / w for f, w in zip(stream_wall["floor"], stream_wall[name], strict=True)]
            )
            row["stream_client_cpu_ms_median"] = statistics.median(stream_cpu[name]) * 1000
        row["round_ms"] = spread(round_wall[name], 1000)
        row["round_ms_median"] = row["round_ms"]["median"]
        added = [w - f for f, w in zip(round_wall["floor"], round_wall[name], strict=True)]
        row["added_ms_per_round"] = spread(added, 1000)
        row["added_ms_per_turn"] = row["added_ms_per_round"]["median"] / 2
        row["round_client_cpu_ms_median"] = statistics.median(round_cpu[name]) * 1000
        row["added_client_cpu_ms_per_turn"] = (
            statistics.median(
                [c - f for f, c in zip(round_cpu["floor"], round_cpu[name], strict=True)]
            )
            * 1000
            / 2
        )
        out[name] = row
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
    print("medians [quartiles] over the repetitions; vs floor: paired with the floor's run")
    print(
        f"{'loop':<20}{'events':>7}{'events/s':>10}{'vs floor':>17}"
        f"{'round ms':>10}{'+ms/turn':>9}{'+ms/round [q1, q3]':>22}{'+cpu ms/turn':>13}"
    )
    for name, row in loops.items():
        if "events_per_second" in row:
            ratio = row["events_per_second_vs_floor"]
            stream_part = (
                f"{row['stream_events_seen']:>7}{row['events_per_second']:>10.0f}"
                f"{ratio['median']:>7.2f} [{ratio['q1']:.2f},{ratio['q3']:.2f}]"
            )
        else:
            stream_part = f"{'':>7}{'':>10}{'':>17}"
        added = row["added_ms_per_round"]
        print(
            f"{name:<20}{stream_part}{row['round_ms_median']:>10.2f}"
            f"{row['added_ms_per_turn']:>9.2f}"
            f"{added['median']:>8.2f} [{added['q1']:6.2f},{added['q3']:6.2f}]"
            f"{row['added_client_cpu_ms_per_turn']:>13.2f}"
        )
    rt, raw, ag, fl = loops["runtime"], loops["raw_sdk"], loops["agents_sdk"], loops["floor"]
    ratios = {
        "events_per_second_runtime_vs_floor": rt["events_per_second_vs_floor"]["median"],
        "events_per_second_runtime_vs_raw_sdk": rt["events_per_second"] / raw["events_per_second"],
        "events_per_second_runtime_vs_agents_sdk": rt["events_per_second"]
        / ag["events_per_second"],
        "stream_time_raw_sdk_over_runtime": raw["stream_ms_median"] / rt["stream_ms_median"],
        "stream_time_agents_sdk_over_runtime": ag["stream_ms_median"] / rt["stream_ms_median"],
        "round_time_runtime_over_floor": rt["round_ms_median"] / fl["round_ms_median"],
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
    plot(loops, args, RESULTS.with_suffix(".png"))
    print(f"wrote {RESULTS.with_suffix('.png')}")


def plot(loops: dict[str, Any], args: argparse.Namespace, path: Path) -> None:
    """Events/s and added ms per turn, median with the quartiles as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["floor", "runtime", "raw_sdk", "agents_sdk"]
    labels = {
        "floor": "bare httpx\n(floor)",
        "runtime": "turnstream\nruntime",
        "runtime_async_tool": "turnstream\n(async tool)",
        "raw_sdk": "raw\nOpenAI SDK",
        "agents_sdk": "openai-agents",
    }
    colors = {
        "floor": "#888888",
        "runtime": "#1f77b4",
        "runtime_async_tool": "#6baed6",
        "raw_sdk": "#ff7f0e",
        "agents_sdk": "#2ca02c",
    }
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))

    def bars(
        ax: Any, keys: list[str], values: list[dict[str, float]], title: str, unit: str
    ) -> None:
        medians = [v["median"] for v in values]
        errors = [
            [m - v["q1"] for m, v in zip(medians, values, strict=True)],
            [v["q3"] - m for m, v in zip(medians, values, strict=True)],
        ]
        ax.bar(
            [labels[k] for k in keys],
            medians,
            color=[colors[k] for k in keys],
            yerr=errors,
            capsize=4,
        )
        ax.tick_params(axis="x", labelsize=8)
        for x, m in enumerate(medians):
            ax.annotate(
                f"{m:,.0f}" if m > 100 else f"{m:.2f}",
                (x, m),
                ha="center",
                va="bottom",
                xytext=(0, 3),
                textcoords="offset points",
                fontsize=8,
            )
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(unit)

    bars(
        left,
        names,
        [loops[n]["events_per_second_spread"] for n in names],
        f"{args.words}-word stream: events/s seen by the caller",
        "events per second",
    )
    round_names = ["floor", "runtime", "runtime_async_tool", "raw_sdk", "agents_sdk"]
    bars(
        right,
        round_names,
        [{k: v / 2 for k, v in loops[n]["added_ms_per_round"].items()} for n in round_names],
        "tool round: ms added per turn over the floor",
        "ms per turn (response)",
    )
    fig.suptitle(
        f"bench/loop_overhead.py: median and quartiles of {args.reps} alternated "
        "repetitions, one server",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
