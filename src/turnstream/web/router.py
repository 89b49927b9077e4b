"""`create_chat_router(...)`: the chat page at `/` and the API it streams from.

The runtime runs here, in the server process, so Python tools run next to the server;
it calls the server's own `/v1` API over loopback, exactly as any other client would,
which keeps the conversation lock and the persistence rules in one place. The page
gets the runtime's events (`turnstream.web.events`) over SSE from `POST /chat/api/turn`
and cancels a turn with `POST /chat/api/turn/{turn_id}/cancel`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import httpx
import openai
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from turnstream.runtime import Agent, AgentError, RunStream, Tool
from turnstream.runtime.builtin_tools import BUILTIN_TOOLS
from turnstream.sse import encode

from .chats import CHAT_INSTRUCTIONS, ChatIndex
from .events import event_to_dict

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


KEY_COOKIE = "turnstream_key"
"""Holds the page's API key: HttpOnly (no script reads it), SameSite=Strict (no other
site's request carries it). The server accepts it for `/chat/api` and for `GET /v1`."""
_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


class LoginParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str = Field(min_length=1, max_length=500)


def _same_site_only(request: Request) -> None:
    """Refuse a state-changing request that another site's page made.

    Browsers send `Sec-Fetch-Site` (and `Origin` on POST/DELETE); a request from
    this page says `same-origin`. Clients that are not browsers send neither.
    """
    if request.method in _SAFE_METHODS:
        return
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise HTTPException(403, "cross-site request refused")
    origin = request.headers.get("origin")
    if origin is not None and origin.split("://", 1)[-1] != request.headers.get("host"):
        raise HTTPException(403, "cross-site request refused")


class TurnParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: str = Field(min_length=1, max_length=100_000)
    model: str = Field(min_length=1)
    conversation: str | None = None


def _self_base_url(request: Request) -> str:
    """The `/v1` URL of the socket this request came in on: this very server."""
    server = request.scope.get("server")
    if server and server[1]:
        host = str(server[0])
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{server[1]}/v1"
    return str(request.base_url).rstrip("/") + "/v1"


def create_chat_router(
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
    router = APIRouter(include_in_schema=False, dependencies=[Depends(_same_site_only)])
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

    @router.post("/chat/login")
    async def login(params: LoginParams, request: Request) -> JSONResponse:
        """Check the key against the API, then keep it in the page's cookie."""
        base_url = api_base_url or _self_base_url(request)
        async with httpx.AsyncClient(timeout=10) as http:
            answer = await http.get(
                base_url + "/models", headers={"authorization": f"Bearer {params.key}"}
            )
        if answer.status_code != 200:
            return JSONResponse({"ok": False}, status_code=401)
        response = JSONResponse({"ok": True})
        response.set_cookie(
            KEY_COOKIE,
            params.key,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )
        return response

    @router.post("/chat/logout")
    async def logout() -> JSONResponse:
        response = JSONResponse({"ok": True})
        response.delete_cookie(KEY_COOKIE, path="/", httponly=True, samesite="strict")
        return response

    async def _visible(request: Request, ids: list[str]) -> set[str]:
        """The conversations the caller's key may read: the index is shared by every
        project, so each entry is checked with the API (another project's is a 404)."""
        base_url = api_base_url or _self_base_url(request)
        key = request.cookies.get(KEY_COOKIE) or _bearer(request) or api_key
        headers = {"authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=10) as http:

            async def check(conversation_id: str) -> str | None:
                answer = await http.get(f"/conversations/{conversation_id}")
                return conversation_id if answer.status_code == 200 else None

            found = await asyncio.gather(*(check(i) for i in ids))
        return {i for i in found if i is not None}

    @router.get("/chat/api/conversations")
    async def conversations(request: Request) -> JSONResponse:
        entries = index.list()
        visible = await _visible(request, [e.id for e in entries])
        data = [
            {"id": e.id, "title": e.title, "created_at": e.created_at, "updated_at": e.updated_at}
            for e in entries
            if e.id in visible
        ]
        return JSONResponse({"object": "list", "data": data})

    @router.delete("/chat/api/conversations/{conversation_id}")
    async def forget(conversation_id: str, request: Request) -> JSONResponse:
        if await _visible(request, [conversation_id]):
            index.forget(conversation_id)
        return JSONResponse({"id": conversation_id, "deleted": True})

    @router.get("/chat/api/tools")
    async def list_tools() -> JSONResponse:
        data = [{"name": t.name, "description": t.description} for t in tools]
        return JSONResponse({"object": "list", "data": data})

    @router.post("/chat/api/turn")
    async def turn(params: TurnParams, request: Request) -> StreamingResponse:
        base_url = api_base_url or _self_base_url(request)
        turn_id = secrets.token_hex(8)
        key = request.cookies.get(KEY_COOKIE) or _bearer(request) or api_key
        return StreamingResponse(
            _turn_events(params, turn_id, base_url, key),
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


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token if scheme.lower() == "bearer" and token else None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, openai.APIStatusError):
        body: Any = exc.body
        if isinstance(body, dict) and isinstance(body.get("message"), str):
            return f"{exc.status_code}: {body['message']}"
        return f"{exc.status_code}: {exc.message}"
    return str(exc) or type(exc).__name__
