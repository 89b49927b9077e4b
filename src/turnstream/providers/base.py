"""The provider interface: one small protocol every model backend implements.

A provider turns a `GenerationRequest` (the fully assembled context, in wire-shaped
dicts) into an async iterator of engine deltas. It never sees HTTP requests, storage
or ids, and it signals failure by raising `ProviderError`. Cancellation is plain task
cancellation: when the consumer stops iterating (`aclose()`), the provider must stop
generating and release its upstream resources promptly.

Start-up hooks (`start`, `ready`, `loading`, `load_progress`, `is_ready`) have
defaults for a provider that needs no warm-up; one that loads something heavy (the
embedded model) overrides them. Providers subclass `Provider` to get the defaults.

A provider with limited capacity (the embedded model's slots) answers `may_queue`
with True; its `stream()` then yields a `QueuedDelta` first when the request has to
wait, and a `StartedDelta` when it leaves the queue, and the server shows the
response `queued` meanwhile.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from turnstream.engine.deltas import Delta

__all__ = ["GenerationRequest", "ModelLoadState", "Provider", "ProviderError"]

ModelLoadState = Literal["ready", "loading", "on_first_use", "failed"]
"""Where a model stands: see `Provider.load_state`."""


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """Everything a model needs for one response.

    `items` is the assembled context in canonical wire form: every message has
    `type: "message"`, a `role` and `content` as a list of parts (`input_text`,
    `input_image`, `output_text`, `refusal`, ...); function calls and their outputs are
    `function_call` / `function_call_output` dicts; reasoning items are `reasoning`.
    `tools` are flat Responses function tools (`{"type": "function", "name", ...}`):
    the server has already expanded namespaces and custom tools into functions
    (`engine.toolset`), and rewritten the calls in `items` to match. Reasoning
    items may carry their text in `content` (`reasoning_text` parts).
    `text_format` is the request's `text.format` when it asks for JSON
    (`{"type": "json_schema", "name", "schema", "strict"}` or
    `{"type": "json_object"}`); a provider that cannot honour it raises a 400.
    """

    model: str
    items: Sequence[Mapping[str, Any]]
    instructions: str | None = None
    tools: Sequence[Mapping[str, Any]] = ()
    tool_choice: str | Mapping[str, Any] = "auto"
    parallel_tool_calls: bool = True
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    text_format: Mapping[str, Any] | None = None
    on_started: Callable[[], None] | None = field(default=None, compare=False, repr=False)
    """Called (once) when the upstream has accepted the request and its stream has
    begun, which can be well before the first delta (a role-only chunk, a long
    prefill). The server then sends the stream's head at once; a provider that never
    calls it makes the server wait for the first delta instead."""


class ProviderError(Exception):
    """Generation failed.

    Raised before the first delta (and before `GenerationRequest.on_started`) with an
    HTTP-ish `status` (for example an upstream 429), the server answers with that
    status as a JSON error; raised later, the response ends `failed` with `code` and
    `message`.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str = "server_error",
        status: int = 500,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.retry_after = retry_after


@runtime_checkable
class Provider(Protocol):
    """A model backend serving one or more public model names."""

    def models(self) -> Sequence[str]:
        """The public model names this provider answers for."""
        ...

    def stream(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        """Generate one response as deltas (an async generator)."""
        ...

    async def aclose(self) -> None:
        """Release shared resources (HTTP clients, loaded models)."""
        ...

    # -- start-up hooks, with defaults for a provider that is ready at once -------------

    def start(self, model: str | None = None) -> None:
        """Begin any background loading; the server calls it once at start-up, from
        its event loop, without a model. With `model`: begin loading that model if it
        waits for its first use (`load_state` says `on_first_use`). Must not block."""
        return None

    async def ready(self, model: str | None = None) -> None:
        """Wait until `model` (default: every model) can answer; raise if loading failed."""
        return None

    @property
    def loading(self) -> bool:
        """True while a model is being loaded."""
        return False

    @property
    def load_progress(self) -> float:
        """Progress of the loads under way, 0.0 to 1.0 (1.0 when idle)."""
        return 1.0

    def is_ready(self, model: str) -> bool:
        """Whether `model` can answer without waiting for a load."""
        return True

    def load_state(self, model: str) -> ModelLoadState:
        """`ready`, `loading`, `on_first_use` (not loaded, and no load begun: the
        first request or `start(model)` begins it) or `failed` (the last load raised;
        the next request tries again)."""
        return "ready" if self.is_ready(model) else "loading"

    def model_load_progress(self, model: str) -> float:
        """How far `model`'s own load has come, 0.0 to 1.0 (1.0 once it is loaded)."""
        return 1.0 if self.is_ready(model) else self.load_progress

    def may_queue(self, model: str) -> bool:
        """Whether a request for `model` may wait for capacity (see the module docstring)."""
        return False
