"""The agent loop: stream a response, run its tools, send every output back, repeat.

`Agent` holds the configuration and drives a `ToolLoop` (`loop.py`), which makes every
decision; the Agent does the I/O: the transport, the tools, cancellation. Correct by
construction (DESIGN.md invariants 5 and 6):

- Each response is read to EOF before anything else is sent on its conversation, and a
  run holds its conversation for its whole length (`ConversationRegistry`), so at
  most one request is in flight per conversation.
- Every function call gets exactly one `function_call_output`, sent together with the
  others in one request. Outputs that could not be delivered (cancellation, a failed
  follow-up, the turn limit) are owed, and the next run on that conversation sends them
  first. A run cut off before it read its response's end leaves that turn in doubt;
  the next run asks the server what it kept (`reconcile.ask_server`) before it sends.
- Requests are retried (429, 5xx, `conversation_locked`, connection errors) only while
  nothing of the response was received; see `RetryPolicy` and `transport`.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import aclosing
from typing import Any, Literal

import openai

from turnstream._tracing import Tracing, end, fail, set_attributes

from .conversations import ConversationRegistry, shared_registry
from .events import RunCompleted, RunEvent, ToolCallReady, TurnCompleted
from .execution import ErrorFormatter, ToolBatch, default_error_formatter
from .history import LocalReplay, ResponseChain, ServerConversation, StateMode
from .loop import Failed, Finish, OweOutputs, RequestTemplate, RunTools, ToolLoop, TurnRequest
from .reconcile import ask_server
from .results import RunResult, TokenUsage
from .retry import RetryPolicy
from .run_stream import RunStream
from .tools import Tool, ToolCall
from .transport import HTTPTransport, Transport, wire_batches
from .turn import TurnReader
from .websocket import WebSocketTransport

__all__ = ["Agent"]

Item = dict[str, Any]


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
        tracer_provider: An OpenTelemetry `TracerProvider` for the run's spans (the
            run, each turn, each tool call); default: the global one. Without
            OpenTelemetry, or with no provider configured, there are no spans.
        compact_at_tokens: When a response reports more input tokens than this
            (`usage`), the history is compacted (`POST /responses/compact`) before
            the next request, which starts a new chain from the compacted window.
            Chains and `store=False` only; a conversation's history is the server's.
        transport: `"http"` (a streamed `POST /responses` per request),
            `"websocket"` (`response.create` frames over kept-open connections to
            `/responses`, fewer setups per tool round), or any `Transport`. Close a
            WebSocket Agent with `aclose()` (or `async with agent:`).
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
        tracer_provider: Any = None,
        transport: Literal["http", "websocket"] | Transport = "http",
        compact_at_tokens: int | None = None,
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
        self.transport = transport
        self.compact_at_tokens = compact_at_tokens
        self._transport: Transport = _make_transport(transport, client, self.retry)
        self._tool_definitions = [t.definition() for t in self.tools.values()]
        self._tracing = Tracing(tracer_provider, name="turnstream.runtime")

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
            agent._transport = _make_transport(self.transport, fresh, self.retry)
            try:
                return await agent.run(input, **kwargs)
            finally:
                await agent.aclose()
                await fresh.close()

        return asyncio.run(main())

    async def aclose(self) -> None:
        """Close the transport's connections (WebSocket); the client stays open."""
        aclose = getattr(self._transport, "aclose", None)
        if aclose is not None:
            await aclose()

    async def __aenter__(self) -> Agent:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _run(
        self, user_items: list[Item], mode: StateMode, max_turns: int, handle: RunStream
    ) -> AsyncGenerator[RunEvent, None]:
        # Holding the conversation for the whole run keeps one request in flight on it
        # and lets no other run slip in between a response's calls and their outputs.
        hold = self.registry.hold(mode.lock_key) if mode.lock_key else contextlib.nullcontext()
        async with hold:
            owed = self.registry.take_owed(mode.owed_key) if mode.owed_key else []
            doubt = self.registry.take_doubt(mode.owed_key) if mode.owed_key else None
            template = RequestTemplate(
                self.model, self.instructions, self._tool_definitions, self.request_options
            )
            loop = ToolLoop(mode, template, user_items, owed=owed, doubt=doubt, max_turns=max_turns)
            # spans of a generator are not made current (a generator may be resumed
            # from another context); turns and tool calls name their parent instead
            run_span = self._tracing.start(
                "invoke_agent",
                attributes={
                    "gen_ai.operation.name": "invoke_agent",
                    "gen_ai.request.model": self.model,
                    "gen_ai.conversation.id": getattr(mode, "conversation_id", None),
                },
            )
            try:
                async with aclosing(self._drive(loop, handle, run_span)) as events:
                    async for event in events:
                        yield event
            except GeneratorExit:
                raise  # the caller stopped reading: not the run's failure
            except BaseException as exc:
                fail(run_span, type(exc).__qualname__)
                raise
            finally:
                end(run_span)

    async def _drive(
        self, loop: ToolLoop, handle: RunStream, run_span: Any = None
    ) -> AsyncGenerator[RunEvent, None]:
        """Does what `loop` decides: the I/O, the tools, and the cleanup on any exit."""
        semaphore = asyncio.Semaphore(self.max_concurrent_tools)
        progress: asyncio.Queue[RunEvent | None] = asyncio.Queue()
        batch: ToolBatch | None = None
        reader: TurnReader | None = None
        refused = False
        try:
            if (question := loop.question) is not None:
                loop.settle(await ask_server(self.client, question, self.retry))
                handle.last_response_id = loop.last_response_id
            while True:
                request = loop.next_request()
                batch = ToolBatch(
                    self.tools,
                    semaphore=semaphore,
                    emit=progress.put_nowait,
                    error_formatter=self.error_formatter,
                    tracing=self._tracing,
                    parent_span=run_span,
                )
                reader = TurnReader(request.turn)
                # each inner generator is closed here, at once, if the run is stopped
                # mid-way: the connection and the tools must not wait for the GC
                turn = self._stream(request, reader, batch, progress, run_span)
                async with aclosing(turn) as events:
                    async for arrived in events:
                        for event in arrived:
                            yield event
                outcome = reader.outcome()
                decision = loop.on_stream_end(outcome)
                handle.last_response_id = loop.last_response_id
                yield TurnCompleted(outcome.response_id, outcome.usage, outcome.status)
                if isinstance(decision, Failed):
                    raise decision.error
                if isinstance(decision, Finish):
                    yield RunCompleted(decision.result)
                    return
                if isinstance(decision, RunTools):
                    async with aclosing(self._run_tools(batch, decision.calls, progress)) as tools:
                        async for event in tools:
                            yield event
                else:
                    await batch.cancel()
                note = decision.note if isinstance(decision, OweOutputs) else None
                finish = loop.on_outputs(batch.outputs(decision.calls, unfinished=note))
                if finish is not None:
                    yield RunCompleted(finish.result)
                    return
                await self._compact_if_due(loop.mode, outcome.usage)
        except openai.APIStatusError:
            refused = True  # an error status instead of a stream: nothing was kept
            raise
        finally:
            unanswered: list[Item] = []
            if batch is not None:
                await batch.cancel()
                unanswered = batch.outputs(loop.unanswered_calls)
            response_id = reader.response_id if reader else None
            self._keep_for_next_run(
                loop, loop.close(unanswered, response_id=response_id, refused=refused)
            )

    def _keep_for_next_run(self, loop: ToolLoop, owed: list[Item]) -> None:
        """What the next run on this history must send, or settle, first."""
        key = loop.mode.owed_key
        if key is not None:
            self.registry.owe(key, owed)
            if loop.in_doubt is not None:
                self.registry.leave_doubt(key, loop.in_doubt)

    async def _stream(
        self,
        request: TurnRequest,
        reader: TurnReader,
        batch: ToolBatch,
        progress: asyncio.Queue[RunEvent | None],
        run_span: Any = None,
    ) -> AsyncGenerator[list[RunEvent], None]:
        """One response's events, read to EOF; independent tools start as calls complete.

        Events come in lists, one per read of the body (`wire_batches`): per event,
        every generator in the chain would cost a resumption. So the reader (and an
        independent tool's early start) sees a read's events before the caller sees
        the first of them; a run stopped in between still gives every started call
        one output (the cancelled note). The turn is one span
        (GenAI conventions: `chat {model}`) when tracing; it is kept here rather than
        in a wrapping generator, which would cost another hop.
        """
        span = self._tracing.start(
            f"chat {self.model}",
            kind="client",
            parent=run_span,
            attributes={"gen_ai.operation.name": "chat", "gen_ai.request.model": self.model},
        )
        feed = reader.feed
        try:
            async with aclosing(wire_batches(self._transport, request)) as wire:
                async for frames in wire:
                    arrived: list[RunEvent] = []
                    for data in frames:
                        event = feed(data)
                        if event is None:
                            continue
                        if type(event) is ToolCallReady and not request.final:
                            batch.start_early(
                                ToolCall(
                                    event.call_id, event.name, event.raw_arguments, event.item_id
                                )
                            )
                        arrived.append(event)
                    while not progress.empty():
                        early = progress.get_nowait()
                        if early is not None:
                            arrived.append(early)
                    yield arrived
        except GeneratorExit:
            raise  # the caller stopped reading: not the turn's failure
        except BaseException as exc:
            fail(span, type(exc).__qualname__)
            raise
        finally:
            if span is not None:
                _end_turn_span(span, reader)

    async def _compact_if_due(self, mode: StateMode, usage: TokenUsage | None) -> None:
        """Replace a long history by its compacted window before the next request."""
        limit = self.compact_at_tokens
        if limit is None or usage is None or usage.input_tokens <= limit:
            return
        if not isinstance(mode, ResponseChain | LocalReplay):
            return
        # the raw JSON, as for streamed events: the items go back to the server as they
        # came, and no SDK model gets to reinterpret them
        raw = await self.client.with_options(max_retries=3).responses.with_raw_response.compact(
            model=self.model, **mode.compaction_source()
        )
        window = json.loads(raw.content)["output"]
        mode.rebase([dict(item) for item in window])

    @staticmethod
    async def _run_tools(
        batch: ToolBatch, calls: Sequence[ToolCall], progress: asyncio.Queue[RunEvent | None]
    ) -> AsyncGenerator[RunEvent, None]:
        """Runs `calls`, yielding their progress and results as they happen."""
        runner = asyncio.create_task(batch.run(calls))
        runner.add_done_callback(lambda _: progress.put_nowait(None))
        try:
            while (event := await progress.get()) is not None:
                yield event
        finally:
            if not runner.done():
                runner.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await runner
        await runner


def _end_turn_span(span: Any, reader: TurnReader) -> None:
    usage = reader.usage
    set_attributes(
        span,
        {
            "gen_ai.response.id": reader.response_id,
            "gen_ai.response.finish_reasons": [reader.status] if reader.status else None,
            "gen_ai.usage.input_tokens": usage.input_tokens if usage else None,
            "gen_ai.usage.output_tokens": usage.output_tokens if usage else None,
        },
    )
    end(span)


def _make_transport(
    kind: Literal["http", "websocket"] | Transport,
    client: openai.AsyncOpenAI,
    retry: RetryPolicy,
) -> Transport:
    if kind == "http":
        return HTTPTransport(client, retry)
    if kind == "websocket":
        return WebSocketTransport(client, retry)
    if isinstance(kind, str):
        raise ValueError(f"transport must be 'http', 'websocket' or a Transport, not {kind!r}")
    return kind
