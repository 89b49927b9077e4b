"""`ServerMetrics`: what the server counts, in Prometheus' text format at `GET /metrics`.

Each app builds its own `CollectorRegistry` (`create_app` makes one `ServerMetrics`),
so two apps in one process (tests, the CLI's chat beside the API) never share
counters and nothing is registered at import time.

With several worker processes (`--workers N`) a scrape reaches one worker only. When
`PROMETHEUS_MULTIPROC_DIR` names an empty, writable directory in the environment the
workers start with, prometheus_client keeps every value in files there and
`/metrics` answers with the sum over all workers (`MultiProcessCollector`); without
it, each worker reports its own figures. prometheus_client reads the variable when it
is first imported, so it must be set before the server starts. A worker that exited
(stopped, crashed or killed) leaves its files behind: its counters and histograms
still count, as they should, but its live gauges (`turnstream_open_streams`) must
not, so every scrape first drops those of processes that are gone
(prometheus_client's `mark_process_dead`, which it leaves to the process manager;
uvicorn's has no hook for it).

Hot path: a histogram observation per response (first event, end), never per delta.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from turnstream.protocol.responses import Usage

__all__ = ["MULTIPROC_ENV", "ServerMetrics", "require_metrics_access", "router"]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# from a fast scripted model (ms) to a slow local one (minutes)
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


class ServerMetrics:
    """The server's metrics, registered in a registry of their own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "turnstream_http_requests",
            "HTTP requests answered, by route template, method and status code.",
            ["route", "method", "status"],
            registry=r,
        )
        self.open_streams = Gauge(
            "turnstream_open_streams",
            "Server-sent event streams open now.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.first_event = Histogram(
            "turnstream_response_first_event_seconds",
            "From admission to the model's first event, by model.",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.duration = Histogram(
            "turnstream_response_duration_seconds",
            "From admission to the terminal event (persisted), by model.",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.input_tokens = Counter(
            "turnstream_input_tokens", "Input tokens of finished responses.", ["model"], registry=r
        )
        self.output_tokens = Counter(
            "turnstream_output_tokens",
            "Output tokens of finished responses.",
            ["model"],
            registry=r,
        )
        self.conversation_locked = Counter(
            "turnstream_conversation_locked",
            "Requests refused with conversation_locked (another response held the conversation).",
            registry=r,
        )
        self.lease_takeovers = Counter(
            "turnstream_lease_takeovers",
            "Conversation leases this process lost to another holder after they expired.",
            ["stage"],
            registry=r,
        )
        self.store_latency = Histogram(
            "turnstream_store_seconds",
            "Time taken by store operations, by operation.",
            ["operation"],
            buckets=_STORE_BUCKETS,
            registry=r,
        )
        self.upstream_errors = Counter(
            "turnstream_upstream_errors",
            "Provider (upstream) failures, by model and kind (the error code).",
            ["model", "kind"],
            registry=r,
        )

    def observe_response(
        self,
        model: str,
        *,
        first_event: float | None,
        duration: float,
        usage: Usage | None,
    ) -> None:
        """One finished response: latencies and tokens."""
        if first_event is not None:
            self.first_event.labels(model).observe(first_event)
        self.duration.labels(model).observe(duration)
        if usage is not None:
            self.input_tokens.labels(model).inc(usage.input_tokens)
            self.output_tokens.labels(model).inc(usage.output_tokens)

    def exposition(self) -> bytes:
        """The text format, summed over workers in multiprocess mode."""
        if directory := os.environ.get(MULTIPROC_ENV):
            from prometheus_client import multiprocess

            _forget_exited_processes(directory)
            merged = CollectorRegistry()
            multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]  # untyped upstream
            return generate_latest(merged)
        return generate_latest(self.registry)


def _forget_exited_processes(directory: str) -> None:
    """Drop the live gauges of the processes in `directory` that have exited."""
    from prometheus_client import multiprocess

    pids = {path.stem.rpartition("_")[2] for path in Path(directory).glob("gauge_live*_*.db")}
    for pid in pids:
        if pid.isdigit() and not _running(int(pid)):
            multiprocess.mark_process_dead(int(pid), directory)  # type: ignore[no-untyped-call]  # untyped upstream


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, as another user's process
    return True


def require_metrics_access(request: Request) -> None:
    """The access check for `/metrics`.

    KEYS: once API keys exist, call the key check here (the one marked call site);
    `/metrics` must then need a key like the API does.
    """
    return None


router = APIRouter(tags=["operations"])


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    require_metrics_access(request)
    state = request.app.state.turnstream
    return Response(state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
