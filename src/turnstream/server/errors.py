"""One place that turns every failure into OpenAI's error JSON.

Route code raises `APIError`; FastAPI's own validation errors and unknown routes are
mapped here too, so a client never sees a framework-shaped error body.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from turnstream.protocol import errors as protocol_errors
from turnstream.protocol.errors import APIError
from turnstream.providers.base import ProviderError
from turnstream.storage import is_unavailable

from .appstate import ServerState

__all__ = [
    "conversation_locked",
    "from_provider_error",
    "install_error_handlers",
    "locked_error",
]

log = logging.getLogger("turnstream.server")


def _render(error: APIError) -> JSONResponse:
    return JSONResponse(error.to_body(), status_code=error.status, headers=dict(error.headers))


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, APIError)
    return _render(exc)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
    param = ".".join(loc) or None
    message = (
        f"Invalid value for '{param}': {first.get('msg', 'invalid')}."
        if param
        else "Invalid request."
    )
    return _render(
        APIError(400, "invalid_request_error", message, code="invalid_value", param=param)
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        message = f"Invalid URL ({request.method} {request.url.path})"
    elif exc.status_code == 405:
        message = f"Method {request.method} is not allowed on {request.url.path}."
    else:
        message = str(exc.detail)
    return _render(APIError(exc.status_code, "invalid_request_error", message))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    if is_unavailable(exc):
        # the database went away (a restart, dropped connections): the pool
        # reconnects, so the same request can succeed shortly
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
        return _render(
            protocol_errors.server_error(
                "The database is unavailable right now; please retry.",
                status=503,
                headers={"retry-after": "1"},
            )
        )
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return _render(protocol_errors.server_error())


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(APIError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)


def locked_error(retry_after: float, *, should_retry: bool) -> APIError:
    """OpenAI's `conversation_locked` 400, plus hints for well-behaved clients.

    `retry-after-ms` estimates when the holder will be done. `x-should-retry: true`
    makes the official SDK retry this 400 on its own (it obeys that header ahead of
    its status rules), so an honest collision heals without user code.
    """
    error = protocol_errors.conversation_locked()
    error.headers["retry-after-ms"] = str(max(int(retry_after * 1000), 1))
    if should_retry:
        error.headers["x-should-retry"] = "true"
    return error


async def conversation_locked(state: ServerState, conversation_id: str) -> APIError:
    """The locked error with a `retry-after-ms` estimate from recent turn durations."""
    state.metrics.conversation_locked.inc()
    estimate = min(max(state.typical_turn_seconds() / 2, 0.1), 2.0)
    expires = await state.store.lock_expires_in(conversation_id)
    if expires is not None:
        estimate = min(estimate, max(expires, 0.05))
    # after_body imitates OpenAI's hosted service, which sends no retry hint
    return locked_error(estimate, should_retry=state.settings.lock_release == "before_terminal")


def from_provider_error(error: ProviderError) -> APIError:
    """A provider failure before the first event, as a plain HTTP error."""
    headers: dict[str, str] = {}
    if error.retry_after is not None:
        headers["retry-after-ms"] = str(int(error.retry_after * 1000))
        headers["retry-after"] = str(max(int(error.retry_after + 0.999), 1))
    if error.status == 429:
        return APIError(
            429,
            "requests",
            error.message,
            code=error.code or "rate_limit_exceeded",
            headers=headers,
        )
    if 400 <= error.status < 500:
        return APIError(
            error.status, "invalid_request_error", error.message, code=error.code, headers=headers
        )
    return APIError(
        error.status if error.status >= 500 else 502,
        "server_error",
        error.message,
        code=error.code,
        headers=headers,
    )
