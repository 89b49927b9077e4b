"""One streamed `POST /responses`, read to EOF, retried only while nothing was received.

The official `openai.AsyncOpenAI` carries the request (base URL, auth, Azure, custom
HTTP clients all keep working), but through `with_streaming_response` so the body
arrives as raw bytes: `turnstream.sse.Decoder` frames it and `json.loads` decodes each
`data`. No SDK event model is built, which is where the SDK spends most of its
per-event time. Non-2xx statuses still raise the SDK's exception types.

The client is used with `max_retries=0`: every retry is ours, counted by `RetryPolicy`.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

import httpx
import openai

from turnstream.sse import Decoder

from .errors import StreamInterruptedError
from .retry import RetryPolicy, is_retryable
from .turn import TERMINAL_TYPES

__all__ = ["stream_response"]


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
    client: openai.AsyncOpenAI, body: dict[str, Any], policy: RetryPolicy
) -> AsyncGenerator[dict[str, Any], None]:
    """Yield each wire event of one response, as a dict, until the body's EOF.

    Args:
        client: A client already configured with `max_retries=0`.
        body: The request body, without `stream`.
        policy: When to resend.

    Raises:
        openai.APIStatusError: a non-2xx status, once retries are exhausted or the
            status is not retryable.
        openai.APIConnectionError: likewise, for connection failures before a status.
        StreamInterruptedError: the body broke off after events had been received,
            or ended without a terminal event.
    """
    retries = 0
    while True:
        received = False
        try:
            async with aclosing(_one_attempt(client, body)) as events:
                async for data in events:
                    received = True
                    yield data
            return
        except _EmptyBody as exc:
            error: BaseException = exc
            headers = None
        except (openai.APIStatusError, openai.APIConnectionError) as exc:
            if not is_retryable(exc):
                raise
            error = exc
            headers = exc.response.headers if isinstance(exc, openai.APIStatusError) else None
        except TRANSPORT_ERRORS as exc:
            if received:
                raise StreamInterruptedError(f"the response stream broke off: {exc!r}") from exc
            error = exc
            headers = None
        if retries + 1 >= policy.max_attempts:
            if isinstance(error, _EmptyBody):
                raise StreamInterruptedError(str(error)) from None
            raise error
        await policy.sleep(policy.delay(retries, headers))
        retries += 1


async def _one_attempt(
    client: openai.AsyncOpenAI, body: dict[str, Any]
) -> AsyncGenerator[dict[str, Any], None]:
    received = False
    terminal = False
    async with client.responses.with_streaming_response.create(**body, stream=True) as response:
        decoder = Decoder()
        loads = json.loads
        async for chunk in response.iter_bytes():
            for event in decoder.feed(chunk):
                raw = event.data
                if not raw or raw == "[DONE]":
                    continue
                data = loads(raw)
                if not isinstance(data, dict):
                    continue
                received = True
                if data.get("type") in TERMINAL_TYPES:
                    terminal = True
                yield data
        for event in decoder.flush():
            raw = event.data
            if raw and raw != "[DONE]":
                data = loads(raw)
                if isinstance(data, dict):
                    received = True
                    terminal = terminal or data.get("type") in TERMINAL_TYPES
                    yield data
    if not terminal:
        if not received:
            raise _EmptyBody("the response body ended before its first event")
        raise StreamInterruptedError("the response stream ended without a terminal event")
