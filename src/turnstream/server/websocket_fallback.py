"""WebSocket upgrades on `/v1/responses`, answered so that clients fall back to HTTP.

Codex CLI first tries OpenAI's WebSocket mode for responses. This server has no
WebSocket mode yet, so the upgrade is refused with `426 Upgrade Required` (an
HTTP denial response, in OpenAI's error shape), after which Codex uses a plain
`POST /v1/responses` at once instead of retrying the socket.
"""

from __future__ import annotations

from fastapi import APIRouter, WebSocket
from fastapi.responses import JSONResponse

from turnstream.protocol.errors import APIError

__all__ = ["router"]

router = APIRouter()

_NO_WEBSOCKETS = APIError(
    426,
    "invalid_request_error",
    "WebSocket mode is not supported by this server; use POST /v1/responses.",
    code="websocket_not_supported",
)


@router.websocket("/v1/responses")
async def refuse_websocket(websocket: WebSocket) -> None:
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(
            JSONResponse(_NO_WEBSOCKETS.to_body(), status_code=_NO_WEBSOCKETS.status)
        )
    else:
        # a server without denial responses can only refuse the handshake
        await websocket.close(code=1008, reason=_NO_WEBSOCKETS.message)
