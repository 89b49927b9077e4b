"""Pure ASGI middleware: cheap enough to sit in front of every streamed byte."""

from __future__ import annotations

import secrets

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["REQUEST_ID_KEY", "RequestIdMiddleware"]

REQUEST_ID_KEY = "turnstream.request_id"
"""Where the request id waits in the ASGI scope, for the request's log line."""


class RequestIdMiddleware:
    """Adds `x-request-id` to every HTTP response (the SDK exposes it as `_request_id`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = f"req_{secrets.token_hex(16)}".encode()
        scope[REQUEST_ID_KEY] = request_id.decode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id)]
            await send(message)

        await self.app(scope, receive, send_with_id)
