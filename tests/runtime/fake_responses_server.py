"""A small, faithful stand-in for a Responses server, on a real loopback socket.

It speaks the wire of ../shared/docs/protocol.md: §2 event order (created,
in_progress, items, one terminal event, then EOF), §5 errors (OpenAI's bodies for
`conversation_locked`, tool pairing, `previous_response_not_found`), conversations
that append a turn's input and output on completion, and `previous_response_id`
chains. A scripted `model` decides each response. Faults can be queued.

Two lock disciplines:
- `lock_release="before_terminal"`: persist and release before the terminal event
  (turnstream's server, DESIGN.md invariant 2);
- `lock_release="after_body"`: persist and release `release_delay` seconds after the
  body ends, which reproduces OpenAI's race (protocol.md §7.3): a client that sends its
  follow-up as soon as it sees `response.completed` gets `conversation_locked`.

Pairing and id rules are validated on every request, and violations are recorded in
`violations` as well as answered with 400, so tests can prove the runtime never trips
them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

Item = dict[str, Any]


# -- what a scripted model can say ------------------------------------------------------


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Call:
    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)


@dataclass(frozen=True)
class Reasoning:
    summary: str
    encrypted_content: str = "enc-blob"


@dataclass(frozen=True)
class Fail:
    """End the response with a flat `error` event, then `response.failed`."""

    code: str = "server_error"
    message: str = "The model crashed."


@dataclass(frozen=True)
class Incomplete:
    """End the response with `response.incomplete` (max_output_tokens)."""


@dataclass(frozen=True)
class Break:
    """Abort the connection here, mid-stream, without a terminal event."""


Output = Text | Call | Reasoning | Fail | Incomplete | Break


@dataclass
class ModelRequest:
    body: dict[str, Any]
    context: list[Item]
    input: list[Item]

    @property
    def tool_outputs(self) -> list[str]:
        return [str(i["output"]) for i in self.input if i.get("type") == "function_call_output"]

    @property
    def last_user_text(self) -> str:
        for item in reversed(self.context):
            if item.get("role") == "user":
                content = item.get("content")
                if isinstance(content, str):
                    return content
                return "".join(p.get("text", "") for p in content or () if isinstance(p, dict))
        return ""

    @property
    def tool_names(self) -> list[str]:
        return [t.get("name", "") for t in self.body.get("tools") or ()]

    @property
    def tools_allowed(self) -> bool:
        return bool(self.body.get("tools")) and self.body.get("tool_choice") != "none"


Model = Callable[[ModelRequest], list[Output]]


def echo_model(request: ModelRequest) -> list[Output]:
    """Answer tool outputs with a summary, anything else with an echo."""
    if request.tool_outputs:
        return [Text("Results: " + "; ".join(request.tool_outputs))]
    return [Text(f"echo: {request.last_user_text}")]


def call_then_answer(*calls: Call) -> Model:
    """Call the given tools when allowed; answer with their outputs."""

    def model(request: ModelRequest) -> list[Output]:
        if request.tool_outputs or not request.tools_allowed:
            return echo_model(request)
        return list(calls)

    return model


# -- faults -----------------------------------------------------------------------------

FaultKind = Literal["429", "503", "locked", "drop", "stall"]


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    retry_after_ms: int | None = None


# -- the server -------------------------------------------------------------------------


def _error(
    status: int,
    message: str,
    *,
    code: str | None = None,
    param: str | None = None,
    kind: str = "invalid_request_error",
    headers: dict[str, str] | None = None,
) -> Response:
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def _frame(event: Item) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n".encode()


def _normalize(item: Item) -> Item:
    if "type" not in item and "role" in item:
        content = item["content"]
        if isinstance(content, str):
            content = [
                {
                    "type": "input_text" if item["role"] != "assistant" else "output_text",
                    "text": content,
                }
            ]
        return {"type": "message", "role": item["role"], "content": content}
    return dict(item)


class FakeResponsesServer:
    """Start with `with FakeResponsesServer() as server:`; `server.base_url` ends in /v1."""

    def __init__(
        self,
        model: Model = echo_model,
        *,
        lock_release: Literal["before_terminal", "after_body"] = "before_terminal",
        release_delay: float = 0.0,
        event_delay: float = 0.0,
    ) -> None:
        self.model = model
        self.lock_release = lock_release
        self.release_delay = release_delay
        self.event_delay = event_delay
        self.faults: deque[Fault] = deque()
        self.requests: list[dict[str, Any]] = []
        self.violations: list[str] = []
        self.locked_rejections = 0
        self.disconnects = 0
        self.conversations: dict[str, list[Item]] = {}
        self.responses: dict[str, dict[str, Any]] = {}
        self.known_item_ids: set[str] = set()
        self._locks: set[str] = set()
        self._in_flight: dict[str, int] = {}
        self.max_in_flight = 0
        self._ids = itertools.count(1)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.app = Starlette(
            routes=[
                Route("/v1/responses", self._create_response, methods=["POST"]),
                Route("/v1/conversations", self._create_conversation, methods=["POST"]),
                Route("/v1/conversations/{cid}/items", self._list_items, methods=["GET"]),
            ]
        )

    # -- lifecycle

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> FakeResponsesServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app, log_level="critical", lifespan="off", ws="none", access_log=False
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:  # pragma: no cover
                raise RuntimeError("fake server did not start")
            time.sleep(0.005)
        self._sock = sock
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        assert self._thread is not None
        self._server.should_exit = True
        self._thread.join(10)
        self._sock.close()

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids):06d}"

    def create_conversation(self) -> str:
        cid = self.new_id("conv")
        self.conversations[cid] = []
        return cid

    def unanswered_calls(self, cid: str) -> list[str]:
        """call_ids in a conversation without an output (should stay empty)."""
        items = self.conversations[cid]
        answered = {i["call_id"] for i in items if i.get("type") == "function_call_output"}
        return [
            i["call_id"]
            for i in items
            if i.get("type") == "function_call" and i["call_id"] not in answered
        ]

    # -- routes

    async def _create_conversation(self, request: Request) -> Response:
        cid = self.create_conversation()
        return JSONResponse(
            {"id": cid, "object": "conversation", "created_at": int(time.time()), "metadata": {}}
        )

    async def _list_items(self, request: Request) -> Response:
        cid = request.path_params["cid"]
        if cid not in self.conversations:
            return _error(404, f"Conversation with id '{cid}' not found.")
        items = list(self.conversations[cid])
        if request.query_params.get("order", "desc") == "desc":
            items.reverse()
        return JSONResponse(
            {"object": "list", "data": items, "first_id": None, "last_id": None, "has_more": False}
        )

    async def _create_response(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(body)
        if self.faults:
            fault = self.faults.popleft()
            response = await self._fault(fault)
            if response is not None:
                return response
        conversation = body.get("conversation")
        if isinstance(conversation, dict):
            conversation = conversation.get("id")
        previous = body.get("previous_response_id")
        if conversation and previous:
            return self._violation(
                "Mutually exclusive parameters: 'conversation' and 'previous_response_id'.",
                param="conversation",
            )
        raw_input = body.get("input", [])
        new_items = [
            _normalize(i)
            for i in (
                [{"role": "user", "content": raw_input}]
                if isinstance(raw_input, str)
                else raw_input
            )
        ]
        store = body.get("store", True)
        prior: list[Item] = []
        if conversation:
            if conversation not in self.conversations:
                return _error(404, f"Conversation with id '{conversation}' not found.")
            # A busy conversation is refused before anything else is looked at.
            if conversation in self._locks:
                self.locked_rejections += 1
                return _error(
                    400,
                    "Another process is currently operating on this conversation. "
                    "Please retry in a few seconds.",
                    code="conversation_locked",
                    param="conversation",
                )
            prior = self.conversations[conversation]
        elif previous:
            stored = self.responses.get(previous)
            if stored is None:
                return _error(
                    400,
                    f"Previous response with id '{previous}' not found.",
                    code="previous_response_not_found",
                    param="previous_response_id",
                )
            prior = stored["context"] + stored["output"]
        prior_ids = {i.get("id") for i in prior if i.get("id")}
        for item in new_items:
            item_id = item.get("id")
            if not item_id:
                continue
            if item_id in prior_ids:
                return self._violation(f"Duplicate item found with id {item_id}.")
            replayable_reasoning = item.get("type") == "reasoning" and item.get("encrypted_content")
            if item_id not in self.known_item_ids and not replayable_reasoning:
                return self._violation(f"Item with id '{item_id}' not found.")
        context = prior + new_items
        problem = self._pairing_problem(context)
        if problem is not None:
            return self._violation(problem)
        if conversation:
            self._locks.add(conversation)
        key = conversation or "-"
        self._in_flight[key] = self._in_flight.get(key, 0) + 1
        if conversation:
            self.max_in_flight = max(self.max_in_flight, self._in_flight[key])
        try:
            outputs = self.model(ModelRequest(body, context, new_items))
        except Exception:
            self._release(conversation, key)
            raise
        stream = self._stream(body, conversation, key, store, context, new_items, outputs)
        return StreamingResponse(stream, media_type="text/event-stream; charset=utf-8")

    async def _fault(self, fault: Fault) -> Response | None:
        headers = {}
        if fault.retry_after_ms is not None:
            headers["retry-after-ms"] = str(fault.retry_after_ms)
        if fault.kind == "429":
            return _error(
                429,
                "Rate limit reached. Please try again shortly.",
                code="rate_limit_exceeded",
                kind="requests",
                headers=headers,
            )
        if fault.kind == "503":
            return _error(
                503,
                "The server is overloaded.",
                code="server_error",
                kind="server_error",
                headers=headers,
            )
        if fault.kind == "locked":
            self.locked_rejections += 1
            return _error(
                400,
                "Another process is currently operating on this conversation. "
                "Please retry in a few seconds.",
                code="conversation_locked",
                param="conversation",
            )
        if fault.kind == "stall":
            await asyncio.sleep(1.0)
            return _error(503, "stalled", code="server_error", kind="server_error")

        async def dropped() -> AsyncIterator[bytes]:
            raise ConnectionAbortedError("fault: connection dropped before the first event")
            yield b""  # pragma: no cover

        return StreamingResponse(dropped(), media_type="text/event-stream")

    def _violation(self, message: str, *, param: str | None = "input") -> Response:
        self.violations.append(message)
        return _error(400, message, param=param)

    @staticmethod
    def _pairing_problem(context: list[Item]) -> str | None:
        calls: list[str] = []
        answered: set[str] = set()
        for item in context:
            if item.get("type") == "function_call":
                calls.append(item["call_id"])
            elif item.get("type") == "function_call_output":
                call_id = item.get("call_id")
                if call_id not in calls:
                    return f"No tool call found for function call output with call_id {call_id}."
                if call_id in answered:
                    return f"Duplicate tool output for call_id {call_id}."
                answered.add(call_id)
        for call_id in calls:
            if call_id not in answered:
                return f"No tool output found for function call {call_id}."
        return None

    def _release(self, conversation: str | None, key: str) -> None:
        self._in_flight[key] -= 1
        if conversation:
            self._locks.discard(conversation)

    def _persist(
        self,
        rid: str,
        conversation: str | None,
        store: bool,
        context: list[Item],
        new_items: list[Item],
        output: list[Item],
    ) -> None:
        if conversation:
            stored_input = []
            for item in new_items:
                item = dict(item)
                item.setdefault("id", self.new_id("item"))
                stored_input.append(item)
            self.conversations[conversation].extend(stored_input)
            self.conversations[conversation].extend(output)
            self.known_item_ids.update(i["id"] for i in stored_input)
        if store:
            self.responses[rid] = {"context": context, "output": output}
            self.known_item_ids.update(i["id"] for i in output if i.get("id"))

    async def _stream(
        self,
        body: dict[str, Any],
        conversation: str | None,
        key: str,
        store: bool,
        context: list[Item],
        new_items: list[Item],
        outputs: list[Output],
    ) -> AsyncIterator[bytes]:
        rid = self.new_id("resp")
        seq = itertools.count()
        response: Item = {
            "id": rid,
            "object": "response",
            "created_at": int(time.time()),
            "status": "in_progress",
            "model": body.get("model"),
            "output": [],
            "conversation": {"id": conversation} if conversation else None,
            "previous_response_id": body.get("previous_response_id"),
            "store": store,
            "tools": body.get("tools") or [],
            "tool_choice": body.get("tool_choice", "auto"),
            "parallel_tool_calls": True,
            "error": None,
            "incomplete_details": None,
            "usage": None,
        }
        terminal_sent = False
        released = False
        status = "in_progress"
        done: list[Item] = []

        def event(kind: str, **fields: Any) -> bytes:
            return _frame({"type": kind, "sequence_number": next(seq), **fields})

        async def emit(frame: bytes) -> AsyncIterator[bytes]:
            if self.event_delay:
                await asyncio.sleep(self.event_delay)
            # split every frame at an awkward boundary to exercise the client's decoder
            yield frame[:7]
            yield frame[7:]

        def finish() -> None:
            nonlocal released
            if not released:
                released = True
                self._release(conversation, key)

        try:
            async for chunk in emit(event("response.created", response=dict(response))):
                yield chunk
            async for chunk in emit(event("response.in_progress", response=dict(response))):
                yield chunk
            status = "completed"
            error_obj = None
            for out in outputs:
                index = len(done)
                if isinstance(out, Break):
                    raise ConnectionAbortedError("fault: stream broken mid-way")
                if isinstance(out, Fail):
                    status = "failed"
                    error_obj = {"code": out.code, "message": out.message}
                    async for chunk in emit(
                        event("error", code=out.code, message=out.message, param=None)
                    ):
                        yield chunk
                    break
                if isinstance(out, Incomplete):
                    status = "incomplete"
                    break
                frames, item = self._item_frames(out, index, event)
                for frame in frames:
                    async for chunk in emit(frame):
                        yield chunk
                done.append(item)
            final = dict(
                response,
                status=status,
                output=done,
                error=error_obj,
                usage={
                    "input_tokens": 10,
                    "output_tokens": 5,
                    "total_tokens": 15,
                    "input_tokens_details": {"cached_tokens": 0},
                    "output_tokens_details": {"reasoning_tokens": 0},
                },
            )
            if status == "incomplete":
                final["incomplete_details"] = {"reason": "max_output_tokens"}
            if self.lock_release == "before_terminal":
                if status != "failed":
                    self._persist(rid, conversation, store, context, new_items, done)
                finish()
            terminal_sent = True
            async for chunk in emit(event(f"response.{status}", response=final)):
                yield chunk
        except (asyncio.CancelledError, GeneratorExit):
            self.disconnects += 1
            raise
        finally:
            if self.lock_release == "after_body" and not released:
                persist = terminal_sent and status != "failed"

                def later() -> None:
                    if persist:
                        self._persist(rid, conversation, store, context, new_items, done)
                    finish()

                # No awaits here: a disconnect cancels this generator's scope.
                asyncio.get_running_loop().call_later(self.release_delay, later)
            else:
                finish()

    def _item_frames(
        self, out: Output, index: int, event: Callable[..., bytes]
    ) -> tuple[list[bytes], Item]:
        if isinstance(out, Text):
            iid = self.new_id("msg")
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            added = {
                "id": iid,
                "type": "message",
                "role": "assistant",
                "status": "in_progress",
                "content": [],
            }
            words = out.text.split(" ")
            pieces = [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]
            full = dict(part, text=out.text)
            item = dict(added, status="completed", content=[full])
            frames = [
                event("response.output_item.added", output_index=index, item=added),
                event(
                    "response.content_part.added",
                    item_id=iid,
                    output_index=index,
                    content_index=0,
                    part=part,
                ),
                *[
                    event(
                        "response.output_text.delta",
                        item_id=iid,
                        output_index=index,
                        content_index=0,
                        delta=p,
                        logprobs=[],
                    )
                    for p in pieces
                ],
                event(
                    "response.output_text.done",
                    item_id=iid,
                    output_index=index,
                    content_index=0,
                    text=out.text,
                    logprobs=[],
                ),
                event(
                    "response.content_part.done",
                    item_id=iid,
                    output_index=index,
                    content_index=0,
                    part=full,
                ),
                event("response.output_item.done", output_index=index, item=item),
            ]
            return frames, item
        if isinstance(out, Call):
            iid = self.new_id("fc")
            call_id = self.new_id("call")
            args = out.arguments if isinstance(out.arguments, str) else json.dumps(out.arguments)
            added = {
                "type": "function_call",
                "id": iid,
                "call_id": call_id,
                "name": out.name,
                "arguments": "",
                "status": "in_progress",
            }
            item = dict(added, arguments=args, status="completed")
            half = len(args) // 2
            frames = [
                event("response.output_item.added", output_index=index, item=added),
                event(
                    "response.function_call_arguments.delta",
                    item_id=iid,
                    output_index=index,
                    delta=args[:half],
                ),
                event(
                    "response.function_call_arguments.delta",
                    item_id=iid,
                    output_index=index,
                    delta=args[half:],
                ),
                event(
                    "response.function_call_arguments.done",
                    item_id=iid,
                    output_index=index,
                    arguments=args,
                    name=out.name,
                ),
                event("response.output_item.done", output_index=index, item=item),
            ]
            return frames, item
        assert isinstance(out, Reasoning)
        iid = self.new_id("rs")
        added = {"type": "reasoning", "id": iid, "summary": []}
        item = dict(
            added,
            summary=[{"type": "summary_text", "text": out.summary}],
            encrypted_content=out.encrypted_content,
            status="completed",
        )
        return [
            event("response.output_item.added", output_index=index, item=added),
            event("response.output_item.done", output_index=index, item=item),
        ], item


@contextlib.contextmanager
def running(model: Model = echo_model, **options: Any) -> Iterator[FakeResponsesServer]:
    with FakeResponsesServer(model, **options) as server:
        yield server
