"""`RunStream`: the handle on one run's events, which its caller can cancel.

Cancelling (from any task) or closing the stream closes the run's generator, so the
driver's cleanup runs: tools are cancelled and the outputs the server is owed are
kept for the next run (`ToolLoop.close`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from types import TracebackType
from typing import Any

from .events import RunCompleted, RunEvent
from .results import RunResult

__all__ = ["RunStream"]


class RunStream:
    """The events of one run; `async for` it, `cancel()` or `aclose()` to stop it.

    Attributes:
        result: The `RunResult` once `RunCompleted` has been yielded.
        last_response_id: The last response that completed, for chaining after a
            cancellation (its owed outputs are sent first by the next run).
        cancelled: Whether `cancel()` stopped the run.
    """

    def __init__(self) -> None:
        self.result: RunResult | None = None
        self.last_response_id: str | None = None
        self.cancelled = False
        self._events: AsyncGenerator[RunEvent, None] | None = None
        self._waiter: asyncio.Task[Any] | None = None
        self._cancel_requested = False
        self._closed = False

    def _start(self, events: AsyncGenerator[RunEvent, None]) -> None:
        self._events = events

    def __aiter__(self) -> RunStream:
        return self

    async def __anext__(self) -> RunEvent:
        assert self._events is not None
        if self._closed:
            raise StopAsyncIteration
        if self._cancel_requested:
            await self.aclose()
            raise StopAsyncIteration
        task = asyncio.current_task()
        self._waiter = task
        try:
            event = await self._events.__anext__()
        except asyncio.CancelledError:
            if self._cancel_requested and task is not None and task.uncancel() == 0:
                await self.aclose()
                raise StopAsyncIteration from None
            self._closed = True
            raise
        except BaseException:
            self._closed = True
            raise
        finally:
            self._waiter = None
        if type(event) is RunCompleted:
            self.result = event.result
            # RunCompleted is always the last event. Finish the generator now, so the
            # conversation is released even if the caller stops iterating here
            # (`return event.result` inside `async for`) and never closes the stream.
            await self.aclose()
        return event

    def cancel(self) -> None:
        """Stop the run: close the stream, cancel tools, owe the missing outputs."""
        if self._closed:
            return
        self._cancel_requested = True
        self.cancelled = True
        if self._waiter is not None and self._waiter is not asyncio.current_task():
            self._waiter.cancel()

    async def aclose(self) -> None:
        """Close the run (as `cancel()` does, but awaited here)."""
        if self._events is not None and not self._closed:
            self._closed = True
            if self.result is None:
                self.cancelled = True
            await self._events.aclose()

    async def __aenter__(self) -> RunStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "cancelled" if self.cancelled else "done" if self.result else "running"
        return f"<RunStream {state}>"
