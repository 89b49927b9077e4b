"""The chat page's login, and who a chat request acts as.

The page's API key lives in an HttpOnly, SameSite=Strict cookie (no script can read
it, no other site's request carries it). The chat routes call the server's `/v1`
API with that key, so the server's own checks (keys, projects, limits) apply to the
page exactly as to any client. State-changing chat routes also refuse requests
that a browser marks as coming from another site.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "KEY_COOKIE",
    "Caller",
    "add_login_routes",
    "api_key_of",
    "same_site_only",
    "self_base_url",
]

KEY_COOKIE = "turnstream_key"
"""The server accepts this cookie for `/chat/api` and for `GET /v1` (never a `/v1` write)."""
_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


class LoginParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str = Field(min_length=1, max_length=500)


def self_base_url(request: Request) -> str:
    """The `/v1` URL of the socket this request came in on: this very server."""
    server = request.scope.get("server")
    if server and server[1]:
        host = str(server[0])
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{server[1]}/v1"
    return str(request.base_url).rstrip("/") + "/v1"


def api_key_of(request: Request, default: str) -> str:
    """The key the page signed in with (cookie), or the request's bearer token."""
    cookie = request.cookies.get(KEY_COOKIE)
    if cookie:
        return cookie
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token if scheme.lower() == "bearer" and token else default


def same_site_only(request: Request) -> None:
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


@dataclass(frozen=True, slots=True)
class Caller:
    """The API as one chat request's key sees it."""

    base_url: str
    key: str

    async def visible(self, conversation_ids: list[str]) -> set[str]:
        """The conversations this key may read. The chat index is shared by every
        project, so each entry is checked with the API (another project's is a 404)."""
        headers = {"authorization": f"Bearer {self.key}"}
        async with httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=10) as http:

            async def check(conversation_id: str) -> str | None:
                answer = await http.get(f"/conversations/{conversation_id}")
                return conversation_id if answer.status_code == 200 else None

            found = await asyncio.gather(*(check(i) for i in conversation_ids))
        return {i for i in found if i is not None}


def add_login_routes(router: APIRouter, api_base_url: str | None) -> None:
    """`POST /chat/login` (check the key with the API, then set the cookie) and
    `POST /chat/logout`."""

    @router.post("/chat/login")
    async def login(params: LoginParams, request: Request) -> JSONResponse:
        base_url = api_base_url or self_base_url(request)
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
