"""Time per tool round: the runtime over HTTP vs over WebSocket, one server, one run.

Both transports drive the same `turnstream serve` process (echo model, fresh SQLite
file). A *tool round* is one `Agent.run('add {...}')`: a response that calls `add`,
the output sent back, the answer (2 responses). Each transport keeps its own
chain going (`previous_response_id`), as an agent loop would, and the two alternate
round by round so a noisy machine hurts both equally. The WebSocket agent keeps one
connection open for the whole chain; the HTTP agent keeps its pooled keep-alive
connection, so the difference is the request setup and parse per turn, and the
server's hot context for the chain.

    .venv/bin/python bench/transport_rounds.py [--rounds 60] [--mode chain|store_false]

Writes `bench/results/transport_rounds.json`.
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
from pathlib import Path
from typing import Any

import openai

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.livesrv import spawn_server

from turnstream.runtime import Agent, ConversationRegistry, RunResult, tool

RESULTS = Path(__file__).resolve().parent / "results" / "transport_rounds.json"


@tool
def add(a: float, b: float) -> float:
    """Add two numbers.

    Args:
        a: The first addend.
        b: The second addend.
    """
    return a + b


async def measure(base_url: str, rounds: int, mode: str) -> dict[str, Any]:
    async with openai.AsyncOpenAI(base_url=base_url, api_key="bench", timeout=30) as client:
        agents = {
            name: Agent(
                client=client,
                model="echo",
                tools=[add],
                transport=name,  # type: ignore[arg-type]  # the two literal names
                store=mode == "chain",
                registry=ConversationRegistry(),
            )
            for name in ("http", "websocket")
        }
        times: dict[str, list[float]] = {name: [] for name in agents}
        last: dict[str, RunResult | None] = dict.fromkeys(agents)
        try:
            for n in range(rounds + 5):
                order = list(agents) if n % 2 == 0 else list(reversed(agents))
                for name in order:
                    previous = last[name]
                    kwargs: dict[str, Any] = {}
                    if previous is not None and mode == "chain":
                        kwargs["previous_response_id"] = previous.last_response_id
                    elif previous is not None:
                        kwargs["history"] = previous.history[-8:]
                    began = time.perf_counter()
                    result = await agents[name].run(f'add {{"a": {n}, "b": 1}}', **kwargs)
                    elapsed = time.perf_counter() - began
                    assert result.final_output == f"Tool results: {float(n + 1)}"
                    last[name] = result
                    if n >= 5:  # the first rounds warm both paths up
                        times[name].append(elapsed)
        finally:
            for agent in agents.values():
                await agent.aclose()
    return {
        name: {
            "round_ms_median": statistics.median(values) * 1000,
            "round_ms_p90": statistics.quantiles(values, n=10)[-1] * 1000,
            "turn_ms_median": statistics.median(values) * 1000 / 2,
            "rounds": len(values),
        }
        for name, values in times.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--mode", choices=["chain", "store_false"], default="chain")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = spawn_server(Path(tmp) / "bench.db")
        try:
            rows = asyncio.run(measure(server.base_url, args.rounds, args.mode))
        finally:
            server.stop()
    print(f"\n{args.rounds} alternated tool rounds ({args.mode}), ms")
    print(f"{'transport':<12}{'round p50':>11}{'round p90':>11}{'turn p50':>10}")
    for name, row in rows.items():
        print(
            f"{name:<12}{row['round_ms_median']:>11.2f}{row['round_ms_p90']:>11.2f}"
            f"{row['turn_ms_median']:>10.2f}"
        )
    ratio = rows["http"]["round_ms_median"] / rows["websocket"]["round_ms_median"]
    print(f"\nhttp / websocket round time: {ratio:.2f}x")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "transport_rounds",
                "rounds": args.rounds,
                "mode": args.mode,
                "python": platform.python_version(),
                "machine": platform.machine(),
                "openai": openai.__version__,
                "transports": rows,
                "http_over_websocket_round_time": ratio,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
