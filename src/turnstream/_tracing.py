"""Optional OpenTelemetry tracing, shared by the server and the runtime.

OpenTelemetry is an extra (`turnstream[otel]`: the SDK; recent FastAPI brings the API
to the server on its own). When `opentelemetry` cannot be imported, or no tracer
provider was configured, `Tracing.span()` hands back one shared no-op context
manager: no allocation, no span. Otherwise spans go to the tracer provider given to
the `Tracing` (tests pass one with an in-memory exporter) or to the process' global
provider, once the application has installed one (as `opentelemetry-instrument`
does).

Attribute names follow the OpenTelemetry GenAI semantic conventions
(`gen_ai.operation.name`, `gen_ai.request.model`, `gen_ai.usage.input_tokens`, ...);
they are spelled out here rather than imported, so the conventions package is not
needed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any, Literal

try:
    from opentelemetry import trace as _otel_trace
except ImportError:  # the extra is not installed: tracing is off
    _otel_trace = None  # type: ignore[assignment]  # the module's stand-in when absent

__all__ = ["OTEL_AVAILABLE", "SpanKind", "Tracing", "end", "fail", "set_attributes"]

OTEL_AVAILABLE = _otel_trace is not None

SpanKind = Literal["internal", "server", "client"]

_NO_SPAN: contextlib.nullcontext[None] = contextlib.nullcontext()


class Tracing:
    """A tracer, or nothing when OpenTelemetry is absent.

    Args:
        tracer_provider: An `opentelemetry.trace.TracerProvider`; default: the global one.
        name: The instrumentation scope (`turnstream.server`, `turnstream.runtime`).
    """

    def __init__(self, tracer_provider: Any = None, *, name: str = "turnstream") -> None:
        self._name = name
        self._explicit = tracer_provider
        self._provider: Any = None
        self._tracer_of_provider: Any = None

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    @property
    def _tracer(self) -> Any:
        """The tracer, or `None` while nobody configured a tracer provider: the API's
        default proxy would only hand out spans that record nothing, so skipping them
        is the zero-cost path. FastAPI's own telemetry decides the same way."""
        if _otel_trace is None:
            return None
        provider = self._explicit or _otel_trace.get_tracer_provider()
        if provider is not self._provider:
            self._provider = provider
            self._tracer_of_provider = (
                None if _unconfigured(provider) else provider.get_tracer(self._name)
            )
        return self._tracer_of_provider

    def span(
        self,
        name: str,
        *,
        kind: SpanKind = "internal",
        attributes: Mapping[str, Any] | None = None,
        parent: Any = None,
    ) -> contextlib.AbstractContextManager[Any]:
        """A span made current for the `with` block; yields the span (or `None`).

        Its parent is the current span, or `parent` when given. An exception leaving
        the block marks the span as failed (`error.type`).
        """
        tracer = self._tracer
        if tracer is None:
            return _NO_SPAN
        return self._current(tracer, name, kind, attributes, parent)

    @contextlib.contextmanager
    def _current(
        self,
        tracer: Any,
        name: str,
        kind: SpanKind,
        attributes: Mapping[str, Any] | None,
        parent: Any,
    ) -> Iterator[Any]:
        assert _otel_trace is not None
        context = _otel_trace.set_span_in_context(parent) if parent is not None else None
        with tracer.start_as_current_span(
            name, context=context, kind=_kind(kind), attributes=_clean(attributes)
        ) as span:
            try:
                yield span
            except BaseException as exc:
                # a more telling kind (a provider's error code) may be set already
                if "error.type" not in (getattr(span, "attributes", None) or {}):
                    span.set_attribute("error.type", type(exc).__qualname__)
                raise

    def start(
        self,
        name: str,
        *,
        kind: SpanKind = "internal",
        attributes: Mapping[str, Any] | None = None,
        parent: Any = None,
    ) -> Any:
        """A span that is not made current, for work that does not sit in one `with`
        block (an async generator's turns). End it with `end()`. `parent` is a span."""
        tracer = self._tracer
        if tracer is None:
            return None
        assert _otel_trace is not None
        context = _otel_trace.set_span_in_context(parent) if parent is not None else None
        return tracer.start_span(
            name, context=context, kind=_kind(kind), attributes=_clean(attributes)
        )


def set_attributes(span: Any, attributes: Mapping[str, Any]) -> None:
    """Set the attributes that have a value, on a span that may be `None`."""
    if span is not None:
        span.set_attributes(_clean(attributes))


def fail(span: Any, error_type: str, message: str = "") -> None:
    """Mark a span failed, the OpenTelemetry way (`error.type` and an error status)."""
    if span is None or _otel_trace is None:
        return
    span.set_attribute("error.type", error_type)
    span.set_status(_otel_trace.Status(_otel_trace.StatusCode.ERROR, message or None))


def end(span: Any) -> None:
    if span is not None:
        span.end()


def _kind(kind: SpanKind) -> Any:
    assert _otel_trace is not None
    return {
        "internal": _otel_trace.SpanKind.INTERNAL,
        "server": _otel_trace.SpanKind.SERVER,
        "client": _otel_trace.SpanKind.CLIENT,
    }[kind]


def _unconfigured(provider: Any) -> bool:
    # the API has no "is configured" query; these are its stand-ins until an SDK
    # provider is installed
    cls = type(provider)
    return cls.__module__.startswith("opentelemetry.trace") and cls.__name__ in (
        "ProxyTracerProvider",
        "NoOpTracerProvider",
    )


def _clean(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    # OpenTelemetry refuses None values; leaving them out is what "unknown" means
    return {k: v for k, v in (attributes or {}).items() if v is not None}
