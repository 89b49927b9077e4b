"""Running one response's function calls: every call gets exactly one output.

`ToolBatch` runs the calls of one response. Tools marked `independent` start as soon
as the stream completes their call, the rest when `run(calls)` is awaited after the
stream's end. A `sequential` tool is a barrier.
A semaphore caps how many run at a time. Whatever happens to a call (raises, times out,
is unknown, gets bad arguments, is cancelled) it ends with one output string, so
`outputs()` always pairs every call (DESIGN.md invariant 5).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from turnstream._tracing import Tracing, fail

from .events import RunEvent, ToolProgress, ToolResult
from .tools import (
    Tool,
    ToolArgumentsError,
    ToolCall,
    ToolContext,
    ToolTimeoutError,
    UnknownToolError,
)

__all__ = ["ErrorFormatter", "ToolBatch", "default_error_formatter"]

ErrorFormatter = Callable[[BaseException, ToolCall], str]
"""Turns a failed call's exception into the output the model sees (redact here)."""


def default_error_formatter(exc: BaseException, call: ToolCall) -> str:
    """The output text for a call that did not produce a result."""
    if isinstance(exc, ToolArgumentsError):
        return (
            f"Error: invalid arguments for tool '{call.name}':\n{exc.details}\n"
            "Fix the arguments to match the tool's schema and call it again."
        )
    if isinstance(exc, UnknownToolError | ToolTimeoutError):
        return f"Error: {exc}"
    if isinstance(exc, asyncio.CancelledError):
        return (
            f"Error: the call to tool '{call.name}' was cancelled by the user before it finished."
        )
    return f"Error: tool '{call.name}' raised {type(exc).__name__}: {exc}"


class ToolBatch:
    """The function calls of one response and their outputs.

    The loop (`ToolLoop`) decides which calls get run; the batch only runs them. During
    the stream, `start_early(call)` starts a call whose tool is `independent`; once the
    stream has ended, `run(calls)` runs the rest of the calls the loop handed over.
    """

    def __init__(
        self,
        tools: Mapping[str, Tool],
        *,
        semaphore: asyncio.Semaphore,
        emit: Callable[[RunEvent], None],
        error_formatter: ErrorFormatter,
        tracing: Tracing | None = None,
        parent_span: Any = None,
    ) -> None:
        self._tools = tools
        self._tracing = tracing
        self._parent_span = parent_span
        self._semaphore = semaphore
        self._emit = emit
        self._format = error_formatter
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._outputs: dict[str, str] = {}
        self._errors: dict[str, str] = {}
        """The exception type of each call that failed, for its span."""

    def start_early(self, call: ToolCall) -> None:
        """A call completed mid-stream: start it now if its tool is independent."""
        found = self._tools.get(call.name)
        if found is not None and found.independent and not found.sequential:
            self._start(call)

    async def run(self, calls: Sequence[ToolCall]) -> None:
        """Run every call not yet started, in order, honouring barriers; wait for all."""
        for call in calls:
            if call.call_id in self._tasks:
                continue
            found = self._tools.get(call.name)
            if found is not None and found.sequential:
                await self._wait_started()
                self._start(call)
                await self._wait_started()
            else:
                self._start(call)
        await self._wait_started()

    async def cancel(self) -> None:
        """Cancel every running call; each then has a "cancelled" output."""
        for task in self._tasks.values():
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    def outputs(
        self, calls: Sequence[ToolCall], unfinished: str | None = None
    ) -> list[dict[str, Any]]:
        """One `function_call_output` per call, in call order.

        Args:
            calls: The calls to answer.
            unfinished: Output for a call that never ran (e.g. the run was cancelled
                before it started); defaults to the cancellation text.
        """
        items = []
        for call in calls:
            output = self._outputs.get(call.call_id)
            if output is None:
                output = (
                    unfinished
                    if unfinished is not None
                    else self._format(asyncio.CancelledError(), call)
                )
            items.append(
                {"type": "function_call_output", "call_id": call.call_id, "output": output}
            )
        return items

    async def _wait_started(self) -> None:
        pending = [task for task in self._tasks.values() if not task.done()]
        if pending:
            await asyncio.gather(*pending)

    def _start(self, call: ToolCall) -> None:
        self._tasks[call.call_id] = asyncio.create_task(self._run(call), name=f"tool:{call.name}")

    async def _run(self, call: ToolCall) -> None:
        if self._tracing is None:
            await self._run_call(call)
            return
        attributes = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": call.name,
            "gen_ai.tool.call.id": call.call_id,
            "gen_ai.tool.type": "function",
        }
        # current for the tool's own code, so spans it makes nest under this one
        with self._tracing.span(
            f"execute_tool {call.name}", attributes=attributes, parent=self._parent_span
        ) as span:
            await self._run_call(call)
            error = self._errors.get(call.call_id)
            if error is not None:
                fail(span, error)

    async def _run_call(self, call: ToolCall) -> None:
        async with self._semaphore:
            started = time.monotonic()
            found = self._tools.get(call.name)
            is_error = True
            try:
                if found is None:
                    raise UnknownToolError(call.name, sorted(self._tools))
                context = ToolContext(
                    call.call_id, call.name, self._progress(call), asyncio.get_running_loop()
                )
                output = await found.invoke(call.arguments, context)
                is_error = False
            except asyncio.CancelledError as exc:
                self._finish(call, self._format(exc, call), started, is_error=True)
                raise
            except Exception as exc:
                self._errors[call.call_id] = type(exc).__qualname__
                output = self._format(exc, call)
            self._finish(call, output, started, is_error=is_error)

    def _finish(self, call: ToolCall, output: str, started: float, *, is_error: bool) -> None:
        self._outputs[call.call_id] = output
        duration = time.monotonic() - started
        self._emit(ToolResult(call.call_id, call.name, output, duration, is_error))

    def _progress(self, call: ToolCall) -> Callable[[str], None]:
        def report(message: str) -> None:
            self._emit(ToolProgress(call.call_id, call.name, message))

        return report
