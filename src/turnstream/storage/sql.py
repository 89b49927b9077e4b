"""`SQLStore`: the Store protocol as SQLAlchemy Core statements, for any dialect.

Every statement is shared by the SQLite and PostgreSQL stores; they live by concept
in `responses`, `events`, `conversations` and `leases`, and a dialect subclass supplies only
the seam in `dialect` (how a transaction runs, its upsert construct, migrations).

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

import asyncio
import contextlib
import copy
import logging

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from turnstream.storage.dialect import default_owner_id
from turnstream.storage.events import EventStatements
from turnstream.storage.idempotency import IdempotencyStatements
from turnstream.storage.keys import KeyStatements
from turnstream.storage.leases import LeaseStatements
from turnstream.storage.responses import STALE_RESPONSE_ERROR
from turnstream.storage.schema import store_owners

__all__ = ["STALE_RESPONSE_ERROR", "SQLStore", "default_owner_id"]

logger = logging.getLogger(__name__)


class SQLStore(LeaseStatements, EventStatements, KeyStatements, IdempotencyStatements):
    """The dialect-neutral Store: its statements and the owner's heartbeat.

    See `DialectBase` for the constructor's arguments.
    """

    _heartbeat: asyncio.Task[None] | None = None

    def scoped(self, project: str) -> SQLStore:
        """A view of this store that reads and writes only `project`'s responses,
        conversations, items and events (tenant isolation).

        The view shares this store's connections; open and close only the store
        itself. Another project's ids look exactly like missing ones through it,
        because every statement filters on the project in the database.
        """
        view = copy.copy(self)
        view.project = project
        return view

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
