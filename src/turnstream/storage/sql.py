"""`SQLStore`: the Store protocol as SQLAlchemy Core statements, for any dialect.

Every statement here is shared by the SQLite and PostgreSQL stores; a dialect
subclass supplies only how a transaction runs (`_write`, `_read`), its dialect's
`INSERT ... ON CONFLICT` construct, and how migrations are serialised.

Atomicity: a write runs `work(conn)` as one transaction. Every check and the write
that depends on it (is the conversation leased? does it exist? is this item id
taken?) happen in that transaction with the conversation's row locked first
(`SELECT ... FOR UPDATE`; SQLite, which has no row locks, renders nothing and
serialises whole write transactions with `BEGIN IMMEDIATE` instead). So the lease
holds across processes and replicas, not just within one event loop.

Stale responses: each store instance is an *owner* with an id, registered in
`store_owners` and kept alive by a heartbeat task while the store is open. Every
response it inserts records that owner. `fail_stale_responses()` fails only
unfinished responses whose owner has no live heartbeat and whose conversation (if
any) has no live lease, so a start-up sweep in one process never touches a response
that another live process is still running.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from turnstream.storage.base import (
    JSON,
    ConversationLockedError,
    ConversationNotFoundError,
    DuplicateItemError,
    ItemPage,
    Order,
    ResponseRecord,
)
from turnstream.storage.items import stored_items
from turnstream.storage.schema import (
    conversation_items,
    conversation_locks,
    conversations,
    response_events,
    response_input_items,
    responses,
    store_owners,
)

__all__ = ["STALE_RESPONSE_ERROR", "SQLStore", "default_owner_id"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
Work = Callable[[AsyncConnection], Awaitable[T]]

STALE_RESPONSE_ERROR: JSON = {
    "code": "server_error",
    "message": "The server stopped while this response was running.",
}
_UNFINISHED = ("in_progress", "queued")


def default_owner_id() -> str:
    """`host:pid:random`: unique per store instance, readable in the database."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def _check_page(limit: int, order: str) -> None:
    if not 1 <= limit <= 100:
        raise ValueError(f"limit must be between 1 and 100, got {limit}")
    if order not in ("asc", "desc"):
        raise ValueError(f"order must be 'asc' or 'desc', got {order!r}")


def check_ttl(ttl: float) -> None:
    if not ttl > 0:
        raise ValueError(f"ttl must be positive, got {ttl}")


def _conversation(row: Any) -> JSON:
    return {
        "id": row.id,
        "object": "conversation",
        "created_at": row.created_at,
        "metadata": row._mapping["metadata"],
    }


def _record(row: Any, input_items: list[JSON]) -> ResponseRecord:
    return ResponseRecord(
        id=row.id,
        response=row.response,
        input_items=input_items,
        previous_response_id=row.previous_response_id,
        conversation_id=row.conversation_id,
        status=row.status,
        background=row.background,
        created_at=row.created_at,
        owner=row.owner,
    )


class SQLStore(abc.ABC):
    """The dialect-neutral Store; see the module docstring.

    Args:
        clock: Seconds since the epoch; lease and heartbeat expiry use it. Processes
            sharing a database must share a clock (the wall clock does).
        owner: This instance's owner id for `fail_stale_responses`
            (default: `default_owner_id()`).
        owner_ttl: How long the owner counts as alive after a heartbeat; the
            heartbeat runs every `owner_ttl / 3` seconds.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        owner: str | None = None,
        owner_ttl: float = 30.0,
    ) -> None:
        check_ttl(owner_ttl)
        self.owner = owner or default_owner_id()
        self._clock = clock
        self._owner_ttl = owner_ttl
        self._heartbeat: asyncio.Task[None] | None = None

    # the dialect's part ------------------------------------------------------------

    @abc.abstractmethod
    async def _write(self, work: Work[T]) -> T:
        """Run `work` in one write transaction (committed when it returns)."""

    @abc.abstractmethod
    def _read(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        """A connection for reads."""

    @abc.abstractmethod
    def _insert(self, table: sa.Table) -> Any:
        """The dialect's INSERT with `on_conflict_do_update`/`_do_nothing`."""

    @abc.abstractmethod
    async def _migrate(self) -> None:
        """Bring the schema to the newest revision, once even if many open at once."""

    @abc.abstractmethod
    async def _dispose(self) -> None:
        """Close every connection."""

    # lifecycle ----------------------------------------------------------------------

    async def open(self) -> None:
        """Create or migrate the schema, register this owner, start its heartbeat."""
        if self._heartbeat is not None:
            return
        try:
            await self._migrate()
            await self._beat()
        except BaseException:
            # Whoever failed to open a store will not close it: let its connections go.
            await self._dispose()
            raise
        self._heartbeat = asyncio.create_task(
            self._heartbeat_loop(), name=f"turnstream-store-heartbeat:{self.owner}"
        )

    async def upgrade(self) -> None:
        """Migrate the schema to this code's newest revision, and close.

        What `open()` does first, without becoming an owner: for `turnstream db
        upgrade` ahead of a deploy. Raises `SchemaTooNewError` like `open()`.
        """
        try:
            await self._migrate()
        finally:
            await self._dispose()

    async def close(self) -> None:
        """Stop the heartbeat, unregister this owner and close every connection."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None
            try:
                await self._write(self._unregister)
            except (SQLAlchemyError, OSError):
                logger.warning("could not unregister store owner %s", self.owner, exc_info=True)
        await self._dispose()

    async def _unregister(self, conn: AsyncConnection) -> None:
        await conn.execute(sa.delete(store_owners).where(store_owners.c.owner == self.owner))

    async def _beat(self) -> None:
        async def work(conn: AsyncConnection) -> None:
            stmt = self._insert(store_owners).values(
                owner=self.owner, expires_at=self._clock() + self._owner_ttl
            )
            stmt = stmt.on_conflict_do_update(
                index_elements=[store_owners.c.owner],
                set_={"expires_at": stmt.excluded.expires_at},
            )
            await conn.execute(stmt)

        await self._write(work)

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self._owner_ttl / 3)
            try:
                await self._beat()
            except (SQLAlchemyError, OSError):
                # A busy database must not end the heartbeat; the next beat retries.
                logger.warning("store heartbeat failed for %s", self.owner, exc_info=True)

    # responses ----------------------------------------------------------------------

    async def insert_response(self, record: ResponseRecord) -> None:
        record.input_items = stored_items(record.input_items)
        record.owner = self.owner

        async def work(conn: AsyncConnection) -> None:
            if await conn.scalar(sa.select(responses.c.id).where(responses.c.id == record.id)):
                raise ValueError(f"response {record.id!r} already exists")
            await conn.execute(
                responses.insert().values(
                    id=record.id,
                    created_at=record.created_at,
                    status=record.status,
                    background=record.background,
                    previous_response_id=record.previous_response_id,
                    conversation_id=record.conversation_id,
                    response=record.response,
                    owner=record.owner,
                    updated_at=self._clock(),
                )
            )
            if record.input_items:
                await conn.execute(
                    response_input_items.insert(),
                    [
                        {
                            "response_id": record.id,
                            "position": i,
                            "item_id": item["id"],
                            "item": item,
                        }
                        for i, item in enumerate(record.input_items)
                    ],
                )

        try:
            await self._write(work)
        except IntegrityError:
            # Two replicas inserting one id at once: the check above saw neither.
            raise ValueError(f"response {record.id!r} already exists") from None

    async def update_response(self, response_id: str, response: JSON) -> None:
        await self._write(lambda conn: self._update_response(conn, response_id, response))

    async def _update_response(
        self, conn: AsyncConnection, response_id: str, response: JSON
    ) -> None:
        values: dict[str, Any] = {"response": response, "updated_at": self._clock()}
        if isinstance(response.get("status"), str):
            values["status"] = response["status"]
        await conn.execute(
            sa.update(responses).where(responses.c.id == response_id).values(**values)
        )

    async def get_response(self, response_id: str) -> ResponseRecord | None:
        async with self._read() as conn:
            row = (
                await conn.execute(sa.select(responses).where(responses.c.id == response_id))
            ).first()
            if row is None:
                return None
            items = await self._input_items(conn, [response_id])
        return _record(row, items.get(response_id, []))

    async def _input_items(
        self, conn: AsyncConnection, response_ids: Sequence[str]
    ) -> dict[str, list[JSON]]:
        t = response_input_items
        result = await conn.execute(
            sa.select(t.c.response_id, t.c.item)
            .where(t.c.response_id.in_(response_ids))
            .order_by(t.c.response_id, t.c.position)
        )
        by_response: dict[str, list[JSON]] = {}
        for response_id, item in result:
            by_response.setdefault(response_id, []).append(item)
        return by_response

    async def delete_response(self, response_id: str) -> bool:
        async def work(conn: AsyncConnection) -> bool:
            result = await conn.execute(sa.delete(responses).where(responses.c.id == response_id))
            return result.rowcount > 0

        return await self._write(work)

    async def response_chain(self, response_id: str) -> list[ResponseRecord] | None:
        links = (
            sa.select(responses.c.id, responses.c.previous_response_id)
            .where(responses.c.id == response_id)
            .cte("chain", recursive=True)
        )
        # UNION (not UNION ALL) also ends the walk should ids ever form a cycle.
        links = links.union(
            sa.select(responses.c.id, responses.c.previous_response_id).join(
                links, responses.c.id == links.c.previous_response_id
            )
        )
        async with self._read() as conn:
            rows = {
                row.id: row
                for row in await conn.execute(
                    sa.select(responses).where(responses.c.id.in_(sa.select(links.c.id)))
                )
            }
            chain: list[Any] = []
            next_id: str | None = response_id
            while next_id is not None:
                row = rows.pop(next_id, None)
                if row is None:
                    return None  # a missing (deleted, never stored) link, or a cycle
                chain.append(row)
                next_id = row.previous_response_id
            items = await self._input_items(conn, [row.id for row in chain])
        return [_record(row, items.get(row.id, [])) for row in reversed(chain)]

    async def list_input_items(
        self, response_id: str, *, after: str | None, limit: int, order: Order
    ) -> ItemPage:
        _check_page(limit, order)
        t = response_input_items
        stmt = sa.select(t.c.item).where(t.c.response_id == response_id)
        if after is not None:
            cursor = (
                sa.select(t.c.position)
                .where(t.c.response_id == response_id, t.c.item_id == after)
                .order_by(t.c.position)
                .limit(1)
                .scalar_subquery()
            )
            # An unknown cursor compares with NULL: no rows, an empty page.
            stmt = stmt.where(t.c.position > cursor if order == "asc" else t.c.position < cursor)
        stmt = stmt.order_by(t.c.position.asc() if order == "asc" else t.c.position.desc())
        async with self._read() as conn:
            data = list((await conn.scalars(stmt.limit(limit + 1))).all())
        return ItemPage(data=data[:limit], has_more=len(data) > limit)

    async def append_events(self, response_id: str, events: Sequence[tuple[int, str]]) -> None:
        if not events:
            return

        async def work(conn: AsyncConnection) -> None:
            stmt = self._insert(response_events).on_conflict_do_nothing(
                index_elements=[response_events.c.response_id, response_events.c.sequence_number]
            )
            await conn.execute(
                stmt,
                [
                    {"response_id": response_id, "sequence_number": seq, "data": data}
                    for seq, data in events
                ],
            )

        await self._write(work)

    async def list_events(self, response_id: str, *, after: int | None) -> list[tuple[int, str]]:
        t = response_events
        stmt = sa.select(t.c.sequence_number, t.c.data).where(t.c.response_id == response_id)
        if after is not None:
            stmt = stmt.where(t.c.sequence_number > after)
        async with self._read() as conn:
            rows = (await conn.execute(stmt.order_by(t.c.sequence_number))).all()
        return [(row.sequence_number, row.data) for row in rows]

    async def fail_stale_responses(self, *, owner: str | None = None) -> list[str]:
        """Mark unfinished responses whose owner is gone as `failed`.

        With `owner`, that owner is declared gone (say, this host's previous run
        under a stable owner id): all its `in_progress`/`queued` responses fail.
        Without, a response fails only if its owner has no live heartbeat *and* its
        conversation (if any) has no live lease, so responses that another live
        process is running are never touched. Returns the ids changed.
        """
        now = self._clock()
        r = responses
        stale: sa.ColumnElement[bool]
        if owner is not None:
            stale = r.c.status.in_(_UNFINISHED) & (r.c.owner == owner)
        else:
            live_owners = sa.select(store_owners.c.owner).where(store_owners.c.expires_at > now)
            live_lease = (
                sa.select(conversation_locks.c.conversation_id)
                .where(
                    conversation_locks.c.conversation_id == r.c.conversation_id,
                    conversation_locks.c.expires_at > now,
                )
                .exists()
            )
            stale = (
                r.c.status.in_(_UNFINISHED)
                & (r.c.owner.is_(None) | r.c.owner.not_in(live_owners))
                & ~live_lease
            )
        # Row locks, skipping rows a finishing turn holds: that turn decides their
        # status, and a concurrent sweep on another replica takes the others.
        select_stale = (
            sa.select(r.c.id, r.c.response).where(stale).with_for_update(skip_locked=True)
        )

        async def work(conn: AsyncConnection) -> list[str]:
            rows = (await conn.execute(select_stale)).all()
            for row in rows:
                failed = {**row.response, "status": "failed", "error": dict(STALE_RESPONSE_ERROR)}
                await self._update_response(conn, row.id, failed)
            await conn.execute(sa.delete(store_owners).where(store_owners.c.expires_at <= now))
            return [row.id for row in rows]

        return await self._write(work)

    # conversations -------------------------------------------------------------------

    async def create_conversation(
        self,
        conversation_id: str,
        *,
        metadata: dict[str, str],
        items: Sequence[JSON],
        created_at: int,
    ) -> JSON:
        async def work(conn: AsyncConnection) -> None:
            if await self._conversation_exists(conn, conversation_id):
                raise ValueError(f"conversation {conversation_id!r} already exists")
            await conn.execute(
                conversations.insert().values(
                    id=conversation_id, created_at=created_at, metadata=dict(metadata)
                )
            )
            await self._append(conn, conversation_id, items)

        try:
            await self._write(work)
        except IntegrityError:
            raise ValueError(f"conversation {conversation_id!r} already exists") from None
        return {
            "id": conversation_id,
            "object": "conversation",
            "created_at": created_at,
            "metadata": dict(metadata),
        }

    async def get_conversation(self, conversation_id: str) -> JSON | None:
        async with self._read() as conn:
            row = (
                await conn.execute(
                    sa.select(conversations).where(conversations.c.id == conversation_id)
                )
            ).first()
        return None if row is None else _conversation(row)

    async def update_conversation(
        self, conversation_id: str, *, metadata: dict[str, str]
    ) -> JSON | None:
        async def work(conn: AsyncConnection) -> Any:
            return (
                await conn.execute(
                    sa.update(conversations)
                    .where(conversations.c.id == conversation_id)
                    .values(metadata=dict(metadata))
                    .returning(conversations)
                )
            ).first()

        row = await self._write(work)
        return None if row is None else _conversation(row)

    async def delete_conversation(self, conversation_id: str) -> bool:
        async def work(conn: AsyncConnection) -> bool:
            # Items and the lease go with it (ON DELETE CASCADE).
            result = await conn.execute(
                sa.delete(conversations).where(conversations.c.id == conversation_id)
            )
            return result.rowcount > 0

        return await self._write(work)

    async def add_items(self, conversation_id: str, items: Sequence[JSON]) -> list[JSON]:
        async def work(conn: AsyncConnection) -> list[JSON]:
            await self._lock_conversation(conn, conversation_id)
            await self._require_unleased(conn, conversation_id)
            return await self._append(conn, conversation_id, items)

        return await self._write(work)

    async def list_items(
        self, conversation_id: str, *, after: str | None, limit: int, order: Order
    ) -> ItemPage:
        _check_page(limit, order)
        t = conversation_items
        stmt = sa.select(t.c.item).where(t.c.conversation_id == conversation_id)
        if after is not None:
            cursor = (
                sa.select(t.c.seq)
                .where(t.c.conversation_id == conversation_id, t.c.item_id == after)
                .scalar_subquery()
            )
            # An unknown cursor compares with NULL: no rows, an empty page.
            stmt = stmt.where(t.c.seq > cursor if order == "asc" else t.c.seq < cursor)
        stmt = stmt.order_by(t.c.seq.asc() if order == "asc" else t.c.seq.desc())
        async with self._read() as conn:
            await self._require_conversation(conn, conversation_id)
            data = list((await conn.scalars(stmt.limit(limit + 1))).all())
        return ItemPage(data=data[:limit], has_more=len(data) > limit)

    async def all_items(self, conversation_id: str) -> list[JSON]:
        t = conversation_items
        async with self._read() as conn:
            await self._require_conversation(conn, conversation_id)
            result = await conn.scalars(
                sa.select(t.c.item).where(t.c.conversation_id == conversation_id).order_by(t.c.seq)
            )
            return list(result.all())

    async def get_item(self, conversation_id: str, item_id: str) -> JSON | None:
        t = conversation_items
        async with self._read() as conn:
            item: JSON | None = await conn.scalar(
                sa.select(t.c.item).where(
                    t.c.conversation_id == conversation_id, t.c.item_id == item_id
                )
            )
        return item

    async def delete_item(self, conversation_id: str, item_id: str) -> bool:
        t = conversation_items

        async def work(conn: AsyncConnection) -> bool:
            await self._lock_conversation(conn, conversation_id)
            await self._require_unleased(conn, conversation_id)
            result = await conn.execute(
                sa.delete(t).where(t.c.conversation_id == conversation_id, t.c.item_id == item_id)
            )
            return result.rowcount > 0

        return await self._write(work)

    async def _conversation_exists(self, conn: AsyncConnection, conversation_id: str) -> bool:
        found = await conn.scalar(
            sa.select(conversations.c.id).where(conversations.c.id == conversation_id)
        )
        return found is not None

    async def _require_conversation(self, conn: AsyncConnection, conversation_id: str) -> None:
        if not await self._conversation_exists(conn, conversation_id):
            raise ConversationNotFoundError(conversation_id)

    async def _lock_conversation(self, conn: AsyncConnection, conversation_id: str) -> None:
        """Lock the conversation's row for this transaction (it must exist).

        Every conversation-changing write takes this first, so its lease check and
        the write itself are one step for every other transaction on the database.
        """
        found = await conn.scalar(
            sa.select(conversations.c.id)
            .where(conversations.c.id == conversation_id)
            .with_for_update()
        )
        if found is None:
            raise ConversationNotFoundError(conversation_id)

    async def _require_unleased(self, conn: AsyncConnection, conversation_id: str) -> None:
        holder = await conn.scalar(
            sa.select(conversation_locks.c.holder).where(
                conversation_locks.c.conversation_id == conversation_id,
                conversation_locks.c.expires_at > self._clock(),
            )
        )
        if holder is not None:
            raise ConversationLockedError(conversation_id)

    async def _append(
        self, conn: AsyncConnection, conversation_id: str, items: Sequence[JSON]
    ) -> list[JSON]:
        stored = stored_items(items)
        if not stored:
            return []
        ids = [item["id"] for item in stored]
        seen: set[str] = set()
        for item_id in ids:
            if item_id in seen:
                raise DuplicateItemError(f"Duplicate item found with id {item_id}.")
            seen.add(item_id)
        t = conversation_items
        taken = await conn.scalar(
            sa.select(t.c.item_id)
            .where(t.c.conversation_id == conversation_id, t.c.item_id.in_(ids))
            .limit(1)
        )
        if taken is not None:
            raise DuplicateItemError(f"Duplicate item found with id {taken}.")
        await conn.execute(
            t.insert(),
            [
                {"conversation_id": conversation_id, "item_id": item["id"], "item": item}
                for item in stored
            ],
        )
        return stored

    # the conversation lock ------------------------------------------------------------

    async def acquire_lock(self, conversation_id: str, holder: str, *, ttl: float) -> bool:
        check_ttl(ttl)
        locks = conversation_locks

        async def work(conn: AsyncConnection) -> bool:
            await self._lock_conversation(conn, conversation_id)
            now = self._clock()
            insert = self._insert(locks).values(
                conversation_id=conversation_id, holder=holder, expires_at=now + ttl
            )
            # One statement decides: a free, expired or already-ours lease is
            # (re)claimed; a live lease of someone else leaves the row alone and
            # RETURNING yields nothing.
            stmt = insert.on_conflict_do_update(
                index_elements=[locks.c.conversation_id],
                set_={"holder": insert.excluded.holder, "expires_at": insert.excluded.expires_at},
                where=(locks.c.expires_at <= now) | (locks.c.holder == insert.excluded.holder),
            ).returning(locks.c.holder)
            return (await conn.execute(stmt)).first() is not None

        return await self._write(work)

    async def renew_lock(self, conversation_id: str, holder: str, *, ttl: float) -> bool:
        check_ttl(ttl)
        locks = conversation_locks

        async def work(conn: AsyncConnection) -> bool:
            now = self._clock()
            result = await conn.execute(
                sa.update(locks)
                .where(
                    locks.c.conversation_id == conversation_id,
                    locks.c.holder == holder,
                    locks.c.expires_at > now,
                )
                .values(expires_at=now + ttl)
            )
            return result.rowcount > 0

        return await self._write(work)

    async def release_lock(self, conversation_id: str, holder: str) -> None:
        await self._write(lambda conn: self._release(conn, conversation_id, holder))

    async def _release(self, conn: AsyncConnection, conversation_id: str, holder: str) -> None:
        locks = conversation_locks
        await conn.execute(
            sa.delete(locks).where(
                locks.c.conversation_id == conversation_id, locks.c.holder == holder
            )
        )

    async def lock_expires_in(self, conversation_id: str) -> float | None:
        now = self._clock()
        locks = conversation_locks
        async with self._read() as conn:
            expires_at: float | None = await conn.scalar(
                sa.select(locks.c.expires_at).where(
                    locks.c.conversation_id == conversation_id, locks.c.expires_at > now
                )
            )
        return None if expires_at is None else expires_at - now

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
        locks = conversation_locks

        async def work(conn: AsyncConnection) -> list[JSON]:
            await self._lock_conversation(conn, conversation_id)
            ours = await conn.scalar(
                sa.select(locks.c.holder).where(
                    locks.c.conversation_id == conversation_id,
                    locks.c.holder == holder,
                    locks.c.expires_at > self._clock(),
                )
            )
            if ours is None:
                raise ConversationLockedError(conversation_id)
            appended = [] if items is None else await self._append(conn, conversation_id, items)
            if store_response:
                await self._update_response(conn, response_id, response)
            if release:
                await self._release(conn, conversation_id, holder)
            return appended

        return await self._write(work)
