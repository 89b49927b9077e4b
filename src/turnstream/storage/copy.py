"""Copy everything a store keeps from one database to another (`turnstream db copy`).

For the user who started on SQLite and outgrew it: every response (with its input
items and stored events), conversation and item, and every API key (its hash, so
the secrets the clients hold keep working, revoked ones stay revoked), moves with
its id unchanged, in one transaction on the target, so a failed copy leaves the
target as it was. The server's secrets move too: the key that sealed the source's
compaction items must open them on the target. Leases, stream slots and owner heartbeats are not copied: they
belong to processes that ran on the source (unfinished responses among the copied
ones are failed by the target's first stale-response sweep, as after a crash).

The target must be empty unless `into_non_empty` is set; then the copy adds to what
is there, and an id the target already has aborts it (nothing is changed), as does a
secret the target holds with another value (its own sealed items need its own).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from turnstream.storage import create_store, sqlite_path
from turnstream.storage.schema import (
    api_keys,
    conversation_items,
    conversations,
    response_events,
    response_input_items,
    responses,
    server_secrets,
)

__all__ = [
    "COPIED_TABLES",
    "SecretConflictError",
    "TargetNotEmptyError",
    "copy_database",
    "describe",
]

# Parents before children (foreign keys); each in its primary key's order.
COPIED_TABLES: tuple[sa.Table, ...] = (
    responses,
    response_input_items,
    response_events,
    conversations,
    conversation_items,
    api_keys,
)
_BATCH = 500


class TargetNotEmptyError(RuntimeError):
    """The target database already holds responses, conversations or API keys."""


class SecretConflictError(RuntimeError):
    """Source and target hold different values of one server secret."""


def _columns(table: sa.Table) -> list[sa.Column[Any]]:
    # conversation_items.seq is only the global insertion order: the target assigns
    # its own (in the source's order), so copies never collide with its rows.
    return [c for c in table.columns if not (table is conversation_items and c.name == "seq")]


async def copy_database(
    source: str | Path, target: str | Path, *, into_non_empty: bool = False
) -> dict[str, int]:
    """Copy the store at `source` (a SQLite file) to `target` (any store URL).

    Both are migrated to the newest schema first (as a server start would).
    Returns the number of rows copied per table.

    Raises:
        FileNotFoundError: `source` does not exist.
        TargetNotEmptyError: the target holds data and `into_non_empty` is not set.
        sqlalchemy.exc.IntegrityError: (`into_non_empty`) an id is in both.
    """
    path = sqlite_path(source)
    if not path.is_file():
        raise FileNotFoundError(f"no SQLite database at {path}")
    await create_store(path).upgrade()
    await create_store(target).upgrade()
    reader, writer = create_store(path), create_store(target)
    try:
        async with reader._read() as src:
            return await writer._write(lambda dst: _copy(src, dst, into_non_empty))
    finally:
        await reader._dispose()
        await writer._dispose()


async def _copy(src: AsyncConnection, dst: AsyncConnection, into_non_empty: bool) -> dict[str, int]:
    if not into_non_empty:
        for table in COPIED_TABLES:
            if await dst.scalar(sa.select(sa.literal(1)).select_from(table).limit(1)):
                raise TargetNotEmptyError(
                    f"the target database already holds {table.name}; copy into an empty "
                    "database, or allow adding to it"
                )
    counts: dict[str, int] = {}
    for table in COPIED_TABLES:
        columns = _columns(table)
        rows = await src.stream(sa.select(*columns).order_by(*table.primary_key.columns))
        counts[table.name] = 0
        async for batch in rows.mappings().partitions(_BATCH):
            await dst.execute(table.insert(), [dict(row) for row in batch])
            counts[table.name] += len(batch)
    counts[server_secrets.name] = await _copy_secrets(src, dst, into_non_empty)
    return counts


async def _copy_secrets(src: AsyncConnection, dst: AsyncConnection, into_non_empty: bool) -> int:
    """The source's secrets (the key that sealed its compaction items), by name.

    An empty target may hold a secret of its own already (a server started on it
    makes one when first needed); nothing there was sealed with it, so the source's
    replaces it. A target with data keeps its own, and a different value aborts.
    """
    t = server_secrets
    copied = 0
    for name, value in (await src.execute(sa.select(t.c.name, t.c.value))).all():
        theirs = await dst.scalar(sa.select(t.c.value).where(t.c.name == name))
        if theirs == value:
            continue
        if theirs is None:
            await dst.execute(t.insert().values(name=name, value=value))
        elif into_non_empty:
            raise SecretConflictError(
                f"the target has its own {name!r} secret: the source's sealed items (such "
                "as compaction items) would not open there, and the target's need its own"
            )
        else:
            await dst.execute(sa.update(t).where(t.c.name == name).values(value=value))
        copied += 1
    return copied


def describe(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{count} {name}" for name, count in counts.items())
