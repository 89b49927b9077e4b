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

With `store=false` the loop resends the whole context every request. On the
connection that carried the previous response, this transport sends only the new
items and that response's id instead: the server keeps the connection's last
response, and that is the point of WebSocket mode for such chains. After a
reconnect (or if the server answers `previous_response_not_found`) it sends the
whole context again; stored chains and conversations need nothing: their requests
name what the server holds.

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
from .history import replayable
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
        self._last: dict[ClientConnection, tuple[str, list[JSON]]] = {}
        """Per connection, its last `store=false` response: id, and the whole context
        a client resends after it (what the server keeps for the connection)."""

    async def aclose(self) -> None:
        """Close every connection (idle or not)."""
        connections, self._idle = list(self._open), []
        self._open.clear()
        await asyncio.gather(*(c.close() for c in connections), return_exceptions=True)

    async def stream(self, request: TurnRequest) -> AsyncGenerator[dict[str, Any], None]:
        body = {"type": "response.create", **request.body, **request.options}
        retries = 0
        while True:
            received = False
            try:
                async for event in self._one_attempt(body):
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

    async def _one_attempt(self, body: JSON) -> AsyncGenerator[JSON, None]:
        connection = await self._take()
        finished = False
        try:
            frame = self._continuation(connection, body)
            event = await self._first_event(connection, frame or body)
            if frame is not None and _code(event) == "previous_response_not_found":
                # the server no longer holds what this connection sent last: the
                # whole context, as after a reconnect
                self._last.pop(connection, None)
                event = await self._first_event(connection, body)
            while True:
                if event is not None:
                    if event.get("type") == "error" and "status" in event:
                        finished = True
                        raise self._status_error(event)
                    yield event
                    if event.get("type") in TERMINAL_TYPES:
                        finished = True
                        self._remember(connection, body, event)
                        return
                event = _object(await connection.recv())
        finally:
            if finished:
                self._idle.append(connection)
            else:
                self._open.discard(connection)
                self._last.pop(connection, None)
                await connection.close()

    @staticmethod
    async def _first_event(connection: ClientConnection, body: JSON) -> JSON | None:
        try:
            await connection.send(json.dumps(body))
            return _object(await connection.recv())
        except ConnectionClosed as exc:
            raise _Dropped(f"the WebSocket closed before the response began: {exc}") from exc

    def _continuation(self, connection: ClientConnection, body: JSON) -> JSON | None:
        """With `store: false`, the body as a continuation of this connection's last
        response (its id and only the new items), when the body resends that
        response's whole context; `None` otherwise."""
        last = self._last.get(connection)
        if last is None or body.get("store") is not False or "previous_response_id" in body:
            return None
        response_id, context = last
        items = body.get("input")
        if not isinstance(items, list) or items[: len(context)] != context:
            return None
        return {**body, "input": items[len(context) :], "previous_response_id": response_id}

    def _remember(self, connection: ClientConnection, body: JSON, terminal: JSON) -> None:
        response = terminal.get("response") or {}
        items = body.get("input")
        if (
            body.get("store") is not False
            or terminal.get("type") != "response.completed"
            or not isinstance(items, list)
        ):
            self._last.pop(connection, None)
            return
        output = [
            replayable(item)
            for item in response.get("output") or []
            if item.get("type") != "reasoning" or item.get("encrypted_content")
        ]
        self._last[connection] = (str(response.get("id")), [*items, *output])

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


def _code(event: JSON | None) -> str | None:
    if event is None or event.get("type") != "error":
        return None
    error = event.get("error")
    return error.get("code") if isinstance(error, dict) else None


def _object(raw: str | bytes) -> JSON | None:
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None
