"""The conversation lease: one row per conversation, claimed atomically.

`acquire_lock` is one `INSERT ... ON CONFLICT DO UPDATE ... WHERE expired-or-ours
RETURNING`, after the conversation's row lock, so there is no read-then-write race
on any database. `finish_turn` is a turn's commit: append, store the response and
release, only while the lease is still ours, all in one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from turnstream.storage.base import JSON, ConversationLockedError
from turnstream.storage.conversations import ConversationStatements
from turnstream.storage.dialect import check_ttl
from turnstream.storage.responses import ResponseStatements
from turnstream.storage.schema import conversation_locks

__all__ = ["LeaseStatements"]


class LeaseStatements(ConversationStatements, ResponseStatements):
    """The Store protocol's lock methods and `finish_turn`, for any dialect."""

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
