"""turnstream: streaming, tool-calling conversations over the OpenAI Responses API.

The package root re-exports the client runtime, which is what most code imports.
The names resolve lazily (PEP 562), so `import turnstream.server` loads the server
and never the runtime (DESIGN.md: the two halves meet only at the wire), and a
client that only imports the runtime never loads the web framework or the database
layer.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .runtime import (
        Agent,
        AgentError,
        ResponseFailedError,
        RetryPolicy,
        RunEvent,
        RunResult,
        RunStream,
        StreamInterruptedError,
        Tool,
        ToolContext,
        tool,
    )

try:
    __version__ = version("turnstream")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "Agent",
    "AgentError",
    "ResponseFailedError",
    "RetryPolicy",
    "RunEvent",
    "RunResult",
    "RunStream",
    "StreamInterruptedError",
    "Tool",
    "ToolContext",
    "__version__",
    "tool",
]

_RUNTIME_NAMES = frozenset(__all__) - {"__version__"}


def __getattr__(name: str) -> Any:
    if name in _RUNTIME_NAMES:
        value = getattr(importlib.import_module(".runtime", __name__), name)
        globals()[name] = value  # resolve once
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
