"""`ServerState`: what one app instance holds, its explicit parts (no module-level
singletons). Routes reach it with `get_state(request)`."""

from __future__ import annotations

import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import Request

from turnstream._tracing import Tracing
from turnstream.storage.base import Store

from .auth import KeyCache
from .limits import RateLimiter
from .metrics import ServerMetrics
from .registry import ModelRegistry
from .replay import EventWakeup, PollingWakeup
from .settings import Settings

if TYPE_CHECKING:
    from .runs import ResponseRun

__all__ = ["ServerState", "get_state"]


@dataclass(slots=True)
class ServerState:
    settings: Settings
    store: Store
    models: ModelRegistry
    runs: dict[str, ResponseRun] = field(default_factory=dict)
    """Runs still in flight in this process, by response id."""
    recent_turns: deque[float] = field(default_factory=lambda: deque(maxlen=32))
    """Durations (s) of the last turns, for the `retry-after-ms` estimate."""
    rng: random.Random = field(default_factory=random.Random)
    wakeup: EventWakeup = field(default_factory=PollingWakeup)
    """How a resumed stream waits for new events in the store (see `replay`)."""
    metrics: ServerMetrics = field(default_factory=ServerMetrics)
    """This app's Prometheus metrics (`GET /metrics`)."""
    tracing: Tracing = field(default_factory=lambda: Tracing(name="turnstream.server"))
    """Spans for requests, admission, provider calls and store writes (a no-op
    without OpenTelemetry)."""
    key_cache: KeyCache = field(default_factory=lambda: KeyCache(2.0))
    """What the database said about API keys lately (see `auth`)."""
    rates: RateLimiter | None = None
    """Each key's request rate in this process (None: unlimited)."""
    secrets: dict[str, str] = field(default_factory=dict)
    """Shared secrets read from the store, by name (see `secrets`)."""

    def on_run_settled(self, run: ResponseRun) -> None:
        self.runs.pop(run.response_id, None)
        duration = time.monotonic() - run.started_at
        self.recent_turns.append(duration)
        model = run.request.model
        first = run.first_event_at
        self.metrics.observe_response(
            model,
            first_event=None if first is None else first - run.started_at,
            duration=duration,
            usage=run.response.usage,
        )
        if run.upstream_error is not None:
            self.metrics.upstream_errors.labels(model, run.upstream_error).inc()

    def typical_turn_seconds(self) -> float:
        if not self.recent_turns:
            return 1.0
        ordered = sorted(self.recent_turns)
        return ordered[len(ordered) // 2]


def get_state(request: Request) -> ServerState:
    state: ServerState = request.app.state.turnstream
    return state
