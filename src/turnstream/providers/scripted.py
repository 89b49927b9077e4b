"""The `scripted` model: tests decide exactly what the model streams.

A `ScriptedProvider` holds a queue of scripts. Each `stream()` call takes the next
script and plays it step by step:

- a `Delta` is yielded as is (split text or arguments at awkward places at will);
- `Sleep(seconds)` pauses, so a test can disconnect or race mid-stream;
- `Raise(error)` raises, typically a `ProviderError`, as a mid-stream failure;
- a callable gets the `GenerationRequest` and may return `None`, a delta, an iterable
  of deltas, or an awaitable of any of these (await an `asyncio.Event` to hold the
  stream open until the test says so).

A script may also be a `ProviderError` on its own: `stream()` then fails before the
first delta, the way an upstream 429 does. When the queue is empty the provider falls
back to the echo model's rules (`turnstream.providers.echo`), so a test only scripts
the turns it cares about. Every request is recorded in `.requests`, in call order.
"""

from __future__ import annotations

import asyncio
import inspect
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

from turnstream.engine.deltas import (
    Delta,
    FinishDelta,
    ItemEndDelta,
    OutputTextDelta,
    QueuedDelta,
    ReasoningDelta,
    StartedDelta,
    ToolCallDelta,
    UsageDelta,
)
from turnstream.providers.base import GenerationRequest, Provider, ProviderError
from turnstream.providers.echo import echo_deltas

__all__ = ["Raise", "Script", "ScriptStep", "ScriptedProvider", "Sleep"]

_DELTA_TYPES = (
    OutputTextDelta,
    ReasoningDelta,
    ToolCallDelta,
    ItemEndDelta,
    UsageDelta,
    FinishDelta,
    QueuedDelta,
    StartedDelta,
)


@dataclass(frozen=True, slots=True)
class Sleep:
    """A script step that pauses the stream for `seconds`."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Raise:
    """A script step that fails the stream with `error` (a mid-stream failure)."""

    error: BaseException


StepResult = Delta | Iterable[Delta] | None
ScriptStep = (
    Delta | Sleep | Raise | Callable[[GenerationRequest], StepResult | Awaitable[StepResult]]
)
Script = Sequence[ScriptStep] | ProviderError
"""A list of steps, or a `ProviderError` that fails the stream before any delta."""


class ScriptedProvider(Provider):
    """A provider that plays queued scripts, then falls back to echo.

    Args:
        models: The public model names to answer for.
    """

    def __init__(self, models: Sequence[str] = ("scripted",)) -> None:
        self._models = tuple(models)
        self._scripts: deque[Script] = deque()
        self.requests: list[GenerationRequest] = []
        """Every request received, in call order."""

    def models(self) -> Sequence[str]:
        return self._models

    def push(self, *scripts: Script) -> None:
        """Queue scripts; each `stream()` call consumes one."""
        self._scripts.extend(scripts)

    @property
    def pending(self) -> int:
        """How many queued scripts have not been played yet."""
        return len(self._scripts)

    def stream(self, request: GenerationRequest) -> AsyncGenerator[Delta, None]:
        # Record and dequeue at call time (not at first iteration), so the pairing of
        # requests and scripts follows call order even if iteration is delayed.
        self.requests.append(request)
        script: Script = self._scripts.popleft() if self._scripts else echo_deltas(request)
        return _play(script, request)

    async def aclose(self) -> None:
        self._scripts.clear()


async def _play(script: Script, request: GenerationRequest) -> AsyncGenerator[Delta, None]:
    if isinstance(script, ProviderError):
        raise script
    for step in script:
        if isinstance(step, _DELTA_TYPES):
            yield step
        elif isinstance(step, Sleep):
            await asyncio.sleep(step.seconds)
        elif isinstance(step, Raise):
            raise step.error
        else:
            result = step(request)
            if inspect.isawaitable(result):
                result = await result
            if result is None:
                continue
            if isinstance(result, _DELTA_TYPES):
                yield result
            else:
                for delta in result:
                    yield delta
