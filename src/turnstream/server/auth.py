"""Who is asking: API keys, the project they act for, and the edge that checks them.

`authenticate(state, headers)` is the one check, shared by every transport: the
HTTP middleware below calls it for `/v1` and the chat page's API, and a WebSocket
handler calls it on the upgrade's headers. With no key configured (and
`Settings.require_auth` off) everyone is the anonymous principal of project
`default`; once a key exists, a request without a valid one is 401
`invalid_api_key`, decided before any route runs, so the answer never depends on
whether the requested resource exists.

Keys are looked up in the database and the answer kept for `auth_cache_ttl`
seconds, so a revoked key stops working on every replica within that time.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Coroutine, Mapping, MutableMapping
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import TYPE_CHECKING, Any, TypeVar

from fastapi import Request

from turnstream.protocol.errors import INVALID_REQUEST, APIError
from turnstream.storage.base import Store
from turnstream.storage.schema import DEFAULT_PROJECT

if TYPE_CHECKING:
    from .appstate import ServerState

T = TypeVar("T")

__all__ = [
    "ANONYMOUS",
    "KEY_COOKIE",
    "KeyCache",
    "Principal",
    "authenticate",
    "invalid_api_key",
    "principal_of",
    "project_store",
    "set_principal",
]

KEY_COOKIE = "turnstream_key"
"""The chat page's login keeps the key in this (HttpOnly, SameSite=Strict) cookie."""

_PRINCIPAL = "turnstream.principal"


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: its key (None without keys) and the project it acts for."""

    project: str
    key_id: str | None = None
    key_name: str | None = None


ANONYMOUS = Principal(project=DEFAULT_PROJECT)


def invalid_api_key(*, missing: bool) -> APIError:
    """OpenAI's 401; it never repeats the key it was given (logs would keep it)."""
    message = (
        "You didn't provide an API key. You need to provide your API key in an "
        "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
        if missing
        else "Incorrect API key provided. You can create a key with `turnstream keys create`."
    )
    return APIError(401, INVALID_REQUEST, message, code="invalid_api_key")


class KeyCache:
    """Recent answers of the database about keys, kept `ttl` seconds (so a
    revocation reaches every replica within `ttl`).

    An answer past half its life is still used, and asked again in the background
    (refresh ahead): under steady traffic no request waits for the database, which
    used to put a key look-up in front of every request's first token each `ttl`.
    No answer older than `ttl` is ever used."""

    def __init__(self, ttl: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._now = clock
        self._has_keys: tuple[bool, float] | None = None
        self._asking: asyncio.Future[bool] | None = None
        self._principals: dict[str, tuple[Principal, float]] = {}
        self._refreshing: dict[str, asyncio.Future[Principal | None]] = {}

    async def aclose(self) -> None:
        """Stop the look-ups still running (before the store closes under them)."""
        running: list[asyncio.Future[Any]] = [*self._refreshing.values()]
        if self._asking is not None:
            running.append(self._asking)
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)

    def _ageing(self, expires: float, now: float) -> bool:
        return expires - now < self.ttl / 2

    async def has_keys(self, store: Store) -> bool:
        now = self._now()
        if self._has_keys is not None and self._has_keys[1] > now:
            if self._asking is None and self._ageing(self._has_keys[1], now):
                self._asking = _in_background(self._ask_has_keys(store))
            return self._has_keys[0]
        # one question in flight, however many requests arrive before its answer: a
        # burst of 1,000 requests on an empty or expired cache used to ask 1,000 times
        if self._asking is None:
            self._asking = _in_background(self._ask_has_keys(store))
        # shielded: a caller that goes away does not cancel the others' answer
        return await asyncio.shield(self._asking)

    async def _ask_has_keys(self, store: Store) -> bool:
        now = self._now()
        try:
            answer = await store.has_keys()
        finally:
            self._asking = None
        self._has_keys = (answer, now + self.ttl)
        return answer

    async def principal(self, store: Store, secret: str) -> Principal | None:
        now = self._now()
        # cached by the secret's hash: the secrets themselves are not kept around
        digest = hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()
        cached = self._principals.get(digest)
        if cached is not None and cached[1] > now:
            if digest not in self._refreshing and self._ageing(cached[1], now):
                refresh = _in_background(self._look_up(store, secret, digest))
                self._refreshing[digest] = refresh
                refresh.add_done_callback(lambda _: self._refreshing.pop(digest, None))
            return cached[0]
        return await self._look_up(store, secret, digest)

    async def _look_up(self, store: Store, secret: str, digest: str) -> Principal | None:
        now = self._now()
        key = await store.authenticate_key(secret)
        if key is None:
            self._principals.pop(digest, None)
            return None
        if len(self._principals) >= 10_000:
            self._principals.clear()
        principal = Principal(project=key.project, key_id=key.id, key_name=key.name)
        self._principals[digest] = (principal, now + self.ttl)
        return principal


def _in_background(work: Coroutine[Any, Any, T]) -> asyncio.Future[T]:
    """Start `work` now; a failure nobody awaits is dropped (the next request asks
    again), not reported as a never-retrieved exception."""
    task = asyncio.ensure_future(work)
    task.add_done_callback(lambda done: done.cancelled() or done.exception())
    return task


def _bearer(headers: Mapping[str, str]) -> str | None:
    value = headers.get("authorization")
    if value is None:
        return None
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _cookie_key(headers: Mapping[str, str]) -> str | None:
    raw = headers.get("cookie")
    if not raw:
        return None
    cookie: SimpleCookie = SimpleCookie()
    try:
        cookie.load(raw)
    except Exception:  # a malformed Cookie header is no key at all
        return None
    morsel = cookie.get(KEY_COOKIE)
    return morsel.value if morsel is not None and morsel.value else None


async def authenticate(
    state: ServerState, headers: Mapping[str, str], *, allow_cookie: bool = False
) -> Principal:
    """The principal these request headers (lower-case names) authenticate.

    `Authorization: Bearer KEY`, or with `allow_cookie` (the chat page) the login
    cookie. Usable from any transport: a WebSocket handler passes the upgrade's
    headers.

    Raises:
        APIError: 401 `invalid_api_key` when keys are required and none valid was given.
    """
    secret = _bearer(headers) or (_cookie_key(headers) if allow_cookie else None)
    cache = state.key_cache
    if not state.settings.require_auth and not await cache.has_keys(state.store):
        return ANONYMOUS
    if secret is None:
        raise invalid_api_key(missing=True)
    principal = await cache.principal(state.store, secret)
    if principal is None:
        raise invalid_api_key(missing=False)
    return principal


def principal_of(request: Request) -> Principal:
    """The principal the middleware authenticated for this request.

    Fails closed: a route reached without the middleware has no principal.
    """
    principal = request.scope.get("state", {}).get(_PRINCIPAL)
    if not isinstance(principal, Principal):
        raise RuntimeError("no principal: the request did not pass the auth middleware")
    return principal


def project_store(request: Request, state: ServerState) -> Store:
    """The store scoped to the caller's project: all a route may read or write."""
    return state.store.scoped(principal_of(request).project)


def set_principal(scope: MutableMapping[str, Any], principal: Principal) -> None:
    """Record the caller for `principal_of` (in the ASGI scope's per-request state)."""
    scope.setdefault("state", {})[_PRINCIPAL] = principal
