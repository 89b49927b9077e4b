"""The agent loop: stream a response, run its tools, send every output back, repeat.

Correct by construction (DESIGN.md invariants 5 and 6):

- Each response is read to EOF before anything else is sent on its conversation, and a
  run holds its conversation for its whole length (`ConversationRegistry`), so at
  most one request is in flight per conversation.
- Every function call gets exactly one `function_call_output`, sent together with the
  others in one request. Outputs that could not be delivered (cancellation, a failed
  follow-up, the turn limit) are owed, and the next run on that conversation sends them
  first.
- Requests are retried (429, 5xx, `conversation_locked`, connection errors) only while
  nothing of the response was received; see `RetryPolicy` and `transport`.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import aclosing
from types import TracebackType
from typing import Any

import openai

from .conversations import ConversationRegistry, shared_registry
from .errors import ResponseFailedError
from .events import (
    RunCompleted,
    RunEvent,
    ToolCallReady,
    TurnCompleted,
)
from .execution import ErrorFormatter, ToolBatch, default_error_formatter
from .results import RunResult, RunStatus, Usage
from .retry import RetryPolicy
from .state import LocalReplay, ResponseChain, ServerConversation, StateMode
from .tools import Tool, ToolCall
from .transport import stream_response
from .turn import TurnReader

__all__ = ["Agent", "RunStream"]

Item = dict[str, Any]

NOT_RUN_TURN_LIMIT = "Error: the tool was not run: the turn limit was reached."
NOT_RUN_INCOMPLETE = "Error: the tool was not run: the response was incomplete."


class Agent:
    """A model, its instructions and tools, over an `openai.AsyncOpenAI` client.

    Args:
        client: The transport; bring your own (base URL, key, Azure). Its own retries
            are switched off for our requests; `retry` governs them.
        model: Model id sent with every request.
        instructions: Sent with every request (they do not carry over on the server).
        tools: `Tool`s built with `@tool`.
        max_turns: Model responses per run. The last one is asked for a final answer
            with `tool_choice: "none"` instead of raising.
        max_concurrent_tools: How many tool calls run at once.
        retry: The retry policy for requests.
        error_formatter: `(exc, call) -> str`, the output text of a failed call
            (redact secrets here).
        store: `False` keeps the history client-side and resends it each request.
        request_options: Extra body fields for every request (`temperature`,
            `reasoning`, `max_output_tokens`, ...).
        registry: Per-conversation locks and owed outputs; defaults to one registry
            shared by every Agent in the process.
    """

    def __init__(
        self,
        *,
        client: openai.AsyncOpenAI,
        model: str,
        instructions: str | None = None,
        tools: Sequence[Tool] = (),
        max_turns: int = 10,
        max_concurrent_tools: int = 8,
        retry: RetryPolicy | None = None,
        error_formatter: ErrorFormatter | None = None,
        store: bool = True,
        request_options: Mapping[str, Any] | None = None,
        registry: ConversationRegistry | None = None,
    ) -> None:
        if max_turns < 1:
            raise ValueError("max_turns must be at least 1")
        if max_concurrent_tools < 1:
            raise ValueError("max_concurrent_tools must be at least 1")
        names = [t.name for t in tools]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate tool names: {names}")
        self.client = client
        self.model = model
        self.instructions = instructions
        self.tools: dict[str, Tool] = {t.name: t for t in tools}
        self.max_turns = max_turns
        self.max_concurrent_tools = max_concurrent_tools
        self.retry = retry or RetryPolicy()
        self.error_formatter = error_formatter or default_error_formatter
        self.store = store
        self.request_options = dict(request_options or {})
        self.registry = registry or shared_registry()
        self._transport = client.with_options(max_retries=0)
        self._tool_definitions = [t.definition() for t in self.tools.values()]

    def stream(
        self,
        input: str | Sequence[Item],
        *,
        conversation: str | None = None,
        previous_response_id: str | None = None,
        history: Sequence[Item] | None = None,
        max_turns: int | None = None,
    ) -> RunStream:
        """Start a run and iterate its events as they happen.

        Args:
            input: A user message, or a list of input items.
            conversation: Server-held history (`conv_...`).
            previous_response_id: Chain onto a stored response.
            history: With `store=False`: the context so far (`RunResult.history`).
            max_turns: Overrides the Agent's `max_turns` for this run.

        Returns:
            A `RunStream`: `async for` it; `cancel()` or `aclose()` it to stop.
        """
        if conversation is not None and previous_response_id is not None:
            raise ValueError("conversation and previous_response_id cannot be combined")
        if history is not None and self.store:
            raise ValueError("history= is for local replay (Agent(store=False))")
        mode: StateMode
        if not self.store:
            if conversation is not None or previous_response_id is not None:
                raise ValueError("store=False keeps history locally; pass history= instead")
            mode = LocalReplay([dict(item) for item in history or ()])
        elif conversation is not None:
            mode = ServerConversation(conversation)
        else:
            mode = ResponseChain(previous_response_id)
        items: list[Item] = (
            [{"role": "user", "content": input}]
            if isinstance(input, str)
            else [dict(item) for item in input]
        )
        turns = max_turns if max_turns is not None else self.max_turns
        if turns < 1:
            raise ValueError("max_turns must be at least 1")
        handle = RunStream()
        handle._start(self._run(items, mode, turns, handle))
        return handle

    async def run(self, input: str | Sequence[Item], **kwargs: Any) -> RunResult:
        """Run to the end and return the result (same arguments as `stream`).

        Raises:
            ResponseFailedError: a response ended with `response.failed`.
            StreamInterruptedError: a stream broke off after output was received.
            openai.APIStatusError: a request failed and was not (or no longer) retried.
        """
        async with self.stream(input, **kwargs) as events:
            async for _ in events:
                pass
        assert events.result is not None
        return events.result

    def run_sync(self, input: str | Sequence[Item], **kwargs: Any) -> RunResult:
        """`run` for synchronous code, on a private event loop that ends with the call.

        Pooled connections belong to the loop that opened them, so this uses a copy of
        the client (same base URL, key, headers) with a fresh connection pool, closed
        before the loop ends. A custom `http_client` on the client is not used here.
        """

        async def main() -> RunResult:
            fresh = self.client.copy(http_client=openai.DefaultAsyncHttpxClient())
            agent = copy.copy(self)
            agent.client = fresh
            agent._transport = fresh.with_options(max_retries=0)
            try:
                return await agent.run(input, **kwargs)
            finally:
                await fresh.close()

        return asyncio.run(main())

    def _body(self, mode: StateMode, new_items: list[Item], final: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "input": mode.input(new_items)}
        if self.instructions is not None:
            body["instructions"] = self.instructions
        if self._tool_definitions:
            body["tools"] = self._tool_definitions
            if final:
                body["tool_choice"] = "none"
        body.update(mode.fields())
        if self.request_options:
            body["extra_body"] = self.request_options
        return body

    async def _run(
        self, user_items: list[Item], mode: StateMode, max_turns: int, handle: RunStream
    ) -> AsyncGenerator[RunEvent, None]:
        hold = (
            self.registry.hold(mode.lock_key)
            if mode.lock_key is not None
            else contextlib.nullcontext()
        )
        turns = self._turns(user_items, mode, max_turns, handle)
        async with hold, aclosing(turns) as events:
            async for event in events:
                yield event

    async def _turns(
        self, user_items: list[Item], mode: StateMode, max_turns: int, handle: RunStream
    ) -> AsyncGenerator[RunEvent, None]:
        owed_key = mode.owed_key
        owed = self.registry.take_owed(owed_key) if owed_key is not None else []
        # Outputs sent but not yet accepted by a response that completed.
        undelivered: list[Item] = list(owed)
        # A batch whose calls the server holds but whose outputs are not computed yet.
        unanswered: ToolBatch | None = None
        new_items_in: list[Item] = [*owed, *user_items]
        run_items: list[Item] = []
        usage = Usage()
        semaphore = asyncio.Semaphore(self.max_concurrent_tools)
        queue: asyncio.Queue[RunEvent | None] = asyncio.Queue()
        emit = queue.put_nowait
        batch: ToolBatch | None = None
        try:
            for turn in range(1, max_turns + 1):
                final = turn == max_turns
                reader = TurnReader(turn)
                batch = ToolBatch(
                    self.tools, semaphore=semaphore, emit=emit, error_formatter=self.error_formatter
                )
                body = self._body(mode, new_items_in, final)
                async with aclosing(stream_response(self._transport, body, self.retry)) as wire:
                    async for data in wire:
                        event = reader.feed(data)
                        if event is not None:
                            if type(event) is ToolCallReady and not final:
                                batch.submit(
                                    ToolCall(
                                        event.call_id,
                                        event.name,
                                        event.raw_arguments,
                                        event.item_id,
                                    )
                                )
                            yield event
                        while not queue.empty():
                            progress = queue.get_nowait()
                            if progress is not None:
                                yield progress
                # EOF: the server is done with this request.
                response_id = reader.response_id or ""
                status = reader.status or "failed"
                if reader.usage is not None:
                    usage = usage + reader.usage
                yield TurnCompleted(response_id, reader.usage, status)
                if status == "failed":
                    # Nothing of a failed response is kept, so its calls are not owed;
                    # `undelivered` stays owed.
                    await batch.cancel()
                    code, message = reader.failure
                    raise ResponseFailedError(response_id, code, message)
                mode.completed(response_id, new_items_in, reader.output_items)
                handle.last_response_id = response_id
                run_items.extend(new_items_in if turn > 1 else owed)
                run_items.extend(reader.output_items)
                undelivered = []
                known = {call.call_id for call in batch.calls}
                for call in reader.calls:
                    if call.call_id not in known and not final:
                        batch.submit(call)
                owed_key = mode.key_for_calls(response_id)
                if not reader.calls:
                    yield self._finish(reader, run_items, usage, mode, turn, status)
                    return
                if final or status == "incomplete":
                    note = NOT_RUN_TURN_LIMIT if final else NOT_RUN_INCOMPLETE
                    await batch.cancel()
                    answered = {o["call_id"]: o for o in batch.outputs(unfinished=note)}
                    self._owe(
                        mode,
                        owed_key,
                        [
                            answered.get(call.call_id)
                            or {
                                "type": "function_call_output",
                                "call_id": call.call_id,
                                "output": note,
                            }
                            for call in reader.calls
                        ],
                    )
                    yield self._finish(reader, run_items, usage, mode, turn, "incomplete")
                    return
                unanswered = batch
                runner = asyncio.create_task(batch.run_remaining())
                runner.add_done_callback(lambda _: emit(None))
                try:
                    while (event_or_end := await queue.get()) is not None:
                        yield event_or_end
                finally:
                    if not runner.done():
                        runner.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await runner
                await runner
                new_items_in = batch.outputs()
                undelivered = new_items_in
                unanswered = None
        finally:
            if unanswered is not None:
                await unanswered.cancel()
                undelivered = unanswered.outputs()
            elif batch is not None:
                await batch.cancel()
            self._owe(mode, owed_key, undelivered)

    def _owe(self, mode: StateMode, key: str | None, outputs: list[Item]) -> None:
        if not outputs:
            return
        if isinstance(mode, LocalReplay):
            mode.history.extend(outputs)
        elif key is not None:
            self.registry.owe(key, outputs)

    def _finish(
        self,
        reader: TurnReader,
        run_items: list[Item],
        usage: Usage,
        mode: StateMode,
        turn: int,
        status: RunStatus | str,
    ) -> RunCompleted:
        result = RunResult(
            final_output=reader.text,
            new_items=run_items,
            usage=usage,
            status="incomplete" if status == "incomplete" else "completed",
            last_response_id=reader.response_id,
            conversation=mode.conversation_id if isinstance(mode, ServerConversation) else None,
            turns=turn,
            history=list(mode.history) if isinstance(mode, LocalReplay) else [],
        )
        return RunCompleted(result)


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
