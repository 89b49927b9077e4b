"""turnstream: streaming, tool-calling conversations over the OpenAI Responses API.

The package root re-exports the client runtime, which is what most code imports.
The server lives in `turnstream.server` (`create_app(settings)`) and is imported
only when used, so a client never loads the web framework or the database layer.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

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
