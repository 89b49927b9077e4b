"""A bridge to any OpenAI-compatible Chat Completions upstream.

`OpenAIChatProvider` serves Responses requests from a `POST /chat/completions`
streaming endpoint: OpenAI itself, llama.cpp's server, vLLM, Ollama, LM Studio, ...
The context is translated by `_chat_request` and the stream back by `_chat_stream`
(both pure); this module only does the HTTP.

Choices worth knowing:

- `max_output_tokens` is sent as `max_tokens`, which llama.cpp, vLLM, Ollama and
  OpenAI's non-reasoning models accept; pass `max_tokens_field="max_completion_tokens"`
  for OpenAI's reasoning models.
- `text.format` (`json_schema`, `json_object`) is sent as `response_format`; for an
  upstream known not to support it (`structured_output=False`) such a request is a
  400 rather than an answer that silently ignores the format.
- Reasoning that comes back in the input (stateless clients send it as sealed
  `encrypted_content`, which the server opens) is sent as `reasoning_content` on the
  assistant message it led to, when `reasoning_content=True` (vLLM, llama.cpp take
  it); other upstreams never see it.
- Upstream HTTP errors become `ProviderError`s with the status our client should see:
  a 400/413/422 is the request's fault and stays 400 with the upstream message; a 429
  stays 429 and keeps `retry-after`/`retry-after-ms`; a rejected upstream key (401/403)
  or a missing upstream model (404) is the server's configuration problem, so 502
  `upstream_error`; a 503 stays 503; other 5xx become 502; timeouts 504
  `upstream_timeout`; a refused connection 503 `upstream_unavailable`.
- Cancellation: when the consumer closes the delta iterator (or its task is
  cancelled) the upstream connection is closed at once, which stops generation on
  servers that watch for it.
- The HTTP client: the provider's own connections go through `_http1.UpstreamPool`,
  a lean HTTP/1.1 client that costs a fraction of httpx's CPU per streamed chunk; an
  `http_client` passed in (for proxies, or a test transport) is used instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Literal, Protocol, cast
from urllib.parse import urlsplit

import httpx

from turnstream.engine.deltas import (
    Delta,
    FinishDelta,
    ItemEndDelta,
    OutputTextDelta,
    ToolCallDelta,
    UsageDelta,
)
from turnstream.providers._chat_request import MaxTokensField, build_chat_body
from turnstream.providers._chat_stream import ChatChunkTranslator
from turnstream.providers._http1 import (
    UpstreamConnectError,
    UpstreamHTTPError,
    UpstreamPool,
    UpstreamTimeout,
)
from turnstream.providers._text_calls import ReplySniffer
from turnstream.providers.base import GenerationRequest, Provider, ProviderError
from turnstream.sse import Decoder, ServerSentEvent

__all__ = ["DEFAULT_TIMEOUT", "ChatProviderStats", "OpenAIChatProvider"]

DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=300.0, write=30.0, pool=30.0)
"""Read is the longest pause between two stream bytes, so it covers a long prefill."""

_DRAIN_AFTER_DONE = 1.0
"""How long to wait for EOF after `[DONE]`, so the connection can go back to the pool."""


class _Reply(Protocol):
    """What the provider reads of a response, from httpx or from `UpstreamPool`."""

    @property
    def status_code(self) -> int: ...
    @property
    def reason_phrase(self) -> str: ...
    @property
    def headers(self) -> httpx.Headers: ...
    @property
    def text(self) -> str: ...
    @property
    def is_success(self) -> bool: ...
    async def aread(self) -> bytes: ...


_Read = Callable[[], Awaitable[bytes]]
"""The next body bytes that arrived; `b""` at the end of the body."""


@dataclass(slots=True)
class ChatProviderStats:
    """Cumulative counters for the time this provider itself adds to each stream."""

    streams: int = 0
    overhead_seconds: float = 0.0
    """Time spent building request bodies, decoding SSE and translating chunks."""


class OpenAIChatProvider(Provider):
    """Streams responses from an OpenAI-compatible Chat Completions server.

    Args:
        base_url: The upstream API root, e.g. `http://127.0.0.1:8080/v1`.
        api_key: Sent as `Authorization: Bearer ...` when given.
        models: Public model name -> upstream model name.
        timeout: Applied to every upstream request.
        http_client: An httpx client to use (and share; this provider then never closes
            it), e.g. one with a proxy. By default the provider owns a pool of
            keep-alive connections (`_http1.UpstreamPool`) and `aclose()` closes it.
        max_connections: The most connections the owned pool opens to the upstream
            at once. A stream holds one from start to end, so streams beyond it wait
            for one and fail `upstream_timeout` after the pool timeout. `None` (the
            default): no cap, one connection per open stream.
        developer_role: Role for `developer` messages; most open servers only know
            `system`.
        max_tokens_field: Which Chat Completions field carries `max_output_tokens`.
        extra_body: Extra top-level fields merged into every request body
            (e.g. `{"chat_template_kwargs": {...}}` for vLLM).
        headers: Extra headers sent with every request.
        text_tool_calls: Also recognise calls a small model writes as reply text.
        reasoning_content: The upstream takes reasoning back as `reasoning_content`.
        structured_output: The upstream honours `response_format`.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        models: Mapping[str, str] | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        http_client: httpx.AsyncClient | None = None,
        max_connections: int | None = None,
        developer_role: Literal["system", "developer"] = "system",
        max_tokens_field: MaxTokensField = "max_tokens",
        extra_body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        text_tool_calls: bool = False,
        reasoning_content: bool = False,
        structured_output: bool = True,
    ) -> None:
        if not models:
            raise ValueError("OpenAIChatProvider needs at least one model mapping")
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._path = urlsplit(self._url).path
        self._models = dict(models)
        self._timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self._client = http_client
        # not httpx's pool: per streamed chunk it costs several times our own work,
        # it caps at 100 connections by default (stream 101 would wait, unseen) and
        # its upkeep grows with the square of the open streams
        self._pool = (
            UpstreamPool(base_url, timeout=self._timeout, max_connections=max_connections)
            if http_client is None
            else None
        )
        self._developer_role = developer_role
        self._max_tokens_field = max_tokens_field
        self._extra_body = dict(extra_body or {})
        self._headers = {"accept": "text/event-stream", "content-type": "application/json"}
        self._headers.update(headers or {})
        if api_key:
            self._headers["authorization"] = f"Bearer {api_key}"
        self._api_key = api_key
        self.stats = ChatProviderStats()
        self._text_tool_calls = text_tool_calls
        self._reasoning_content = reasoning_content
        self._structured_output = structured_output

    def models(self) -> Sequence[str]:
        return list(self._models)

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()

    @property
    def _closed(self) -> bool:
        if self._pool is not None:
            return self._pool.is_closed
        return self._client is not None and self._client.is_closed

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[Delta, None]:
        """The upstream's answer as deltas; its errors never carry our API key (an
        upstream's 401 text often quotes it, and the message reaches clients, logs
        and stored responses)."""
        try:
            async for delta in self._stream(request):
                yield delta
        except ProviderError as exc:
            if self._api_key and self._api_key in exc.message:
                raise ProviderError(
                    exc.message.replace(self._api_key, "[redacted]"),
                    code=exc.code,
                    status=exc.status,
                    retry_after=exc.retry_after,
                ) from None
            raise

    async def _stream(self, request: GenerationRequest) -> AsyncGenerator[Delta, None]:
        upstream_model = self._models.get(request.model)
        if upstream_model is None:
            raise ProviderError(
                f"The requested model '{request.model}' does not exist.",
                code="model_not_found",
                status=400,
            )
        if self._closed:
            raise ProviderError(
                "This model provider has been shut down.", code="server_error", status=503
            )
        if request.text_format is not None and not self._structured_output:
            raise ProviderError(
                f"The model '{request.model}' cannot produce structured output: its "
                f"upstream does not support 'text.format' of type "
                f"'{request.text_format.get('type')}'.",
                code="unsupported_parameter",
                status=400,
            )
        started = time.perf_counter()
        body = build_chat_body(
            request,
            upstream_model,
            developer_role=self._developer_role,
            max_tokens_field=self._max_tokens_field,
            extra_body=self._extra_body,
            reasoning_content=self._reasoning_content,
        )
        content = json.dumps(body, ensure_ascii=False).encode()
        self.stats.streams += 1
        self.stats.overhead_seconds += time.perf_counter() - started
        try:
            if self._pool is not None:
                reply = await self._pool.post(self._path, self._headers, content)
                try:
                    async for delta in self._answer(reply, reply.read_some, request):
                        yield delta
                finally:
                    reply.close()
                return
            assert self._client is not None
            async with self._client.stream(
                "POST", self._url, content=content, headers=self._headers, timeout=self._timeout
            ) as response:
                # httpx's aiter_bytes is an async generator; close it with us, not at GC
                chunks = cast(AsyncGenerator[bytes, None], response.aiter_bytes())
                async with contextlib.aclosing(chunks):
                    read = functools.partial(anext, chunks, b"")
                    async for delta in self._answer(response, read, request):
                        yield delta
        except (httpx.ConnectError, UpstreamConnectError) as exc:
            raise _transport_error(exc, "upstream_unavailable", 503) from exc
        except (httpx.TimeoutException, UpstreamTimeout) as exc:
            raise _transport_error(exc, "upstream_timeout", 504) from exc
        except (httpx.HTTPError, UpstreamHTTPError) as exc:
            raise _transport_error(exc, "upstream_error", 502) from exc

    async def _answer(
        self, response: _Reply, read: _Read, request: GenerationRequest
    ) -> AsyncGenerator[Delta, None]:
        """The deltas of an upstream response whose head has arrived."""
        if not response.is_success:
            await response.aread()
            raise _status_error(response)
        if response.headers.get("content-type", "").startswith("application/json"):
            # The upstream ignored `stream: true` and sent a whole completion.
            for delta in _whole_completion(await response.aread()):
                yield delta
            return
        # aclosing: a consumer that stops early closes the inner generator now,
        # not whenever the garbage collector gets to it.
        source = self._deltas(read, request.on_started)
        if self._text_tool_calls and request.tools and request.tool_choice != "none":
            names = [str(tool.get("name")) for tool in request.tools]
            source = _calls_written_as_text(source, names)
        async with contextlib.aclosing(source) as deltas:
            async for delta in deltas:
                yield delta

    async def _deltas(
        self, read: _Read, on_started: Callable[[], None] | None = None
    ) -> AsyncGenerator[Delta, None]:
        decoder = Decoder()
        translator = ChatChunkTranslator()
        done = False
        while raw := await read():
            started = time.perf_counter()
            events = decoder.feed(raw)
            deltas, done, error = _translate(events, translator)
            self.stats.overhead_seconds += time.perf_counter() - started
            if error is not None:
                # what came before the error in the same read is the client's too
                for delta in deltas:
                    yield delta
                raise error
            if on_started is not None and events:
                # a first chunk that is not an error (often a role-only one, sent
                # before the model's first token): the upstream has started
                on_started()
                on_started = None
            for delta in deltas:
                yield delta
            if done:
                break
        deltas, error = _ending(decoder, translator, done)
        for delta in deltas:
            yield delta
        if error is not None:
            raise error
        if done:
            await _read_to_end(read)


def _ending(
    decoder: Decoder, translator: ChatChunkTranslator, done: bool
) -> tuple[list[Delta], ProviderError | None]:
    """The deltas after the body's last byte (what the decoder still held, then the
    finish), and the error that ends the stream instead, if any."""
    deltas: list[Delta] = []
    if not done:
        deltas, done, error = _translate(decoder.flush(), translator)
        if error is not None:
            return deltas, error
    if not done and translator.finish_reason is None:
        return deltas, ProviderError(
            "The upstream model server ended the stream early.",
            code="upstream_error",
            status=502,
        )
    return deltas + translator.finish(), None


async def _read_to_end(read: _Read) -> None:
    """Read the (normally empty) rest of a body after `[DONE]`, so the connection is
    reused; a server that keeps it open after [DONE] costs one connection."""
    try:
        async with asyncio.timeout(_DRAIN_AFTER_DONE):
            while await read():
                pass
    except (TimeoutError, httpx.HTTPError, UpstreamHTTPError):
        pass


def _translate(
    events: list[ServerSentEvent], translator: ChatChunkTranslator
) -> tuple[list[Delta], bool, ProviderError | None]:
    """The deltas of `events`, whether `[DONE]` was among them, and the error that
    stopped them (the deltas before it are kept: one read may hold both)."""
    deltas: list[Delta] = []
    for event in events:
        data = event.data.strip()
        if not data:
            continue  # e.g. a bare `event:` frame; Chat Completions data is never empty
        if data == "[DONE]":
            return deltas, True, None
        try:
            chunk = json.loads(data)
        except ValueError as exc:
            error = ProviderError(
                "The upstream model server sent invalid JSON in its stream.",
                code="upstream_error",
                status=502,
            )
            error.__cause__ = exc
            return deltas, False, error
        if isinstance(chunk, Mapping):
            try:
                deltas += translator.feed(chunk)
            except ProviderError as exc:
                return deltas, False, exc
    return deltas, False, None


def _whole_completion(body: bytes) -> list[Delta]:
    translator = ChatChunkTranslator()
    try:
        completion = json.loads(body)
    except ValueError as exc:
        raise ProviderError(
            "The upstream model server sent invalid JSON.", code="upstream_error", status=502
        ) from exc
    if not isinstance(completion, Mapping):
        raise ProviderError("Unexpected upstream reply.", code="upstream_error", status=502)
    choices = [
        {**choice, "delta": choice.get("message") or {}}
        for choice in completion.get("choices") or ()
        if isinstance(choice, Mapping)
    ]
    deltas = translator.feed({**completion, "choices": choices})
    return deltas + translator.finish()


def _status_error(response: _Reply) -> ProviderError:
    message, code = _error_body(response)
    status = response.status_code
    if status == 429:
        return ProviderError(
            message,
            code=code or "rate_limit_exceeded",
            status=429,
            retry_after=_retry_after(response.headers),
        )
    if status in (400, 413, 422):
        return ProviderError(message, code=code or "invalid_request", status=400)
    if status == 503:
        return ProviderError(
            f"The upstream model server is unavailable: {message}",
            code="upstream_unavailable",
            status=503,
            retry_after=_retry_after(response.headers),
        )
    if status in (408, 504):
        return ProviderError(
            f"The upstream model server timed out: {message}", code="upstream_timeout", status=504
        )
    return ProviderError(
        f"The upstream model server answered HTTP {status}: {message}",
        code="upstream_error",
        status=502,
    )


def _error_body(response: _Reply) -> tuple[str, str | None]:
    """The upstream's error message and code, from OpenAI's shape or a common variant."""
    text = response.text
    try:
        body = json.loads(text)
    except ValueError:
        return (text.strip()[:500] or response.reason_phrase or "no details"), None
    error = body.get("error", body) if isinstance(body, Mapping) else body
    if isinstance(error, Mapping):
        message = error.get("message") or error.get("detail") or json.dumps(error)[:500]
        code = error.get("code")
        return str(message), code if isinstance(code, str) and code else None
    return str(error)[:500], None


def _retry_after(headers: httpx.Headers) -> float | None:
    milliseconds = headers.get("retry-after-ms")
    if milliseconds is not None:
        try:
            return max(float(milliseconds) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(moment.timestamp() - time.time(), 0.0)


def _transport_error(exc: Exception, code: str, status: int) -> ProviderError:
    detail = str(exc) or type(exc).__name__
    return ProviderError(
        f"Could not reach the upstream model server: {detail}", code=code, status=status
    )


# Provider indexes for calls recognised in text: far above any upstream index.
_TEXT_CALL_INDEX = 10_000


async def _calls_written_as_text(
    deltas: AsyncGenerator[Delta, None], tool_names: Sequence[str]
) -> AsyncGenerator[Delta, None]:
    """Recognise calls a model wrote as reply text instead of `tool_calls`.

    Small open models behind llama.cpp or vLLM often answer a tool request with a bare
    `{"name": ..., "arguments": ...}` object that the upstream's own parser misses.
    The start of the reply is held back until it is clearly prose (then it streams)
    or clearly a call (then it becomes a function call at the end).
    """
    sniffer = ReplySniffer(tool_names)
    held: list[Delta] = []
    async with contextlib.aclosing(deltas):
        async for delta in deltas:
            if isinstance(delta, OutputTextDelta):
                released = sniffer.feed(delta.text)
                if released:
                    yield OutputTextDelta(released)
            elif isinstance(delta, UsageDelta | FinishDelta):
                held.append(delta)  # after the calls, which are only known at the end
            else:
                yield delta
    text, calls = sniffer.finish()
    if text:
        yield OutputTextDelta(text)
    for offset, call in enumerate(calls):
        yield ToolCallDelta(_TEXT_CALL_INDEX + offset, name=call.name, arguments=call.arguments)
        yield ItemEndDelta()
    for delta in held:
        yield delta
