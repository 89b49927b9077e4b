"""API keys and stream slots as rows.

A key's secret is shown once, when it is made; the database keeps its SHA-256
(the secret has 256 random bits, so a slow password hash would buy nothing) and a
short prefix that finds the candidate rows. `authenticate_key` compares hashes in
constant time. Stream slots count a key's open streams across every replica
sharing the database, for the concurrent-stream limit.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from turnstream.storage.dialect import DialectBase, check_ttl
from turnstream.storage.schema import DEFAULT_PROJECT, api_keys, stream_slots

__all__ = ["KEY_PREFIX", "ApiKey", "KeyStatements", "hash_secret"]

KEY_PREFIX = "sk-ts-"
_SHOWN = len(KEY_PREFIX) + 6
"""How much of a secret `keys list` shows and the lookup index holds."""


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key as listed: everything but the secret."""

    id: str
    name: str
    project: str
    prefix: str
    created_at: int
    last_used_at: int | None
    revoked_at: int | None


def _key(row: sa.Row[tuple[object, ...]]) -> ApiKey:
    m = row._mapping
    return ApiKey(
        id=m["id"],
        name=m["name"],
        project=m["project"],
        prefix=m["prefix"],
        created_at=m["created_at"],
        last_used_at=m["last_used_at"],
        revoked_at=m["revoked_at"],
    )


class KeyStatements(DialectBase):
    """Create, list, revoke and check API keys; hold and free stream slots."""

    async def create_key(self, name: str, *, project: str = DEFAULT_PROJECT) -> tuple[ApiKey, str]:
        """A new key and its secret (which is not stored: show it once).

        Raises ValueError if the name is taken.
        """
        if not name or not project:
            raise ValueError("a key needs a name and a project")
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        key = ApiKey(
            id="key_" + secrets.token_hex(12),
            name=name,
            project=project,
            prefix=secret[:_SHOWN],
            created_at=int(self._clock()),
            last_used_at=None,
            revoked_at=None,
        )

        async def work(conn: AsyncConnection) -> None:
            if await conn.scalar(sa.select(api_keys.c.id).where(api_keys.c.name == name)):
                raise ValueError(f"a key named {name!r} already exists")
            await conn.execute(
                api_keys.insert().values(
                    id=key.id,
                    name=name,
                    project=project,
                    prefix=key.prefix,
                    secret_hash=hash_secret(secret),
                    created_at=key.created_at,
                )
            )

        try:
            await self._write(work)
        except IntegrityError:
            raise ValueError(f"a key named {name!r} already exists") from None
        return key, secret

    async def list_keys(self) -> list[ApiKey]:
        async with self._read() as conn:
            rows = await conn.execute(sa.select(api_keys).order_by(api_keys.c.created_at))
            return [_key(row) for row in rows]

    async def revoke_key(self, name_or_prefix: str) -> list[ApiKey]:
        """Revoke the live key with that name, or the live keys whose secret starts
        with that prefix (at least the shown prefix); returns those revoked."""
        k = api_keys
        match = k.c.name == name_or_prefix
        if len(name_or_prefix) >= _SHOWN and name_or_prefix.startswith(KEY_PREFIX):
            match = match | (k.c.prefix == name_or_prefix[:_SHOWN])

        async def work(conn: AsyncConnection) -> list[ApiKey]:
            rows = await conn.execute(
                sa.update(k)
                .where(match, k.c.revoked_at.is_(None))
                .values(revoked_at=int(self._clock()))
                .returning(*k.c)
            )
            return [_key(row) for row in rows]

        return await self._write(work)

    async def has_keys(self) -> bool:
        """True when any unrevoked key exists (then every request needs one)."""
        async with self._read() as conn:
            found = await conn.scalar(
                sa.select(api_keys.c.id).where(api_keys.c.revoked_at.is_(None)).limit(1)
            )
        return found is not None

    async def authenticate_key(self, secret: str) -> ApiKey | None:
        """The live key whose secret this is, else None; marks it used."""
        if not secret.startswith(KEY_PREFIX) or len(secret) < _SHOWN:
            return None
        wanted = hash_secret(secret)
        k = api_keys
        async with self._read() as conn:
            rows = (
                await conn.execute(
                    sa.select(k).where(k.c.prefix == secret[:_SHOWN], k.c.revoked_at.is_(None))
                )
            ).all()
        found = None
        for row in rows:
            # every candidate is compared, so the time taken says nothing about which
            if hmac.compare_digest(row._mapping["secret_hash"], wanted):
                found = _key(row)
        if found is not None:
            await self._touch_key(found.id)
        return found

    async def _touch_key(self, key_id: str) -> None:
        now = int(self._clock())
        k = api_keys
        # at most one write a minute per key: `last used` is a hint, not a log
        await self._write(
            lambda conn: conn.execute(
                sa.update(k)
                .where(
                    k.c.id == key_id,
                    k.c.last_used_at.is_(None) | (k.c.last_used_at < now - 60),
                )
                .values(last_used_at=now)
            )
        )

    # stream slots ---------------------------------------------------------------------

    async def acquire_stream_slot(self, key_id: str, slot: str, *, limit: int, ttl: float) -> bool:
        """Take a slot for one of the key's streams unless it already has `limit`
        live ones (on any replica); False then."""
        check_ttl(ttl)
        s = stream_slots

        async def work(conn: AsyncConnection) -> bool:
            now = self._clock()
            # the key's row lock serialises counting and inserting across replicas
            # (SQLite serialises the whole write transaction instead)
            await conn.execute(
                sa.select(api_keys.c.id).where(api_keys.c.id == key_id).with_for_update()
            )
            await conn.execute(sa.delete(s).where(s.c.key_id == key_id, s.c.expires_at <= now))
            live = await conn.scalar(
                sa.select(sa.func.count()).select_from(s).where(s.c.key_id == key_id)
            )
            if (live or 0) >= limit:
                return False
            await conn.execute(s.insert().values(slot=slot, key_id=key_id, expires_at=now + ttl))
            return True

        return await self._write(work)

    async def renew_stream_slot(self, slot: str, *, ttl: float) -> None:
        s = stream_slots
        await self._write(
            lambda conn: conn.execute(
                sa.update(s).where(s.c.slot == slot).values(expires_at=self._clock() + ttl)
            )
        )

    async def release_stream_slot(self, slot: str) -> None:
        s = stream_slots
        await self._write(lambda conn: conn.execute(sa.delete(s).where(s.c.slot == slot)))
