"""ASGI wrappers around the live server's app: they watch `POST /v1/responses`.

Install one with `tap(live, Wrapper)`; the wire recorder looks its inner app up per
request, so a wrapper sees every request from then on.

- `StatusCounter` counts how requests were answered.
- `LockHold` makes the `after_body` lock race happen on every follow-up, by
  construction rather than by timing.
- `HoldTerminalEvent` holds back the first terminal event: the turn is stored, the
  client has not read its end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from tests.livesrv import LiveServer

Scope = dict[str, Any]
Message = dict[str, Any]
App = Callable[..., Any]
T = TypeVar("T")


def tap(live: LiveServer, wrapper: Callable[[App], T]) -> T:
    """Wrap the running server's app in `wrapper(app)` and return the wrapper."""
    wrapped = wrapper(live.recorder.app)
    live.recorder.app = wrapped
    return wrapped


def _is_create(scope: Scope) -> bool:
    return bool(
        scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == "/v1/responses"
    )


def _error_code(body: bytes) -> str | None:
    try:
        code = json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None
    return code if isinstance(code, str) else None


class StatusCounter:
    """Counts how `POST /v1/responses` was answered.

    Keys: the status as a string, `"400:<code>"` for 400s, and for
    `conversation_locked` whether the server sent `x-should-retry` (the injected
    fault does; the `after_body` race does not, like OpenAI).
    """

    def __init__(self, app: App) -> None:
        self.app = app
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if not _is_create(scope):
            await self.app(scope, receive, send)
            return
        seen: dict[str, Any] = {"status": 0, "headers": {}, "body": b"", "counted": False}

        async def tee(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                seen["headers"] = dict(message.get("headers", []))
            elif message["type"] == "http.response.body":
                if seen["status"] >= 400:
                    seen["body"] += message.get("body", b"")
                if not message.get("more_body"):
                    # counted before the client can see the end of the answer, so a
                    # test that reads the counts right after its call sees this one
                    self._count(seen)
            await send(message)

        try:
            await self.app(scope, receive, tee)
        finally:
            self._count(seen)

    def _count(self, seen: dict[str, Any]) -> None:
        if seen["counted"]:
            return
        seen["counted"] = True
        keys = [str(seen["status"])]
        if seen["status"] == 400:
            code = _error_code(seen["body"])
            keys.append(f"400:{code}")
            if code == "conversation_locked":
                hinted = seen["headers"].get(b"x-should-retry") == b"true"
                keys.append("locked:injected" if hinted else "locked:race")
        with self._lock:
            self.counts.update(keys)

    def unexpected(self, *allowed: str) -> dict[str, int]:
        """Error answers other than `conversation_locked` and the `allowed` statuses."""
        with self._lock:
            counts = Counter(self.counts)
        counts["400"] -= counts["400:conversation_locked"]
        return {
            key: n
            for key, n in counts.items()
            if n and key[:1] in "45" and ":" not in key and key not in allowed
        }


class LockHold:
    """Holds each conversation past its response's body until someone is refused.

    A streamed response's last byte goes out to the client, but the server's own
    `send` does not return until a request on the same conversation has been answered
    `400 conversation_locked`. A server in `lock_release="after_body"` mode lets go of
    the conversation only after that `send` returns, so the runtime's follow-up (sent
    the moment it reads the end of the body) always meets a held lock and must retry:
    the race OpenAI's hosted service produces by chance, produced every time.
    """

    def __init__(self, app: App) -> None:
        self.app = app
        self.released_by_refusal = 0
        self._held: dict[str, asyncio.Event] = {}

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if not _is_create(scope):
            await self.app(scope, receive, send)
            return
        receive, conversation = await _conversation_of(receive)
        if conversation is None:
            await self.app(scope, receive, send)
            return
        seen: dict[str, Any] = {"status": 0, "stream": False, "body": b""}
        holding: list[asyncio.Event] = []
        replayed = receive

        async def patient_receive() -> Message:
            # The server reports the body's end as a disconnect at once, which would
            # cancel the held send (and so end the hold) before anyone was refused.
            message: Message = await replayed()
            if message["type"] == "http.disconnect" and holding:
                await holding[0].wait()
            return message

        receive = patient_receive

        async def hold(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                headers = dict(message.get("headers", []))
                seen["stream"] = headers.get(b"content-type", b"").startswith(b"text/event")
            elif message["type"] == "http.response.body" and seen["status"] == 400:
                seen["body"] += message.get("body", b"")
            last = message["type"] == "http.response.body" and not message.get("more_body")
            if last and seen["status"] == 400:
                self._refused(conversation, seen["body"])
            if not (last and seen["stream"] and seen["status"] == 200):
                await send(message)
                return
            # registered before the last byte leaves, so no refusal can come first
            released = self._held[conversation] = asyncio.Event()
            holding.append(released)
            await send(message)
            await released.wait()

        await self.app(scope, receive, hold)

    def _refused(self, conversation: str, body: bytes) -> None:
        if _error_code(body) == "conversation_locked":
            released = self._held.pop(conversation, None)
            if released is not None:
                self.released_by_refusal += 1
                released.set()

    def release_all(self) -> None:
        """Let every held response finish (at the end of a test); call on the server's loop."""
        for released in self._held.values():
            released.set()
        self._held.clear()


async def _conversation_of(receive: Any) -> tuple[Any, str | None]:
    """Reads the request body; returns a `receive` that replays it, and its conversation."""
    chunks = []
    while True:
        message = await receive()
        chunks.append(message)
        if message["type"] != "http.request" or not message.get("more_body"):
            break
    body = b"".join(m.get("body", b"") for m in chunks if m["type"] == "http.request")
    replay = iter(chunks)

    async def replayed() -> Message:
        message = next(replay, None)
        return message if message is not None else await receive()

    try:
        conversation = json.loads(body).get("conversation")
    except (ValueError, AttributeError):
        return replayed, None
    if isinstance(conversation, dict):
        conversation = conversation.get("id")
    return replayed, conversation if isinstance(conversation, str) else None


@contextlib.contextmanager
def holding_locks(live: LiveServer) -> Iterator[LockHold]:
    """Installs a `LockHold` and, on exit, lets every held response finish (the server
    cannot stop while one is held)."""
    hold = tap(live, LockHold)
    try:
        yield hold
    finally:
        assert live.loop is not None
        live.loop.call_soon_threadsafe(hold.release_all)


class HoldTerminalEvent:
    """Holds the first body frame with a terminal event until `release` is set.

    The server then has stored the turn (persist, release, then announce) while the
    client has read only what came before: the state a cancel lands in when the
    server's write of a turn is slow, made certain instead of likely.
    """

    def __init__(self, app: App) -> None:
        self.app = app
        self.release = threading.Event()
        self.held = False

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        async def hold(message: Message) -> None:
            body = message.get("body", b"") if message["type"] == "http.response.body" else b""
            if not self.held and b'"response.completed"' in body:
                self.held = True
                # a busy server batches the frames that are ready into one body
                # message: what came before the terminal event goes out now, so the
                # client reads all of it whatever the batching
                start = body.rfind(b"\n\n", 0, body.index(b'"response.completed"')) + 2
                if start > 1:
                    await send({**message, "body": body[:start], "more_body": True})
                    message = {**message, "body": body[start:]}
                await asyncio.to_thread(self.release.wait, 30)
            await send(message)

        await self.app(scope, receive, hold)
