"""Request limits: sizes checked before any work, and each key's request rate.

The request rate is counted per replica (a token bucket per key in this process):
N replicas behind a load balancer admit up to N times the rate. The concurrent-stream
limit is counted in the database (`Store.acquire_stream_slot`), so it holds across
replicas.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from turnstream.protocol.errors import INVALID_REQUEST, APIError, malformed_json

__all__ = [
    "Limits",
    "RateDecision",
    "RateLimiter",
    "check_create_body",
    "parse_json",
    "rate_limited",
    "too_large",
]

MiB = 1024 * 1024


@dataclass(slots=True)
class Limits:
    """What one request and one key may use. `None` switches a limit off."""

    max_body_bytes: int = 16 * MiB
    """A larger body is refused with 413 before it is read further."""
    body_timeout: float = 30.0
    """Seconds a client gets to send a whole request body (a slow-drip client is
    answered 408 and let go)."""
    keep_alive_timeout: float = 5.0
    """Seconds an idle keep-alive connection stays open (uvicorn's `timeout_keep_alive`)."""
    max_input_items: int = 2048
    max_tools: int = 256
    max_metadata_entries: int = 16
    """OpenAI's own limit on metadata pairs."""
    requests_per_minute: int | None = None
    """Per key, per replica."""
    concurrent_streams: int | None = None
    """Per key, across replicas (counted in the database)."""
    stream_slot_ttl: float = 60.0
    """A stream's slot lapses this long after its replica stopped renewing it."""


def too_large(limit: int) -> APIError:
    return APIError(
        413,
        INVALID_REQUEST,
        f"The request body is larger than this server accepts ({limit} bytes).",
        code="request_too_large",
    )


def _too_many(param: str, count: int, limit: int) -> APIError:
    return APIError(
        400,
        INVALID_REQUEST,
        f"Invalid '{param}': array too long. Expected an array with maximum length "
        f"{limit}, but got an array with length {count} instead.",
        code="array_above_max_length",
        param=param,
    )


def check_create_body(body: Mapping[str, Any], limits: Limits) -> None:
    """Refuse a create body with too many input items, tools or metadata entries,
    before it is parsed further (parsing 20,000 items is already work)."""
    counted = (
        ("input", body.get("input"), limits.max_input_items),
        ("tools", body.get("tools"), limits.max_tools),
    )
    for param, value, limit in counted:
        if isinstance(value, list) and len(value) > limit:
            raise _too_many(param, len(value), limit)
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and len(metadata) > limits.max_metadata_entries:
        raise APIError(
            400,
            INVALID_REQUEST,
            f"Invalid 'metadata': too many properties. Expected an object with at most "
            f"{limits.max_metadata_entries} properties, but got {len(metadata)} instead.",
            code="object_above_max_properties",
            param="metadata",
        )


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: float
    """Until the bucket is full again."""
    retry_after: float
    """Until the next request would be allowed (0 when allowed)."""

    def headers(self) -> dict[str, str]:
        """OpenAI's rate-limit headers (the official SDK reads `retry-after`)."""
        headers = {
            "x-ratelimit-limit-requests": str(self.limit),
            "x-ratelimit-remaining-requests": str(self.remaining),
            "x-ratelimit-reset-requests": f"{self.reset_seconds:.3f}s",
        }
        if not self.allowed:
            headers["retry-after"] = str(max(math.ceil(self.retry_after), 1))
            headers["retry-after-ms"] = str(max(math.ceil(self.retry_after * 1000), 1))
        return headers


class RateLimiter:
    """A token bucket per key: `per_minute` requests, refilled continuously."""

    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        self.per_minute = per_minute
        self._rate = per_minute / 60.0
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str) -> RateDecision:
        now = self._clock()
        tokens, last = self._buckets.get(key, (float(self.per_minute), now))
        tokens = min(float(self.per_minute), tokens + (now - last) * self._rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._buckets[key] = (tokens, now)
        return RateDecision(
            allowed=allowed,
            limit=self.per_minute,
            remaining=int(tokens),
            reset_seconds=(self.per_minute - tokens) / self._rate,
            retry_after=0.0 if allowed else (1.0 - tokens) / self._rate,
        )


def rate_limited(decision: RateDecision) -> APIError:
    return APIError(
        429,
        "requests",
        f"Rate limit reached for requests: limit {decision.limit} per minute for this key. "
        f"Please try again in {decision.retry_after:.1f}s.",
        code="rate_limit_exceeded",
        headers=decision.headers(),
    )


def parse_json(raw: bytes) -> Any:
    """A request body's JSON; 400 (never a 500) for anything that is not JSON or is
    nested deeper than the parser can follow (5,000 nested arrays)."""
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise malformed_json() from None
