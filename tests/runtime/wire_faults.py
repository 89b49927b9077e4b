"""A Responses endpoint that misbehaves on the wire, in process (httpx's MockTransport).

The real server never breaks a stream mid-way, never ends a body without a terminal
event and never sends a frame that is not JSON; a proxy or a crashed server does.
`WireFaults` plays one scripted body per request (`bodies`), and records the request
bodies it was sent. Everything else the runtime does is tested against the real server.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx2
import openai

BREAK = object()
"""In a body: the connection drops here."""


def frame(kind: str, **fields: Any) -> bytes:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **fields})}\n\n".encode()


def created(response_id: str = "resp_1") -> bytes:
    return frame("response.created", response={"id": response_id, "status": "in_progress"})


def text(delta: str) -> bytes:
    return frame("response.output_text.delta", item_id="msg_1", delta=delta)


def call(call_id: str, name: str = "add", arguments: str = '{"a": 1, "b": 2}') -> bytes:
    item = {"type": "function_call", "id": f"fc_{call_id}", "call_id": call_id, "name": name}
    return frame("response.output_item.done", output_index=0, item={**item, "arguments": arguments})


def completed(response_id: str = "resp_1", output: Sequence[Any] = ()) -> bytes:
    response = {"id": response_id, "status": "completed", "output": list(output)}
    return frame("response.completed", response=response)


class _Body(httpx2.AsyncByteStream):
    def __init__(self, parts: Sequence[bytes | object]) -> None:
        self.parts = parts

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for part in self.parts:
            if part is BREAK:
                raise httpx2.ReadError("connection dropped (wire fault)")
            assert isinstance(part, bytes)
            yield part


class WireFaults:
    """Answers each `POST /responses` with the next scripted body, as a 200 stream."""

    def __init__(self, *bodies: Sequence[bytes | object]) -> None:
        self.bodies = list(bodies)
        self.requests: list[dict[str, Any]] = []

    def client(self) -> openai.AsyncOpenAI:
        http = httpx2.AsyncClient(transport=httpx2.MockTransport(self._handle))
        return openai.AsyncOpenAI(base_url="http://wire.test/v1", api_key="k", http_client=http)

    def _handle(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(json.loads(request.content))
        body = self.bodies.pop(0)
        return httpx2.Response(
            200, headers={"content-type": "text/event-stream"}, stream=_Body(body)
        )
