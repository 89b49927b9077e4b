"""`Idempotency-Key` on `POST /v1/responses`: a repeat returns the first result.

A client whose connection dropped after the server accepted its request cannot
know whether the turn happened. Resending it with the same key is safe: within
`Settings.idempotency_retention` the first request's key is bound (in the store,
so on every replica) to the response it made, and a repeat with the same body gets
that response, never a second turn:

- as JSON, the final Response (waiting for it to finish if it is still running);
- as a stream, the response's events: a background response's event log (live or
  stored), otherwise its final form told again (`engine.restream`) once it has
  finished, which, persist-release-announce being the rule, is once its turn is
  saved and its conversation free.

A non-background response cancelled because its client went away made no turn;
a repeat then makes it, taking the key over. The same key with a different body is a 400 that says so. Only stored responses
(`store: true`) bind a key: a `store=false` response cannot be returned again, and
a request that keeps no server state has nothing to duplicate.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi.responses import JSONResponse, Response

from turnstream import sse
from turnstream.engine.restream import restream
from turnstream.protocol import TERMINAL_STATUSES, new_id
from turnstream.protocol import errors as E
from turnstream.storage.base import ResponseRecord, Store

from .appstate import ServerState
from .replay import follow, replay_stored
from .streaming import ReplayStreamResponse

__all__ = ["IDEMPOTENCY_HEADER", "IdempotencyClaim", "claim_or_repeat"]

JSON = dict[str, Any]

IDEMPOTENCY_HEADER = "idempotency-key"

_POLL = 0.05
_ADMISSION_WAIT = 10.0
"""How long a repeat waits for the first request's response to be inserted."""


@dataclass(frozen=True, slots=True)
class IdempotencyClaim:
    """This request holds the key; its response must get `response_id`."""

    scope: str
    key: str
    response_id: str

    async def release(self, store: Store) -> None:
        """The request was refused before it made a response: free the key."""
        await store.release_idempotency_key(self.scope, self.key, self.response_id)


def body_digest(body: JSON) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def claim_or_repeat(
    state: ServerState, key: str, body: JSON, *, project: str
) -> IdempotencyClaim | Response:
    """Claim `key` for a new response, or answer as the first request with it did.

    Raises:
        APIError: 400 `idempotency_key_reused` when the key came with another body;
            409 when the first request is still being admitted after a while
            (retryable).
    """
    # keys are the client's: one project's key never meets another project's turn
    scope = project
    store = state.store.scoped(project)
    digest = body_digest(body)
    deadline = time.monotonic() + _ADMISSION_WAIT
    while True:
        response_id = new_id("resp")
        held = await state.store.claim_idempotency_key(
            scope,
            key,
            body_hash=digest,
            response_id=response_id,
            retention=state.settings.idempotency_retention,
        )
        if held.response_id == response_id:
            return IdempotencyClaim(scope, key, response_id)
        if held.body_hash != digest:
            raise key_reused()
        record = await store.get_response(held.response_id)
        if record is not None:
            answer = await _repeat(state, record, stream=bool(body.get("stream")))
            if answer is not None:
                return answer
            # the first request's client left before its turn ended, so the turn
            # did not happen: this repeat makes it, under the same key
            await state.store.release_idempotency_key(scope, key, record.id)
            continue
        # the first request is being admitted (or was refused and lets go of the key)
        if time.monotonic() > deadline:
            raise E.APIError(
                409,
                E.INVALID_REQUEST,
                "A request with this Idempotency-Key is still being processed; retry it.",
                code="idempotency_key_in_use",
            )
        await asyncio.sleep(_POLL)


def key_reused() -> E.APIError:
    return E.invalid_request(
        "This Idempotency-Key was already used with a different request body. "
        "Use a new key for a new request.",
        param="Idempotency-Key",
        code="idempotency_key_reused",
    )


async def _repeat(state: ServerState, record: ResponseRecord, *, stream: bool) -> Response | None:
    """The first request's answer again; `None` if it was cancelled by its client
    going away (only a background response can be cancelled otherwise)."""
    run = state.runs.get(record.id)
    keepalive = state.settings.keepalive_interval
    if record.background:
        if stream:
            if run is not None and run.events is not None:
                return ReplayStreamResponse(follow(run.events, None, keepalive))
            return ReplayStreamResponse(
                replay_stored(
                    state.store,
                    record.id,
                    None,
                    wakeup=state.wakeup,
                    keepalive_interval=keepalive,
                )
            )
        return JSONResponse(run.visible_response if run is not None else record.response)
    final = await _finished(state, record)
    if final.get("status") == "cancelled":
        return None
    if stream:
        return ReplayStreamResponse(_frames(restream(final)))
    return JSONResponse(final)


async def _finished(state: ServerState, record: ResponseRecord) -> JSON:
    """The final Response of `record`, once it has been persisted."""
    run = state.runs.get(record.id)
    if run is not None:
        # shielded: this repeat going away must not cancel the first request's run
        await asyncio.shield(run.result())
    current: ResponseRecord | None = record
    while current is not None and current.status not in TERMINAL_STATUSES:
        # running in another process: its end is in the store once persisted
        await asyncio.sleep(_POLL)
        current = await state.store.get_response(record.id)
    if current is None:
        raise E.response_not_found(record.id)
    return current.response


async def _frames(events: list[JSON]) -> AsyncIterator[bytes]:
    yield b"".join(sse.encode(event) for event in events)
