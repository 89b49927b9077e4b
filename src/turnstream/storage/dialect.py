"""The dialect seam of the SQL store: what SQLite and PostgreSQL each supply.

`SQLStore`'s statements (in `responses`, `conversations` and `leases`) are the same
for every database; a dialect subclass supplies only how a write transaction runs
(`_write`: all of `work(conn)` or nothing, retried or queued as the database needs),
a read connection, its `INSERT ... ON CONFLICT` construct, and how migrations are
serialised between processes.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from turnstream.storage.schema import DEFAULT_PROJECT

__all__ = ["DialectBase", "T", "Wakeup", "Work", "check_page", "check_ttl", "default_owner_id"]

T = TypeVar("T")
Work = Callable[[AsyncConnection], Awaitable[T]]
Wakeup = Callable[[float], Awaitable[None]]


def default_owner_id() -> str:
    """`host:pid:random`: unique per store instance, readable in the database."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def check_page(limit: int, order: str) -> None:
    if not 1 <= limit <= 100:
        raise ValueError(f"limit must be between 1 and 100, got {limit}")
    if order not in ("asc", "desc"):
        raise ValueError(f"order must be 'asc' or 'desc', got {order!r}")


def check_ttl(ttl: float) -> None:
    if not ttl > 0:
        raise ValueError(f"ttl must be positive, got {ttl}")


@contextlib.asynccontextmanager
async def _polling(interval: float) -> AsyncIterator[Wakeup]:
    async def poll(seconds: float) -> None:
        await asyncio.sleep(min(interval, seconds))

    yield poll


class DialectBase(abc.ABC):
    """The clock, the owner id and the dialect's abstract part.

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
        self.project = DEFAULT_PROJECT
        """The tenant this store reads and writes (see `SQLStore.scoped`)."""
        self._clock = clock
        self._owner_ttl = owner_ttl

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

    async def _notify(self, conn: AsyncConnection, channel: str, key: str) -> None:
        """In a write transaction: wake who watches `key` on `channel` once it
        commits (default: nobody; watchers poll)."""
        return None

    def _watch(self, channel: str, key: str) -> contextlib.AbstractAsyncContextManager[Wakeup]:
        """`await wakeup(seconds)` returns when `key` may have been notified on
        `channel` since the last return, or after at most `seconds`; watching
        starts before this yields, so a check made then misses nothing.

        By default it just waits `poll_interval` (a poll); a dialect that can
        notify overrides this.
        """
        return _polling(self.poll_interval)

    poll_interval: float = 0.05
    """Seconds between looks where the database cannot notify."""
