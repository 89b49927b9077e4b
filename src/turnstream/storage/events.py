"""The event log of background responses: append, list, and wait for more.

A background response's stream events are stored as they go out, so that a client
can resume the stream (`GET /v1/responses/{id}?stream=true&starting_after=N`) on
any process sharing the database. `wait_for_events` lets such a follower wait for
the next events instead of polling: PostgreSQL wakes it with LISTEN/NOTIFY (the
NOTIFY is sent in the appending transaction, so it arrives only once the events
are visible); SQLite, which has no notifications, polls.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from turnstream.storage.dialect import DialectBase
from turnstream.storage.schema import response_events, responses

__all__ = ["EVENTS_CHANNEL", "EventStatements"]

_UNFINISHED = ("in_progress", "queued")

EVENTS_CHANNEL = "turnstream_events"
"""The notification channel; the payload is the response id."""


class EventStatements(DialectBase):
    """The Store protocol's event-log methods, for any dialect."""

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
            await self._notify(conn, EVENTS_CHANNEL, response_id)

        await self._write(work)

    async def list_events(self, response_id: str, *, after: int | None) -> list[tuple[int, str]]:
        t = response_events
        stmt = sa.select(t.c.sequence_number, t.c.data).where(
            t.c.response_id == response_id,
            # only this store's project's responses (see SQLStore.scoped)
            sa.select(responses.c.id)
            .where(responses.c.id == response_id, responses.c.project == self.project)
            .exists(),
        )
        if after is not None:
            stmt = stmt.where(t.c.sequence_number > after)
        async with self._read() as conn:
            rows = (await conn.execute(stmt.order_by(t.c.sequence_number))).all()
        return [(row.sequence_number, row.data) for row in rows]

    async def expire_events(self, *, ended_before: float) -> int:
        """Drop the event logs of responses that finished before `ended_before`:
        a resumable stream lives a while after its end (OpenAI keeps ten minutes)."""
        r = responses
        ended = (
            sa.select(r.c.id)
            .where(r.c.status.not_in(_UNFINISHED), r.c.updated_at < ended_before)
            .scalar_subquery()
        )

        async def work(conn: AsyncConnection) -> int:
            result = await conn.execute(
                sa.delete(response_events)
                .where(response_events.c.response_id.in_(ended))
                .returning(response_events.c.response_id)
            )
            return len({row.response_id for row in result})

        return await self._write(work)

    async def wait_for_events(
        self, response_id: str, *, after: int | None, within: float
    ) -> list[tuple[int, str]]:
        """The stored events after `after`, waiting up to `within` seconds for the
        first of them to be appended (by any process); empty if none came."""
        async with self._watch(EVENTS_CHANNEL, response_id) as wakeup:
            # Listening before looking: events appended in between still wake us.
            deadline = time.monotonic() + within
            while True:
                events = await self.list_events(response_id, after=after)
                remaining = deadline - time.monotonic()
                if events or remaining <= 0:
                    return events
                await wakeup(remaining)
