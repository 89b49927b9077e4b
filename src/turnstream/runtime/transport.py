"""How a request reaches the server and its events come back: the `Transport` seam.

A transport takes one logical request (`TurnRequest`) and yields each wire event of
its response, as a dict, to the end of the body. Retries happen inside, and only
while nothing of the response was received, so one `stream()` call is one logical
request however many times it is sent; a transport that sends an idempotency key
makes one per `stream()` call and reuses it on every retry. The loop never sees a
retry, so other transports (a WebSocket connection) plug in without touching it.

`HTTPTransport` streams `POST /responses` through the official `openai.AsyncOpenAI`
(base URL, auth, Azure, custom HTTP clients all keep working), with the client's own
`post` (the SDK's documented way to reach any endpoint) and `cast_to` its HTTP
response type, so the body arrives as raw bytes: `turnstream.sse.Decoder` frames it
and `json.loads` decodes each `data`. No SDK event model is built, which is where the
SDK spends most of its per-event time, and the body is not walked by the SDK's
`transform` against its TypedDicts, which cost more CPU per request than the rest of
a tool round (for Responses params it changes nothing: they have no aliases and no
file formats, and the SDK's JSON encoder dumps pydantic models the way `transform`
would). Non-2xx statuses still raise the SDK's exception types. A frame whose `data`
is not a JSON object is skipped, as a tolerant reader skips what it does not know; if
that hides the terminal event, the stream counts as interrupted.
"""

from __future__ import annotations

import json
import ssl
import uuid
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from typing import Any, Protocol, cast

import httpx
import openai
from httpx2 import Response as _HTTPResponse  # the SDK's HTTP types (openai>=3 needs httpx2)
from openai import RequestOptions

from turnstream.sse import Decoder, ServerSentEvent

from .errors import StreamInterruptedError
from .loop import TurnRequest
from .retry import RetryPolicy, is_retryable
from .turn import TERMINAL_TYPES

__all__ = [
    "IDEMPOTENCY_HEADER",
    "HTTPTransport",
    "Transport",
    "stream_batches",
    "stream_response",
    "wire_batches",
]

IDEMPOTENCY_HEADER = "Idempotency-Key"


class Transport(Protocol):
    """Carries logical requests to a Responses server."""

    def stream(self, request: TurnRequest) -> AsyncGenerator[dict[str, Any], None]:
        """Each wire event of `request`'s response, until the body's end.

        Raises as `stream_response` does; callers close the generator (`aclosing`)
        to abandon the response.

        A transport may also offer `stream_batches(request)`: the same events, in
        lists of those that arrived together (one read of the body). The Agent uses it
        when present (`wire_batches`), which costs one generator hop per read instead
        of one per event.
        """
        ...


def wire_batches(
    transport: Transport, request: TurnRequest
) -> AsyncGenerator[list[dict[str, Any]], None]:
    """`transport`'s events for `request`, as `stream_batches` lists when it has them."""
    batches = getattr(transport, "stream_batches", None)
    if batches is not None:
        return cast("AsyncGenerator[list[dict[str, Any]], None]", batches(request))
    return _one_each(transport.stream(request))


async def _one_each(
    events: AsyncGenerator[dict[str, Any], None],
) -> AsyncGenerator[list[dict[str, Any]], None]:
    async with aclosing(events):
        async for event in events:
            yield [event]


class HTTPTransport:
    """`POST /responses` with `stream: true`, over an `openai.AsyncOpenAI` client.

    The client is used with `max_retries=0`: every retry is ours, counted by `policy`.
    """

    def __init__(self, client: openai.AsyncOpenAI, policy: RetryPolicy) -> None:
        self.client = client.with_options(max_retries=0)
        self.policy = policy

    def stream(self, request: TurnRequest) -> AsyncGenerator[dict[str, Any], None]:
        return _each(self.stream_batches(request))

    def stream_batches(self, request: TurnRequest) -> AsyncGenerator[list[dict[str, Any]], None]:
        """The events of `request`'s response, a list per read of the body."""
        # options win over the body (`TurnRequest`); the runtime reads streams only
        body = {**request.body, **request.options, "stream": True}
        # one key per logical request, the same on every retry of it: a server that
        # did the turn before the connection dropped answers the retry with that turn
        headers = {IDEMPOTENCY_HEADER: new_idempotency_key()}
        return stream_batches(self.client, body, self.policy, headers)


def new_idempotency_key() -> str:
    return f"ts-{uuid.uuid4().hex}"


def _transport_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [httpx.TransportError, ssl.SSLError, OSError]
    try:  # openai 3.x reads bodies through httpx2; 1.x through httpx.
        import httpx2
    except ImportError:  # pragma: no cover - depends on the installed SDK
        pass
    else:
        errors.append(httpx2.TransportError)
    try:
        import anyio
    except ImportError:  # pragma: no cover
        pass
    else:
        errors.append(anyio.EndOfStream)
    return tuple(errors)


TRANSPORT_ERRORS = _transport_errors()


class _EmptyBody(Exception):
    """The body ended (or broke) before its first event: safe to resend."""


async def stream_response(
    client: openai.AsyncOpenAI,
    body: dict[str, Any],
    policy: RetryPolicy,
    headers: Mapping[str, str] | None = None,
) -> AsyncGenerator[dict[str, Any], None]:
    """Yield each wire event of one response, as a dict, until the body's EOF.

    Args:
        client: A client already configured with `max_retries=0`.
        body: The JSON body of `POST /responses`, with `stream: true`.
        policy: When to resend.
        headers: Extra request headers, the same on every attempt.

    Raises:
        openai.APIStatusError: a non-2xx status, once retries are exhausted or the
            status is not retryable.
        openai.APIConnectionError: likewise, for connection failures before a status.
        StreamInterruptedError: the body broke off after events had been received,
            or ended without a terminal event.
    """
    async with aclosing(_each(stream_batches(client, body, policy, headers))) as events:
        async for data in events:
            yield data


async def _each(
    batches: AsyncGenerator[list[dict[str, Any]], None],
) -> AsyncGenerator[dict[str, Any], None]:
    async with aclosing(batches):
        async for batch in batches:
            for data in batch:
                yield data


async def stream_batches(
    client: openai.AsyncOpenAI,
    body: dict[str, Any],
    policy: RetryPolicy,
    headers: Mapping[str, str] | None = None,
) -> AsyncGenerator[list[dict[str, Any]], None]:
    """`stream_response`, with the events of each read of the body in one list."""
    retries = 0
    while True:
        received = False
        try:
            async with aclosing(_one_attempt(client, body, headers)) as attempt:
                async for batch in attempt:
                    received = True
                    yield batch
            return
        except _EmptyBody as exc:
            error: BaseException = exc
            answer = None
        except (openai.APIStatusError, openai.APIConnectionError) as exc:
            if not is_retryable(exc):
                raise
            error = exc
            answer = exc.response.headers if isinstance(exc, openai.APIStatusError) else None
        except TRANSPORT_ERRORS as exc:
            if received:
                raise StreamInterruptedError(f"the response stream broke off: {exc!r}") from exc
            error = exc
            answer = None
        if retries + 1 >= policy.max_attempts:
            if isinstance(error, _EmptyBody):
                raise StreamInterruptedError(str(error)) from None
            raise error
        await policy.sleep(policy.delay(retries, answer))
        retries += 1


async def _one_attempt(
    client: openai.AsyncOpenAI, body: dict[str, Any], headers: Mapping[str, str] | None
) -> AsyncGenerator[list[dict[str, Any]], None]:
    received = False
    terminal = False
    options: RequestOptions = {"security": {"bearer_auth": True}}  # as `responses.create`
    if headers:
        options["headers"] = headers
    # `cast_to` the HTTP response type: the SDK hands the response back unread (raising
    # its status errors first), and closing it is ours
    response = await client.post(
        "/responses", cast_to=_HTTPResponse, body=body, options=options, stream=True
    )
    try:
        decoder = Decoder()
        async for chunk in response.aiter_bytes():
            if batch := _objects(decoder.feed(chunk)):
                received = True
                terminal = terminal or _has_terminal(batch)
                yield batch
        if batch := _objects(decoder.flush()):
            received = True
            terminal = terminal or _has_terminal(batch)
            yield batch
    finally:
        await response.aclose()
    if not terminal:
        if not received:
            raise _EmptyBody("the response body ended before its first event")
        raise StreamInterruptedError("the response stream ended without a terminal event")


def _objects(events: list[ServerSentEvent]) -> list[dict[str, Any]]:
    return [data for event in events if (data := _object(event.data)) is not None]


def _has_terminal(batch: list[dict[str, Any]]) -> bool:
    return any(data.get("type") in TERMINAL_TYPES for data in batch)


def _object(raw: str) -> dict[str, Any] | None:
    """A frame's data as a JSON object; `None` for `[DONE]`, empty or garbled data."""
    if not raw or raw == "[DONE]":
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None
