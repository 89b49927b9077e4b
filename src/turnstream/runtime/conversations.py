"""Client-side bookkeeping per conversation: one run at a time, and owed tool outputs.

`ConversationRegistry.hold(key)` serializes runs on one conversation (DESIGN.md
invariant 6: one request in flight per conversation). Runs hold it for their whole
length, so no other run can slip a request in between a response's function calls and
their outputs. Locks exist only while someone holds or awaits them, which also keeps a
registry usable from successive event loops (`run_sync`).

`owe`/`take_owed` keep the `function_call_output`s a run could not deliver (it was
cancelled, failed, or hit a limit after the model had called tools). The next run on
that conversation (or chained from that response) sends them first, so the server never
sees a call without its output.

`leave_doubt`/`take_doubt` keep a turn a run was cut off in before reading its end
(`InDoubt`): the next run on that key asks the server what it kept before it sends.

Keys: `"conv:<id>"` for a server-side conversation, `"resp:<id>"` for a response to be
chained with `previous_response_id`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from .history import InDoubt

__all__ = ["ConversationRegistry", "shared_registry"]


class _Entry:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class ConversationRegistry:
    """Per-conversation locks and owed outputs, shared by the Agents that use it."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._owed: dict[str, list[dict[str, Any]]] = {}
        self._doubts: dict[str, InDoubt] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        """Wait until no other run holds `key`, then hold it."""
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._entries[key]

    def owe(self, key: str, outputs: list[dict[str, Any]]) -> None:
        """Remember outputs that must precede the next input on `key`."""
        if outputs:
            self._owed.setdefault(key, []).extend(outputs)

    def take_owed(self, key: str) -> list[dict[str, Any]]:
        """Remove and return what is owed on `key`."""
        return self._owed.pop(key, [])

    def owed(self, key: str) -> list[dict[str, Any]]:
        """What is owed on `key`, without removing it."""
        return list(self._owed.get(key, ()))

    def leave_doubt(self, key: str, doubt: InDoubt) -> None:
        """Remember the turn in doubt that the next run on `key` must settle first.

        Runs on one key follow each other, each settling the last one's doubt before
        it sends, so there is at most one.
        """
        self._doubts[key] = doubt

    def take_doubt(self, key: str) -> InDoubt | None:
        """Remove and return the turn in doubt on `key`."""
        return self._doubts.pop(key, None)


_SHARED = ConversationRegistry()


def shared_registry() -> ConversationRegistry:
    """The process-wide registry `Agent` uses unless given its own.

    Shared on purpose: two Agents on one conversation must queue behind each other.
    """
    return _SHARED
