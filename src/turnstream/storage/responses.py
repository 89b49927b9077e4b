"""Responses as rows: the stored Response, its input items, the chain.

Also the stale-response sweep, which fails what a vanished owner left running, and
cancel requests, which reach the process running a response from any other.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from turnstream.protocol.ids import stored_items
from turnstream.storage.base import JSON, ItemPage, Order, ResponseRecord
from turnstream.storage.dialect import DialectBase, check_page
from turnstream.storage.events import EVENTS_CHANNEL
from turnstream.storage.schema import (
    conversation_locks,
    response_input_items,
    responses,
    store_owners,
)

__all__ = ["CANCEL_CHANNEL", "STALE_RESPONSE_ERROR", "ResponseStatements"]

CANCEL_CHANNEL = "turnstream_cancels"
"""The notification channel for cancel requests; the payload is the response id."""

STALE_RESPONSE_ERROR: JSON = {
    "code": "server_error",
    "message": "The server stopped while this response was running.",
}
_UNFINISHED = ("in_progress", "queued")


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
        updated_at=row.updated_at,
    )


class ResponseStatements(DialectBase):
    """The Store protocol's response methods, for any dialect."""

    def _our_response(self, response_id: str) -> sa.ColumnElement[bool]:
        """The response `response_id`, if it is this store's project's."""
        return (responses.c.id == response_id) & (responses.c.project == self.project)

    def _response_is_ours(self, response_id: sa.ColumnElement[str]) -> sa.ColumnElement[bool]:
        """A child row's response belongs to this store's project."""
        return (
            sa.select(responses.c.id)
            .where(responses.c.id == response_id, responses.c.project == self.project)
            .exists()
        )

    # responses ----------------------------------------------------------------------

    async def insert_response(self, record: ResponseRecord) -> None:
        record.input_items = stored_items(record.input_items)
        record.owner = self.owner

        async def work(conn: AsyncConnection) -> None:
            # no look-up first: the primary key refuses a duplicate, and each statement
            # is a round trip (on SQLite, thread hand-offs) before the stream can begin
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
                    project=self.project,
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
            raise ValueError(f"response {record.id!r} already exists") from None

    async def update_response(self, response_id: str, response: JSON) -> None:
        await self._write(lambda conn: self._update_response(conn, response_id, response))

    async def _update_response(
        self, conn: AsyncConnection, response_id: str, response: JSON, *, any_project: bool = False
    ) -> None:
        values: dict[str, Any] = {"response": response, "updated_at": self._clock()}
        if isinstance(response.get("status"), str):
            values["status"] = response["status"]
        # the stale sweep is the store's own housekeeping, across every project
        where = responses.c.id == response_id if any_project else self._our_response(response_id)
        await conn.execute(sa.update(responses).where(where).values(**values))

    async def get_response(self, response_id: str) -> ResponseRecord | None:
        async with self._read() as conn:
            row = (
                await conn.execute(sa.select(responses).where(self._our_response(response_id)))
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
            result = await conn.execute(sa.delete(responses).where(self._our_response(response_id)))
            return result.rowcount > 0

        return await self._write(work)

    async def response_chain(self, response_id: str) -> list[ResponseRecord] | None:
        links = (
            sa.select(responses.c.id, responses.c.previous_response_id)
            .where(self._our_response(response_id))
            .cte("chain", recursive=True)
        )
        # UNION (not UNION ALL) also ends the walk should ids ever form a cycle.
        links = links.union(
            sa.select(responses.c.id, responses.c.previous_response_id)
            .join(links, responses.c.id == links.c.previous_response_id)
            .where(responses.c.project == self.project)
        )
        async with self._read() as conn:
            rows = {
                row.id: row
                for row in await conn.execute(
                    sa.select(responses).where(
                        responses.c.id.in_(sa.select(links.c.id)),
                        responses.c.project == self.project,
                    )
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
        check_page(limit, order)
        t = response_input_items
        stmt = sa.select(t.c.item).where(
            t.c.response_id == response_id, self._response_is_ours(t.c.response_id)
        )
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
                await self._update_response(conn, row.id, failed, any_project=True)
                # followers of its events wait for an end that will never be logged
                await self._notify(conn, EVENTS_CHANNEL, row.id)
            await conn.execute(sa.delete(store_owners).where(store_owners.c.expires_at <= now))
            return [row.id for row in rows]

        return await self._write(work)

    async def request_cancel(self, response_id: str) -> bool:
        """Ask whichever process runs `response_id` to cancel it.

        The request is recorded (a runner that starts watching later still sees it)
        and, where the database can, notified. False if the response is unknown or
        has already finished.
        """
        r = responses

        async def work(conn: AsyncConnection) -> bool:
            marked = (
                await conn.execute(
                    sa.update(r)
                    .where(self._our_response(response_id), r.c.status.in_(_UNFINISHED))
                    .values(
                        cancel_requested_at=sa.func.coalesce(r.c.cancel_requested_at, self._clock())
                    )
                    .returning(r.c.id)
                )
            ).first()
            if marked is not None:
                await self._notify(conn, CANCEL_CHANNEL, response_id)
            return marked is not None

        return await self._write(work)

    async def wait_for_cancel(self, response_id: str, *, within: float) -> bool:
        """True as soon as a cancel of `response_id` has been requested (by any
        process), False if none came within `within` seconds."""
        r = responses
        requested = sa.select(r.c.cancel_requested_at.is_not(None)).where(
            self._our_response(response_id)
        )
        async with self._watch(CANCEL_CHANNEL, response_id) as wakeup:
            deadline = time.monotonic() + within
            while True:
                async with self._read() as conn:
                    if await conn.scalar(requested):
                        return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                await wakeup(remaining)
