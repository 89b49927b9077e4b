"""Fault injection for `POST /v1/responses`: off unless configured.

It lets users (and our own tests) check that a client survives the failures a real
service produces: 429 with `retry-after-ms`, 503 and `conversation_locked`. A
connection dropped before the first byte cannot be produced from inside an ASGI app
(the server answers 500 instead), so the tests put a TCP proxy in front for that.
"""

from __future__ import annotations

from turnstream.protocol.errors import APIError

from .appstate import ServerState
from .errors import locked_error

__all__ = ["inject_faults"]


def inject_faults(state: ServerState) -> None:
    """Raise the injected failure, if this request draws one."""
    faults = state.settings.faults
    if not faults.enabled:
        return
    roll = state.rng.random()
    headers = {"retry-after-ms": str(faults.retry_after_ms)}
    if roll < faults.rate_limit:
        raise APIError(
            429,
            "requests",
            "Rate limit reached (injected fault). Please try again shortly.",
            code="rate_limit_exceeded",
            headers=headers,
        )
    roll -= faults.rate_limit
    if roll < faults.unavailable:
        raise APIError(
            503,
            "server_error",
            "The server is temporarily unavailable (injected fault).",
            code="server_error",
            headers=headers,
        )
    roll -= faults.unavailable
    if roll < faults.conversation_locked:
        raise locked_error(faults.retry_after_ms / 1000, should_retry=True)
