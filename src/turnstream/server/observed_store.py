"""`ObservedStore`: any `Store`, with each call timed and each write traced.

It wraps the store the app was given, so every backend is measured the same way
and no storage module learns about Prometheus or OpenTelemetry. Store calls are
per request (or per batch of events), never per delta, so one histogram
observation each is cheap enough.

Calls that wait rather than work (`wait_for_events`, `wait_for_cancel`) and the
lifecycle (`open`, `close`) are passed through untimed. Some writes are timed but
get no span: the periodic heartbeat writes (`renew_lock`, `fail_stale_responses`),
since a root span every few seconds would drown the request traces, and a
background run's `append_events`, which happens once per batch of events and
would put hundreds of spans in one response's trace.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable
from typing import Any

from turnstream._tracing import Tracing

from .metrics import ServerMetrics

__all__ = ["ObservedStore"]

_UNTIMED = frozenset({"open", "close", "upgrade", "wait_for_events", "wait_for_cancel"})
_WRITES = frozenset(
    {
        "insert_response",
        "update_response",
        "delete_response",
        "request_cancel",
        "create_conversation",
        "update_conversation",
        "delete_conversation",
        "add_items",
        "delete_item",
        "acquire_lock",
        "release_lock",
        "finish_turn",
    }
)


class ObservedStore:
    """Delegates everything to `inner`; the Store protocol's coroutines are measured.

    A method is looked up on `inner` at each call, so a test that replaces a method
    on the wrapped store is still heard.
    """

    def __init__(
        self, inner: Any, metrics: ServerMetrics, tracing: Tracing, *, system: str
    ) -> None:
        self._inner = inner
        self._metrics = metrics
        self._tracing = tracing
        self._system = system

    @property
    def inner(self) -> Any:
        return self._inner

    def scoped(self, project: str) -> ObservedStore:
        """The inner store's view of one project, measured the same way."""
        return ObservedStore(
            self._inner.scoped(project), self._metrics, self._tracing, system=self._system
        )

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name in _UNTIMED or name.startswith("_") or not inspect.iscoroutinefunction(attr):
            return attr
        wrapper = self._wrap(name)
        # cached on the instance: later look-ups skip __getattr__ altogether
        self.__dict__[name] = wrapper
        return wrapper

    def _wrap(self, name: str) -> Callable[..., Any]:
        latency = self._metrics.store_latency.labels(name)
        traced = name in _WRITES
        tracing = self._tracing
        attributes = {"db.system.name": self._system, "db.operation.name": name}
        span_name = f"{name} {self._system}"  # the db conventions' "{operation} {target}"
        inner = self._inner

        @functools.wraps(getattr(inner, name))
        async def call(*args: Any, **kwargs: Any) -> Any:
            method = getattr(inner, name)
            began = time.perf_counter()
            try:
                if traced:
                    with tracing.span(span_name, kind="client", attributes=attributes):
                        return await method(*args, **kwargs)
                return await method(*args, **kwargs)
            finally:
                latency.observe(time.perf_counter() - began)

        return call
