"""Idempotency keys and shared server secrets: small rows every replica agrees on.

`claim_idempotency_key` is one transaction: it forgets the key if its retention has
passed, inserts the claim unless the key is taken, and reads back whoever holds it,
so of two concurrent requests with one key exactly one wins, on any process.
`server_secret` likewise makes a secret once and returns the one that was stored.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from turnstream.storage.base import IdempotencyRecord
from turnstream.storage.dialect import DialectBase
from turnstream.storage.schema import idempotency_keys, server_secrets

__all__ = ["IdempotencyStatements"]


class IdempotencyStatements(DialectBase):
    """The Store protocol's idempotency and secret methods, for any dialect."""

    async def claim_idempotency_key(
        self, scope: str, key: str, *, body_hash: str, response_id: str, retention: float
    ) -> IdempotencyRecord:
        t = idempotency_keys
        now = self._clock()

        async def work(conn: AsyncConnection) -> IdempotencyRecord:
            mine = (t.c.scope == scope) & (t.c.key == key)
            await conn.execute(sa.delete(t).where(mine & (t.c.created_at < now - retention)))
            await conn.execute(
                self._insert(t)
                .values(
                    scope=scope,
                    key=key,
                    body_hash=body_hash,
                    response_id=response_id,
                    created_at=now,
                )
                .on_conflict_do_nothing(index_elements=[t.c.scope, t.c.key])
            )
            row = (await conn.execute(sa.select(t).where(mine))).one()
            return IdempotencyRecord(row.key, row.body_hash, row.response_id, row.created_at)

        return await self._write(work)

    async def release_idempotency_key(self, scope: str, key: str, response_id: str) -> None:
        t = idempotency_keys

        async def work(conn: AsyncConnection) -> None:
            await conn.execute(
                sa.delete(t).where(
                    (t.c.scope == scope) & (t.c.key == key) & (t.c.response_id == response_id)
                )
            )

        await self._write(work)

    async def server_secret(self, name: str, make: Callable[[], str]) -> str:
        t = server_secrets
        candidate = make()

        async def work(conn: AsyncConnection) -> str:
            await conn.execute(
                self._insert(t)
                .values(name=name, value=candidate)
                .on_conflict_do_nothing(index_elements=[t.c.name])
            )
            value: str = (await conn.execute(sa.select(t.c.value).where(t.c.name == name))).one()[0]
            return value

        return await self._write(work)
