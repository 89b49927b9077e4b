"""One record per HTTP request: its metrics and its log line.

`AccessMiddleware` is pure ASGI (it sits in front of every streamed byte): it counts
the request by route template and status, keeps the
open-streams gauge, and when the body has ended writes one structured line to the
`turnstream.requests` logger: request id, route, status, and for a create request
the response id, conversation id, model, response status, time to first event,
duration and tokens. A route that starts a run hands it over with `attach_run`.

Prompt and output text are left out unless `Settings.log_content` is set. The
request's span is FastAPI's own (its native OpenTelemetry support); the server's
spans nest under it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .logs import REQUEST_LOGGER
from .middleware import REQUEST_ID_KEY

if TYPE_CHECKING:
    from fastapi import Request

    from .appstate import ServerState
    from .runs import ResponseRun

__all__ = ["AccessMiddleware", "attach_run"]

_RECORD_KEY = "turnstream.access"
# probes and scrapes are logged at debug level, or they would drown the requests
_QUIET_ROUTES = frozenset({"/metrics", "/healthz", "/readyz"})

log = logging.getLogger(REQUEST_LOGGER)


@dataclass(slots=True)
class _Record:
    started: float
    status: int = 0
    streaming: bool = False
    run: ResponseRun | None = None


def attach_run(request: Request, run: ResponseRun) -> None:
    """Tell the request's record which run it created (for its log line)."""
    record = request.scope.get(_RECORD_KEY)
    if record is not None:
        record.run = run


class AccessMiddleware:
    def __init__(self, app: ASGIApp, state: ServerState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        record = _Record(started=time.monotonic())
        scope[_RECORD_KEY] = record
        metrics = self.state.metrics
        method = scope["method"]

        async def observed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                record.status = message["status"]
                if _is_event_stream(message):
                    record.streaming = True
                    metrics.open_streams.inc()
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            if record.streaming:
                metrics.open_streams.dec()
            route = _route_template(scope)
            status = record.status or 500
            metrics.requests.labels(route, method, str(status)).inc()
            self._log(scope, record, route, status)

    def _log(self, scope: Scope, record: _Record, route: str, status: int) -> None:
        level = logging.DEBUG if route in _QUIET_ROUTES else logging.INFO
        if not log.isEnabledFor(level):
            return
        now = time.monotonic()
        fields: dict[str, Any] = {
            "request_id": scope.get(REQUEST_ID_KEY),
            "client": _client(scope),
            "method": scope["method"],
            "route": route,
            "status": status,
            "duration_ms": _ms(now - record.started),
        }
        if record.run is not None:
            fields.update(_run_fields(record.run, record.started, self.state.settings.log_content))
        log.log(
            level, "%s %s %d", scope["method"], scope.get("path"), status, extra={"fields": fields}
        )


def _client(scope: Scope) -> str | None:
    # the peer as uvicorn's access line showed it (behind --forwarded-allow-ips, the
    # forwarded client)
    client = scope.get("client")
    return None if not client else f"{client[0]}:{client[1]}"


def _run_fields(run: ResponseRun, started: float, with_content: bool) -> dict[str, Any]:
    response = run.response
    usage = response.usage
    first = run.first_event_at
    fields: dict[str, Any] = {
        "response_id": run.response_id,
        "conversation_id": response.conversation.id if response.conversation else None,
        "model": run.request.model,
        "response_status": response.status,
        "first_event_ms": None if first is None else _ms(first - started),
        "input_tokens": usage.input_tokens if usage else None,
        "output_tokens": usage.output_tokens if usage else None,
    }
    if with_content:
        fields["input"] = run.input_items
        fields["output"] = response.output_text
    return fields


def _route_template(scope: Scope) -> str:
    # the template, not the path: ids in label values would grow without bound
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


def _is_event_stream(message: Message) -> bool:
    for name, value in message.get("headers", ()):
        if name.lower() == b"content-type":
            return bytes(value).startswith(b"text/event-stream")
    return False


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)
