"""Without OpenTelemetry the runtime still runs a whole tool round, and makes no spans.

A child interpreter blocks every `opentelemetry` import with a meta-path finder
(what an install without the `otel` extra looks like), then drives an `Agent`
through a tool call against an in-memory Responses endpoint (httpx's MockTransport).
The server is not part of this check: recent FastAPI requires `opentelemetry-api`
itself, so the server always has the API; its spans are skipped while no tracer
provider is configured (`tests/server/test_tracing.py`).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = textwrap.dedent(
    """
    import asyncio, json, sys

    class BlockOpenTelemetry:
        def find_spec(self, name, path=None, target=None):
            if name == "opentelemetry" or name.startswith("opentelemetry."):
                raise ImportError(f"{name} is blocked (no otel extra)")
            return None

    sys.meta_path.insert(0, BlockOpenTelemetry())

    import httpx, openai
    from turnstream import _tracing
    from turnstream.runtime import Agent, ConversationRegistry, tool

    assert not _tracing.OTEL_AVAILABLE
    tracing = _tracing.Tracing()
    assert not tracing.enabled
    assert tracing.span("a") is tracing.span("b")  # one shared no-op, no allocation
    assert tracing.start("a") is None

    def message(text):
        return {"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                "content": [{"type": "output_text", "text": text, "annotations": []}]}

    def call():
        return {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "add",
                "arguments": '{"a": 2, "b": 3}', "status": "completed"}

    def body(number, item):
        rid = f"resp_{number}"
        events = [
            {"type": "response.created", "response": {"id": rid, "status": "in_progress", "output": []}},
            {"type": "response.output_item.added", "output_index": 0, "item": item},
            {"type": "response.output_item.done", "output_index": 0, "item": item},
            {"type": "response.completed", "response": {"id": rid, "status": "completed", "output": [item],
             "usage": {"input_tokens": 3, "output_tokens": 1, "total_tokens": 4}}},
        ]
        return "".join(
            f"event: {e['type']}\\ndata: {json.dumps({**e, 'sequence_number': i})}\\n\\n"
            for i, e in enumerate(events)
        )

    requests = []

    def handler(request):
        requests.append(json.loads(request.content))
        item = call() if len(requests) == 1 else message("5")
        return httpx.Response(200, headers={"content-type": "text/event-stream"},
                              content=body(len(requests), item).encode())

    @tool
    def add(a: int, b: int) -> int:
        '''Add.'''
        return a + b

    async def main():
        http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        client = openai.AsyncOpenAI(base_url="http://model/v1", api_key="x", http_client=http)
        agent = Agent(client=client, model="m", tools=[add], registry=ConversationRegistry())
        result = await agent.run("add 2 and 3")
        await client.close()
        return result

    result = asyncio.run(main())
    assert result.final_output == "5", result
    assert requests[1]["input"][-1]["output"] == "5", requests[1]
    assert not [m for m in sys.modules if m.startswith("opentelemetry")]
    print("ok")
    """
)


def test_the_runtime_runs_a_tool_round_with_opentelemetry_absent() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
