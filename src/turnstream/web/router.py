"""`create_chat_router(...)`: the chat page at `/` and the API it streams from.

The runtime runs here, in the server process, so Python tools run next to the server;
it calls the server's own `/v1` API over loopback, exactly as any other client would,
which keeps the conversation lock and the persistence rules in one place. The page
gets the runtime's events (`turnstream.web.events`) over SSE from `POST /chat/api/turn`
and cancels a turn with `POST /chat/api/turn/{turn_id}/cancel`.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import openai
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from turnstream.runtime import Agent, AgentError, RunStream, Tool
from turnstream.runtime.builtin_tools import BUILTIN_TOOLS
from turnstream.sse import encode

from .chats import CHAT_INSTRUCTIONS, ChatIndex
from .events import event_to_dict
from .login import Caller, add_login_routes, api_key_of, same_site_only, self_base_url

__all__ = ["create_chat_router"]

log = logging.getLogger("turnstream.web")

STATIC = Path(__file__).parent / "static"
_ASSETS = {
    "app.js": "text/javascript",
    "markdown.js": "text/javascript",
    "style.css": "text/css",
}
# The page renders model output: no inline script, nothing from elsewhere.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


class TurnParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: str = Field(min_length=1, max_length=100_000)
    model: str = Field(min_length=1)
    conversation: str | None = None


def create_chat_router(  # noqa: C901  # the route closures count towards it; each route is a few lines
    index_path: Path,
    *,
    tools: Sequence[Tool] = BUILTIN_TOOLS,
    instructions: str = CHAT_INSTRUCTIONS,
    api_base_url: str | None = None,
    api_key: str = "turnstream-web",
) -> APIRouter:
    """Build the chat page's routes.

    Args:
        index_path: The JSON index of chats (see `ChatIndex`), for the sidebar.
        tools: The tools the runtime offers and runs in this process.
        instructions: Sent with every request.
        api_base_url: The Responses API to call; by default this server's own `/v1`,
            reached through the socket the page's request came in on.
        api_key: Sent as the bearer token to that API.
    """
    router = APIRouter(include_in_schema=False, dependencies=[Depends(same_site_only)])
    add_login_routes(router, api_base_url)
    index = ChatIndex(index_path)
    running: dict[str, RunStream] = {}

    @router.get("/")
    async def page() -> HTMLResponse:
        html = (STATIC / "index.html").read_text(encoding="utf-8")
        return HTMLResponse(html, headers={"Content-Security-Policy": _CSP})

    @router.get("/chat/static/{name}")
    async def asset(name: str) -> FileResponse:
        if name not in _ASSETS:
            raise HTTPException(404)
        return FileResponse(STATIC / name, media_type=_ASSETS[name])

    def _caller(request: Request) -> Caller:
        return Caller(api_base_url or self_base_url(request), api_key_of(request, api_key))

    @router.get("/chat/api/conversations")
    async def conversations(request: Request) -> JSONResponse:
        entries = index.list()
        visible = await _caller(request).visible([e.id for e in entries])
        data = [
            {"id": e.id, "title": e.title, "created_at": e.created_at, "updated_at": e.updated_at}
            for e in entries
            if e.id in visible
        ]
        return JSONResponse({"object": "list", "data": data})

    @router.delete("/chat/api/conversations/{conversation_id}")
    async def forget(conversation_id: str, request: Request) -> JSONResponse:
        if await _caller(request).visible([conversation_id]):
            index.forget(conversation_id)
        return JSONResponse({"id": conversation_id, "deleted": True})

    @router.get("/chat/api/tools")
    async def list_tools() -> JSONResponse:
        data = [{"name": t.name, "description": t.description} for t in tools]
        return JSONResponse({"object": "list", "data": data})

    @router.post("/chat/api/turn")
    async def turn(params: TurnParams, request: Request) -> StreamingResponse:
        base_url = api_base_url or self_base_url(request)
        turn_id = secrets.token_hex(8)
        return StreamingResponse(
            _turn_events(params, turn_id, base_url, api_key_of(request, api_key)),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @router.post("/chat/api/turn/{turn_id}/cancel")
    async def cancel(turn_id: str) -> JSONResponse:
        run = running.get(turn_id)
        if run is None:
            return JSONResponse({"id": turn_id, "cancelled": False}, status_code=404)
        run.cancel()
        return JSONResponse({"id": turn_id, "cancelled": True})

    async def _turn_events(
        params: TurnParams, turn_id: str, base_url: str, key: str
    ) -> AsyncIterator[bytes]:
        # the turn calls the API as the signed-in page: with its key and its project
        client = openai.AsyncOpenAI(base_url=base_url, api_key=key, max_retries=2)
        try:
            conversation = params.conversation
            if conversation is None:
                conversation = (await client.conversations.create()).id
            index.touch(conversation, params.message)
            yield encode({"type": "turn", "turn_id": turn_id, "conversation": conversation})
            agent = Agent(client=client, model=params.model, instructions=instructions, tools=tools)
            run = agent.stream(params.message, conversation=conversation)
            running[turn_id] = run
            try:
                async for event in run:
                    data = event_to_dict(event, include_raw=False)
                    if data is not None:
                        yield encode(data)
            finally:
                # A page that goes away cancels the response; the clean-up (cancelling
                # tools, owing their outputs to the next turn) must still run to the end.
                with anyio.CancelScope(shield=True):
                    await run.aclose()
            if run.cancelled:
                yield encode({"type": "cancelled", "turn_id": turn_id})
        except (openai.APIError, AgentError) as exc:
            yield encode({"type": "error", "message": _describe(exc)})
        except Exception as exc:
            log.exception("chat turn %s failed", turn_id)
            yield encode({"type": "error", "message": f"internal error: {exc}"})
        finally:
            running.pop(turn_id, None)
            with anyio.CancelScope(shield=True):
                await client.close()

    return router


def _describe(exc: BaseException) -> str:
    if isinstance(exc, openai.APIStatusError):
        body: Any = exc.body
        if isinstance(body, dict) and isinstance(body.get("message"), str):
            return f"{exc.status_code}: {body['message']}"
        return f"{exc.status_code}: {exc.message}"
    return str(exc) or type(exc).__name__
