"""Conversations as rows: the conversation, its ordered items, direct item edits.

Every conversation-changing write locks the conversation's row first and checks
the lease in the same transaction (`_lock_conversation`, `_require_unleased`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from turnstream.protocol.ids import stored_items
from turnstream.storage.base import (
    JSON,
    ConversationLockedError,
    ConversationNotFoundError,
    DuplicateItemError,
    ItemPage,
    Order,
)
from turnstream.storage.dialect import DialectBase, check_page
from turnstream.storage.schema import conversation_items, conversation_locks, conversations

__all__ = ["ConversationStatements"]


def _conversation(row: Any) -> JSON:
    return {
        "id": row.id,
        "object": "conversation",
        "created_at": row.created_at,
        "metadata": row._mapping["metadata"],
    }


class ConversationStatements(DialectBase):
    """The Store protocol's conversation and item methods, for any dialect."""

    def _our_conversation(self, conversation_id: str) -> sa.ColumnElement[bool]:
        """The conversation `conversation_id`, if it is this store's project's."""
        return (conversations.c.id == conversation_id) & (conversations.c.project == self.project)

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
                    id=conversation_id,
                    created_at=created_at,
                    metadata=dict(metadata),
                    project=self.project,
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
                    sa.select(conversations).where(self._our_conversation(conversation_id))
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
                    .where(self._our_conversation(conversation_id))
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
                sa.delete(conversations).where(self._our_conversation(conversation_id))
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
        check_page(limit, order)
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
            if not await self._conversation_exists(conn, conversation_id):
                return None
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
            sa.select(conversations.c.id).where(self._our_conversation(conversation_id))
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
            .where(self._our_conversation(conversation_id))
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
