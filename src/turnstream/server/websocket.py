"""WebSocket mode on `/v1/responses`: one connection, many `response.create` frames.

The wire is in `../shared/docs/websocket-compact.md` §1. A connection is a
`SocketSession`: a reader takes frames off the socket into a queue, and one worker
answers them in order, one response at a time, through the same `admit()` and
`ResponseRun` as `POST /v1/responses`; the lease, and persist, release, then
announce, are therefore exactly as over HTTP. What differs:

- errors outside a response's own stream are a nested `WebSocketErrorEvent` frame
  (`{"type": "error", "status", "error": {...}}`) and the connection stays usable;
- the connection keeps its last response's whole context (`LastResponse`), the only
  way to continue a `store=false` response, and a hot copy of a stored one; a
  continuation that fails evicts the id it named;
- the connection closes after `Settings.websocket_max_seconds`, with an error frame
  coded `websocket_connection_limit_reached`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, WebSocket
from fastapi.responses import JSONResponse
from starlette.websockets import WebSocketDisconnect, WebSocketState

from turnstream import sse
from turnstream.protocol import errors as E
from turnstream.protocol import parse_create_params

from .admission import admit
from .appstate import ServerState
from .auth import authenticate
from .errors import from_provider_error
from .hosted_tools import offer_tools
from .limits import Limits, check_create_body
from .runs import ResponseRun, launch

__all__ = ["LastResponse", "SocketSession", "router"]

log = logging.getLogger("turnstream.server")

router = APIRouter(prefix="/v1", tags=["responses"])

JSON = dict[str, Any]

CREATE = "response.create"
_HTTP_ONLY = ("stream", "stream_options", "background")
"""Create-body fields the WebSocket schema forbids: a frame carrying one is refused."""


@dataclass(frozen=True, slots=True)
class LastResponse:
    """The connection's most recent completed response and its whole context."""

    response_id: str
    context: list[JSON]
    """Everything a continuation from it sees: earlier context, input, output."""


def error_frame(error: E.APIError) -> JSON:
    """The nested `WebSocketErrorEvent` of an API error.

    The schema requires a string `code` where the HTTP body allows `null`: an error
    without its own code carries its type there.
    """
    body = error.to_body()["error"]
    if body["code"] is None:
        body["code"] = error.type
    return {"type": "error", "status": error.status, "error": body}


def connection_limit_reached(seconds: float) -> E.APIError:
    return E.APIError(
        400,
        E.INVALID_REQUEST,
        f"This WebSocket connection reached its time limit of {seconds:g} seconds; "
        "open a new connection to continue.",
        code="websocket_connection_limit_reached",
    )


@router.websocket("/responses")
async def responses_socket(websocket: WebSocket) -> None:
    state: ServerState = websocket.app.state.turnstream
    # the upgrade carries the `Authorization` header the client sends over HTTP; a
    # refusal is the same 401 body, before the connection is accepted
    headers = {name.lower(): value for name, value in websocket.headers.items()}
    try:
        principal = await authenticate(state, headers)
    except E.APIError as error:
        await websocket.send_denial_response(
            JSONResponse(error.to_body(), status_code=error.status, headers=error.headers)
        )
        return
    await websocket.accept()
    await SocketSession(state, websocket, project=principal.project).serve()


class SocketSession:
    """One WebSocket connection: its queue of creates and its last response."""

    def __init__(self, state: ServerState, websocket: WebSocket, *, project: str) -> None:
        self.state = state
        self.websocket = websocket
        self.project = project
        self.last: LastResponse | None = None
        self.deadline = time.monotonic() + state.settings.websocket_max_seconds
        self._frames: asyncio.Queue[str | None] = asyncio.Queue()

    async def serve(self) -> None:
        reader = asyncio.create_task(self._read())
        try:
            await self._work(reader)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            if self.websocket.application_state != WebSocketState.DISCONNECTED:
                with contextlib.suppress(Exception):
                    await self.websocket.close()

    async def _read(self) -> None:
        """Queue every text frame; `None` marks the client's going away."""
        try:
            while True:
                self._frames.put_nowait(await self.websocket.receive_text())
        except (WebSocketDisconnect, RuntimeError):
            # RuntimeError: receive after the close handshake; the same end for us
            self._frames.put_nowait(None)

    async def _work(self, reader: asyncio.Task[None]) -> None:
        while True:
            remaining = self.deadline - time.monotonic()
            try:
                async with asyncio.timeout(max(remaining, 0)):
                    frame = await self._frames.get()
            except TimeoutError:
                limit = self.state.settings.websocket_max_seconds
                await self._send(error_frame(connection_limit_reached(limit)))
                return
            if frame is None:
                return
            answer = asyncio.create_task(self._answer(frame))
            # a client that leaves mid-response cancels it, as an HTTP disconnect does
            gone = asyncio.create_task(self._client_gone(reader))
            try:
                await asyncio.wait({answer, gone}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                gone.cancel()
                if not answer.done():
                    answer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await answer
            if reader.done() and self._frames.empty():
                return

    @staticmethod
    async def _client_gone(reader: asyncio.Task[None]) -> None:
        await asyncio.shield(reader)

    async def _answer(self, frame: str) -> None:
        """Answer one client frame: a response's events, or one error frame."""
        referenced: str | None = None
        run: ResponseRun | None = None
        try:
            params = _parse_frame(frame, self.state.settings.limits)
            referenced = params.previous_response_id
            prior = None
            if referenced is not None:
                prior = self._prior(referenced, stored=params.store)
            toolset = offer_tools(params, self.state.settings)
            admission = await admit(
                self.state, params, toolset, project=self.project, prior=prior, overlap_insert=True
            )
            # as over HTTP: the model is asked while the stored response's insert
            # commits, and nothing is sent before the row exists
            run = launch(self.state, admission)
            await run.persisted()
        except E.APIError as error:
            await _abandon(run)
            self._evict(referenced)
            await self._send(error_frame(error))
            return
        except Exception:
            await _abandon(run)
            # over HTTP the app's handler would answer 500; here the connection must
            # stay usable, so the frame says it
            log.exception("a WebSocket response.create failed")
            self._evict(referenced)
            await self._send(error_frame(E.server_error()))
            return
        except BaseException:  # the connection is going away
            if run is not None:
                run.cancel()
                run.body_closed()
            raise
        try:
            await self._stream(run, referenced)
        finally:
            run.body_closed()

    def _prior(self, response_id: str, *, stored: bool | None) -> list[JSON] | None:
        """The cached context of `response_id`; `None` lets admission load a stored
        one. With `store=false` only the cache can answer."""
        if self.last is not None and self.last.response_id == response_id:
            return self.last.context
        if stored is False:
            raise E.previous_response_not_found(response_id)
        return None

    def _evict(self, response_id: str | None) -> None:
        if self.last is not None and self.last.response_id == response_id:
            self.last = None

    async def _stream(self, run: ResponseRun, referenced: str | None) -> None:
        try:
            error = await run.wait_for_first_delta()
            if error is not None:
                self._evict(referenced)
                await self._send(error_frame(from_provider_error(error)))
                return
            decoder = sse.Decoder()
            async for chunk in run.chunks():
                for event in decoder.feed(chunk):
                    await self.websocket.send_text(event.data)
        except BaseException:
            run.cancel()
            raise
        self._remember(run, referenced)

    def _remember(self, run: ResponseRun, referenced: str | None) -> None:
        response = run.response
        if response.status not in ("completed", "incomplete"):
            # a failed or cancelled continuation: nothing to continue from
            self._evict(referenced)
            return
        admission_context = run.context
        output = [item.model_dump(mode="json") for item in response.output]
        self.last = LastResponse(
            run.response_id, [*(dict(item) for item in admission_context), *output]
        )

    async def _send(self, frame: JSON) -> None:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
            await self.websocket.send_text(json.dumps(frame))


async def _abandon(run: ResponseRun | None) -> None:
    """A run whose insert failed: stop the model and let the run settle, writing
    nothing and letting its lease go, before the error frame is sent."""
    if run is None:
        return
    run.cancel()
    await run.result()
    run.body_closed()


def _parse_frame(frame: str, limits: Limits) -> Any:
    """A client frame as create params, or the `APIError` that refuses it (with the
    same limits on items, tools and metadata as over HTTP)."""
    try:
        body = json.loads(frame)
    except ValueError:
        raise E.malformed_json() from None
    if not isinstance(body, dict):
        raise E.malformed_json()
    kind = body.pop("type", None)
    if kind != CREATE:
        raise E.invalid_request(
            f"Invalid value for 'type': expected '{CREATE}', got {kind!r}.",
            param="type",
            code="invalid_value",
        )
    for name in _HTTP_ONLY:
        if name in body:
            raise E.invalid_request(
                f"'{name}' is not supported in WebSocket mode: every response streams "
                "over the connection.",
                param=name,
                code="unknown_parameter",
            )
    check_create_body(body, limits)
    return parse_create_params(body)
