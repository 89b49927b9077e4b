"""The Store protocol: everything the server keeps, behind one async interface.

Items and responses cross this boundary as wire-shaped JSON dicts (what the API
returns), so the storage layer never depends on the protocol models. Every method
that changes a conversation checks the conversation lock in the same transaction, so
the lock holds across processes and replicas sharing one database.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from turnstream.storage.keys import ApiKey

__all__ = [
    "ConversationLockedError",
    "ConversationNotFoundError",
    "DuplicateItemError",
    "IdempotencyRecord",
    "ItemPage",
    "ResponseRecord",
    "Store",
]

JSON = dict[str, Any]
Order = Literal["asc", "desc"]


class ConversationLockedError(Exception):
    """Another holder has a live lease on the conversation."""


class ConversationNotFoundError(Exception):
    """No conversation with that id (or it was deleted)."""


class DuplicateItemError(ValueError):
    """An item id is already in the conversation (item ids are unique per conversation).

    The store refuses the whole write; nothing is changed.
    """


@dataclass(slots=True)
class ResponseRecord:
    """A stored response.

    `response` is the full Response object as served by `GET /v1/responses/{id}`.
    `input_items` are the response's own input items (each with an `id`), in order,
    as served by `/input_items`; `previous_response_id` links the chain.

    `owner` is set by the store on insert (its instance id, see
    `fail_stale_responses`); a value passed in is ignored.
    """

    id: str
    response: JSON
    input_items: list[JSON] = field(default_factory=list)
    previous_response_id: str | None = None
    conversation_id: str | None = None
    status: str = "in_progress"
    background: bool = False
    created_at: int = 0
    owner: str | None = None
    updated_at: float = 0.0
    """When the store last wrote it (the store's clock): for a finished response,
    when it ended. Set by the store; a value passed in is ignored."""


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """Who holds an idempotency key: the response its first request made."""

    key: str
    body_hash: str
    """A digest of the first request's body; a repeat must match it."""
    response_id: str
    created_at: float


@dataclass(slots=True)
class ItemPage:
    data: list[JSON]
    has_more: bool


class Store(Protocol):
    # lifecycle ----------------------------------------------------------------------
    async def open(self) -> None:
        """Create or migrate the schema (Alembic), then become usable."""
        ...

    async def close(self) -> None: ...

    # tenants and keys -----------------------------------------------------------------
    def scoped(self, project: str) -> Store:
        """A view that reads and writes only `project`'s responses, conversations,
        their items and events; another project's ids look like missing ones. It
        shares this store's connections (open and close only the store itself).
        A store not made by `scoped` is project `default`'s."""
        ...

    async def create_key(self, name: str, *, project: str = ...) -> tuple[ApiKey, str]:
        """A new API key and its secret (stored only as a hash: show it once).
        Raises ValueError if the name is taken."""
        ...

    async def list_keys(self) -> list[ApiKey]: ...

    async def revoke_key(self, name_or_prefix: str) -> list[ApiKey]:
        """Revoke the key of that name, or those whose secret starts with that prefix."""
        ...

    async def has_keys(self) -> bool:
        """True when any unrevoked key exists."""
        ...

    async def authenticate_key(self, secret: str) -> ApiKey | None:
        """The live key with that secret (compared in constant time), else None."""
        ...

    async def acquire_stream_slot(self, key_id: str, slot: str, *, limit: int, ttl: float) -> bool:
        """Count one more open stream of the key, across every process sharing the
        database, unless it already has `limit`; a slot lapses after `ttl` unrenewed."""
        ...

    async def renew_stream_slot(self, slot: str, *, ttl: float) -> None: ...

    async def release_stream_slot(self, slot: str) -> None: ...

    # responses ----------------------------------------------------------------------
    async def insert_response(self, record: ResponseRecord) -> None:
        """Store a new response (normally `in_progress`) with its input items.

        Input items without an `id`/`status` get one; the stored copies are written
        back to `record.input_items`, and `record.owner` is set to the store's owner.
        """
        ...

    async def update_response(self, response_id: str, response: JSON) -> None:
        """Replace the stored Response object; `status` is read from it.

        A no-op if the response does not exist (for example, it was deleted).
        """
        ...

    async def get_response(self, response_id: str) -> ResponseRecord | None: ...

    async def delete_response(self, response_id: str) -> bool:
        """Delete; False if it did not exist."""
        ...

    async def response_chain(self, response_id: str) -> list[ResponseRecord] | None:
        """The chain ending at `response_id`, oldest first; None if any link is missing."""
        ...

    async def list_input_items(
        self, response_id: str, *, after: str | None, limit: int, order: Order
    ) -> ItemPage:
        """A page of the response's input items. `after` is an item id (exclusive
        cursor in `order`); `limit` is 1-100. An unknown response or `after` gives
        an empty page."""
        ...

    async def fail_stale_responses(self, *, owner: str | None = None) -> list[str]:
        """Mark `in_progress`/`queued` responses whose owner is gone as `failed`.

        With `owner`, only that owner's responses; without, every response whose
        conversation lease (if any) has expired or that has no live owner heartbeat.
        Returns the ids changed. Called at server start-up.

        Each open store is an owner (`ResponseRecord.owner`) that heartbeats while
        open; without `owner`, a response fails only if its owner's heartbeat has
        lapsed AND its conversation has no live lease, so a sweep never fails a
        response that another live process is still running. Failed responses get
        `status: "failed"` and `error: {"code": "server_error", "message": ...}`.
        """
        ...

    async def append_events(self, response_id: str, events: Sequence[tuple[int, str]]) -> None:
        """Store stream events of a (background) response: `(sequence_number, data)`
        pairs, `data` being the event's JSON as sent. One transaction per call; an
        event already stored under the same number is left as it is."""
        ...

    async def list_events(self, response_id: str, *, after: int | None) -> list[tuple[int, str]]:
        """The stored events with `sequence_number > after` (all when None), in order;
        empty for an unknown response."""
        ...

    async def expire_events(self, *, ended_before: float) -> int:
        """Delete the stored events of every finished response that ended (was last
        written) before `ended_before` (the store's clock). Returns how many
        responses lost their events."""
        ...

    async def wait_for_events(
        self, response_id: str, *, after: int | None, within: float
    ) -> list[tuple[int, str]]:
        """Like `list_events`, but waits up to `within` seconds for the first new
        event when there is none yet (appended by this or any other process: woken
        by LISTEN/NOTIFY on PostgreSQL, by polling on SQLite); empty if none came."""
        ...

    async def request_cancel(self, response_id: str) -> bool:
        """Ask whichever process runs the response to cancel it: recorded, and
        notified where the database can. False if unknown or already finished."""
        ...

    async def wait_for_cancel(self, response_id: str, *, within: float) -> bool:
        """True as soon as a cancel of the response has been requested by any
        process (at once if it already was), False after `within` seconds."""
        ...

    # conversations -------------------------------------------------------------------
    async def create_conversation(
        self,
        conversation_id: str,
        *,
        metadata: dict[str, str],
        items: Sequence[JSON],
        created_at: int,
    ) -> JSON:
        """Create with initial items (ids assigned where missing); returns the Conversation.

        Raises ValueError if the id is taken, DuplicateItemError on repeated item ids.
        """
        ...

    async def get_conversation(self, conversation_id: str) -> JSON | None: ...

    async def update_conversation(
        self, conversation_id: str, *, metadata: dict[str, str]
    ) -> JSON | None: ...

    async def delete_conversation(self, conversation_id: str) -> bool:
        """Delete the conversation with its items and lease; False if it did not exist.

        Not refused while a lease is live: a running turn's `finish_turn` then raises
        ConversationNotFoundError and changes nothing.
        """
        ...

    async def add_items(self, conversation_id: str, items: Sequence[JSON]) -> list[JSON]:
        """Append items (ids assigned where missing). Raises ConversationLockedError
        if a live lease exists, ConversationNotFoundError if there is no conversation,
        DuplicateItemError if an item id is already in it."""
        ...

    async def list_items(
        self, conversation_id: str, *, after: str | None, limit: int, order: Order
    ) -> ItemPage:
        """A page of items. `after` is an item id (exclusive cursor in `order`; an
        unknown one gives an empty page); `limit` is 1-100. Raises
        ConversationNotFoundError if there is no conversation."""
        ...

    async def all_items(self, conversation_id: str) -> list[JSON]:
        """Every item, oldest first (the context for a new response).

        Raises ConversationNotFoundError if there is no conversation.
        """
        ...

    async def get_item(self, conversation_id: str, item_id: str) -> JSON | None: ...

    async def delete_item(self, conversation_id: str, item_id: str) -> bool:
        """Delete one item; False if it is not there. Raises ConversationLockedError
        while a live lease exists, ConversationNotFoundError if there is no
        conversation."""
        ...

    # the conversation lock ------------------------------------------------------------
    async def acquire_lock(self, conversation_id: str, holder: str, *, ttl: float) -> bool:
        """Claim the lease atomically; False if someone else holds a live lease.
        Raises ConversationNotFoundError if the conversation does not exist."""
        ...

    async def renew_lock(self, conversation_id: str, holder: str, *, ttl: float) -> bool:
        """Extend our lease to `ttl` from now; False if we no longer hold a live one
        (an expired lease is not renewed: others may have written meanwhile)."""
        ...

    async def release_lock(self, conversation_id: str, holder: str) -> None:
        """Let go of our lease (a no-op if we do not hold it)."""
        ...

    async def lock_expires_in(self, conversation_id: str) -> float | None:
        """Seconds until the current lease expires, None if unlocked (for retry-after)."""
        ...

    async def finish_turn(
        self,
        conversation_id: str,
        holder: str,
        *,
        response_id: str,
        response: JSON,
        items: Sequence[JSON] | None,
        store_response: bool,
        release: bool,
    ) -> list[JSON]:
        """In ONE transaction: append `items` (ids assigned where missing) to the
        conversation (skipped when None), update the stored response (when
        `store_response`), and release the lease (when `release`). Returns the
        appended items with their ids.

        Only a caller that still holds a live lease gets here: otherwise (expired,
        taken over, released) it raises ConversationLockedError and changes nothing.
        Raises ConversationNotFoundError if the conversation was deleted, and
        DuplicateItemError on an item id already in the conversation.
        """
        ...

    # idempotency keys and shared secrets -----------------------------------------

    async def claim_idempotency_key(
        self, scope: str, key: str, *, body_hash: str, response_id: str, retention: float
    ) -> IdempotencyRecord:
        """Bind `key` (within `scope`) to `response_id` unless a claim younger than
        `retention` seconds holds it; return the claim that holds it now (ours when
        its `response_id` is ours). Atomic across processes."""
        ...

    async def release_idempotency_key(self, scope: str, key: str, response_id: str) -> None:
        """Forget our claim on `key` (the request it stood for was refused)."""
        ...

    async def server_secret(self, name: str, make: Callable[[], str]) -> str:
        """The secret called `name`, made with `make()` and stored if there is none
        yet; every process sharing the database gets the same one."""
        ...
