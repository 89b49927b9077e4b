"""`WebSocketTransport`: the `Transport` over WebSocket mode on `/responses`.

Each logical request is one `response.create` frame on a connection that stays
open for the next one, so a tool loop pays the connection setup and the server's
request parse once, not once per round (websocket-compact.md §1). The loop cannot
tell it from `HTTPTransport`: the same wire events come back, one dict each, to the
terminal event, and the same errors are raised:

- an `error` frame (the nested `WebSocketErrorEvent`) becomes the
  `openai.APIStatusError` subclass its `status` names, so the retry policy
  (`conversation_locked`, 429, 5xx) and the callers' `except` clauses work as over
  HTTP;
- a connection that cannot be opened, or closes before the response's first event,
  is retried on a new connection (a resend is safe: the server saw nothing, or its
  disconnect cancelled the response); one that closes after events were received
  raises `StreamInterruptedError`.

Recovery after a reconnect needs nothing here: the loop's requests always carry
what the server needs without this connection's memory (a stored id or a
conversation, or the whole context with `store=false`).

A connection is reused only once its last response was read to the terminal event;
a caller that abandons a response mid-way closes its connection, which cancels the
response on the server as an HTTP disconnect does. Idle connections are pooled;
`aclose()` closes them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Mapping
from typing import Any

import openai
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from .errors import StreamInterruptedError
from .loop import TurnRequest
from .retry import RetryPolicy, is_retryable
from .turn import TERMINAL_TYPES

try:  # the SDK's own HTTP types: httpx2 for openai 3.x
    import httpx2 as http
except ImportError:  # pragma: no cover - openai 1.x builds errors from httpx's
    import httpx as http  # type: ignore[no-redef]  # the same API under its old name

__all__ = ["WebSocketTransport", "websocket_url"]

JSON = dict[str, Any]

_STATUS_ERRORS: Mapping[int, type[openai.APIStatusError]] = {
    400: openai.BadRequestError,
    401: openai.AuthenticationError,
    403: openai.PermissionDeniedError,
    404: openai.NotFoundError,
    409: openai.ConflictError,
    422: openai.UnprocessableEntityError,
    429: openai.RateLimitError,
}


def websocket_url(base_url: str) -> str:
    """`ws(s)://.../responses` for a client's `http(s)://...` base URL."""
    url = str(base_url).rstrip("/")
    if url.startswith("https://"):
        url = "wss://" + url.removeprefix("https://")
    elif url.startswith("http://"):
        url = "ws://" + url.removeprefix("http://")
    return f"{url}/responses"


class _Dropped(Exception):
    """The connection failed before the response's first event: safe to resend."""


class WebSocketTransport:
    """`response.create` frames over pooled WebSocket connections.

    Args:
        client: Where to connect and how to authenticate (`base_url`, `api_key`,
            `default_headers` are used; the SDK itself sends nothing).
        policy: When to resend.
    """

    def __init__(self, client: openai.AsyncOpenAI, policy: RetryPolicy) -> None:
        self.url = websocket_url(str(client.base_url))
        self.headers = {
            **{k: v for k, v in client.default_headers.items() if isinstance(v, str)},
            "Authorization": f"Bearer {client.api_key}",
        }
        self.policy = policy
        self._idle: list[ClientConnection] = []
        self._open: set[ClientConnection] = set()

    async def aclose(self) -> None:
        """Close every connection (idle or not)."""
        connections, self._idle = list(self._open), []
        self._open.clear()
        await asyncio.gather(*(c.close() for c in connections), return_exceptions=True)

    async def stream(self, request: TurnRequest) -> AsyncGenerator[dict[str, Any], None]:
        frame = json.dumps({"type": "response.create", **request.body, **request.options})
        retries = 0
        while True:
            received = False
            try:
                async for event in self._one_attempt(frame):
                    received = True
                    yield event
                return
            except (_Dropped, openai.APIStatusError, openai.APIConnectionError) as exc:
                if not isinstance(exc, _Dropped) and not is_retryable(exc):
                    raise
                error: BaseException = exc
            except ConnectionClosed as exc:
                if received:
                    raise StreamInterruptedError(
                        f"the WebSocket closed mid-response: {exc}"
                    ) from exc
                error = _Dropped(str(exc))
            if retries + 1 >= self.policy.max_attempts:
                if isinstance(error, _Dropped):
                    raise StreamInterruptedError(str(error)) from None
                raise error
            await self.policy.sleep(self.policy.delay(retries, None))
            retries += 1

    async def _one_attempt(self, frame: str) -> AsyncGenerator[JSON, None]:
        connection = await self._take()
        finished = False
        try:
            try:
                await connection.send(frame)
                first = await connection.recv()
            except ConnectionClosed as exc:
                raise _Dropped(f"the WebSocket closed before the response began: {exc}") from exc
            event = _object(first)
            while True:
                if event is not None:
                    if event.get("type") == "error" and "status" in event:
                        finished = True
                        raise self._status_error(event)
                    yield event
                    if event.get("type") in TERMINAL_TYPES:
                        finished = True
                        return
                event = _object(await connection.recv())
        finally:
            if finished:
                self._idle.append(connection)
            else:
                self._open.discard(connection)
                await connection.close()

    async def _take(self) -> ClientConnection:
        while self._idle:
            connection = self._idle.pop()
            if connection.close_code is None:
                return connection
            self._open.discard(connection)
        try:
            connection = await connect(self.url, additional_headers=self.headers)
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
            raise openai.APIConnectionError(request=self._request()) from exc
        self._open.add(connection)
        return connection

    def _request(self) -> http.Request:
        return http.Request("GET", self.url.replace("ws", "http", 1))

    def _status_error(self, frame: JSON) -> openai.APIStatusError:
        status = int(frame.get("status") or 500)
        error = frame.get("error") if isinstance(frame.get("error"), dict) else {}
        response = http.Response(status, json={"error": error}, request=self._request())
        kind = _STATUS_ERRORS.get(status)
        if kind is None:
            kind = openai.InternalServerError if status >= 500 else openai.APIStatusError
        message = f"Error code: {status} - {json.dumps({'error': error})}"
        return kind(message, response=response, body=error)


def _object(raw: str | bytes) -> JSON | None:
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None
