"""When and how long to wait before resending a request (DESIGN.md invariant 6).

Retryable: 408, 409, 429, >= 500, `400 conversation_locked`, connection errors and
timeouts, and a body that ended before its first event. The server's
`retry-after-ms` / `retry-after` is honoured exactly (up to `max_retry_after`);
otherwise the delay is exponential with jitter. `x-should-retry: false` (OpenAI's
"quota exhausted, don't bother") wins over everything.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import openai

__all__ = ["RetryPolicy", "is_retryable", "retry_after"]

RETRYABLE_STATUSES = frozenset({408, 409, 429})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many times, and how patiently, a request is resent.

    Attributes:
        max_attempts: Total attempts per request, the first included (>= 1).
        base: Delay before the first retry, in seconds; doubles per retry.
        cap: Upper bound of the computed delay.
        jitter: Fraction of the delay removed at random (0 to 1), to spread clients.
        max_retry_after: A server-given delay above this (seconds) is not waited
            out; the computed backoff is used instead.
        sleep: The coroutine used to wait; tests inject a fake clock here.
    """

    max_attempts: int = 8
    base: float = 0.25
    cap: float = 8.0
    jitter: float = 0.25
    max_retry_after: float = 60.0
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, compare=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be between 0 and 1")

    def delay(self, retries_so_far: int, headers: Mapping[str, str] | None = None) -> float:
        """Seconds to wait before retry number `retries_so_far + 1`."""
        server = retry_after(headers) if headers is not None else None
        if server is not None and 0 <= server <= self.max_retry_after:
            return server
        computed: float = min(self.base * 2.0**retries_so_far, self.cap)
        return computed * (1.0 - self.jitter * random.random())


def retry_after(headers: Mapping[str, str]) -> float | None:
    """The server's requested delay in seconds, from `retry-after-ms` or `retry-after`."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms is not None:
        try:
            return float(raw_ms) / 1000
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        parsed = email.utils.parsedate_tz(raw)
        if parsed is None:
            return None
        return max(0.0, email.utils.mktime_tz(parsed) - time.time())


def is_retryable(exc: BaseException) -> bool:
    """Whether a failure before the first streamed event may be retried."""
    if isinstance(exc, openai.APIStatusError):
        should = exc.response.headers.get("x-should-retry")
        if should == "false":
            return False
        if should == "true":
            return True
        status = exc.status_code
        if status == 400:
            return exc.code == "conversation_locked"
        return status in RETRYABLE_STATUSES or status >= 500
    # APITimeoutError is a subclass of APIConnectionError.
    return isinstance(exc, openai.APIConnectionError)
