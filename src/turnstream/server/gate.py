"""`RequestGate`: the ASGI middleware every request passes before any route runs.

For the protected paths (`/v1` and the chat page's API) it authenticates the caller
(`auth.authenticate`) and applies the key's request rate; for every request it
reads the body under a size limit and a deadline before the app sees it, so a
client that sends too much, or byte by byte, holds neither memory nor a worker for
long. The buffered body is then handed to the app as one message.

Refusals are OpenAI's error JSON, rendered here (the app's exception handlers do
not run outside the app).
"""

from __future__ import annotations

import asyncio
import time

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from turnstream.protocol.errors import INVALID_REQUEST, APIError

from .appstate import ServerState
from .auth import Principal, authenticate, set_principal
from .limits import rate_limited, too_large

__all__ = ["PROTECTED_PREFIXES", "RequestGate"]

PROTECTED_PREFIXES = ("/v1/", "/chat/api/")
_COOKIE_PREFIXES = ("/chat/api/",)


def _protected(path: str) -> bool:
    return path == "/v1" or path.startswith(PROTECTED_PREFIXES)


class _BodyRefused(Exception):
    def __init__(self, error: APIError) -> None:
        self.error = error


class RequestGate:
    """Authentication, request rate and body limits, in front of the app."""

    def __init__(self, app: ASGIApp, *, state: ServerState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and _protected(scope["path"]):
            # the WebSocket route authenticates on its upgrade (auth.authenticate)
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra_headers: dict[str, str] = {}
        try:
            if _protected(scope["path"]):
                principal = await self._admit(scope, extra_headers)
                set_principal(scope, principal)
            body = await self._read_body(scope, receive)
        except APIError as error:
            await _reject(error, extra_headers, scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), _with_headers(send, extra_headers))

    async def _admit(self, scope: Scope, extra_headers: dict[str, str]) -> Principal:
        headers = Headers(scope=scope)
        # the chat page's cookie (SameSite=Strict) is good for its own API and for
        # reading /v1; a /v1 write always needs the Authorization header
        allow_cookie = scope["path"].startswith(_COOKIE_PREFIXES) or scope["method"] in (
            "GET",
            "HEAD",
        )
        principal = await authenticate(self.state, headers, allow_cookie=allow_cookie)
        rates = self.state.rates
        if rates is not None and principal.key_id is not None:
            decision = rates.take(principal.key_id)
            extra_headers.update(decision.headers())
            if not decision.allowed:
                raise rate_limited(decision)
        return principal

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        limits = self.state.settings.limits
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limits.max_body_bytes:
            raise too_large(limits.max_body_bytes)
        deadline = time.monotonic() + limits.body_timeout
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await _receive_by(receive, deadline)
            if message["type"] != "http.request":
                # the client went away before its body was complete
                raise APIError(400, INVALID_REQUEST, "The request body was not complete.")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limits.max_body_bytes:
                raise too_large(limits.max_body_bytes)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


async def _receive_by(receive: Receive, deadline: float) -> Message:
    try:
        async with asyncio.timeout(max(deadline - time.monotonic(), 0.001)):
            return await receive()
    except TimeoutError:
        raise APIError(
            408, INVALID_REQUEST, "The request body did not arrive in time.", code="timeout"
        ) from None


def _replay(body: bytes, receive: Receive) -> Receive:
    """The buffered body as one message, then the client's own messages
    (a disconnect while the response streams)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def _with_headers(send: Send, headers: dict[str, str]) -> Send:
    if not headers:
        return send
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), *raw]
        await send(message)

    return sending


async def _reject(
    error: APIError, extra: dict[str, str], scope: Scope, receive: Receive, send: Send
) -> None:
    headers = {**extra, **error.headers}
    if error.status in (408, 413):
        # the rest of the body is not read: close the connection after answering
        headers["connection"] = "close"
    response = JSONResponse(error.to_body(), status_code=error.status, headers=headers)
    await response(scope, receive, send)
