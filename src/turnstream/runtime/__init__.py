"""The client runtime: an agent loop over the Responses API that is correct by construction.

```python
agent = Agent(client=AsyncOpenAI(), model="gpt-4.1", instructions="...", tools=[add])
async for event in agent.stream("What is 2 + 3?", conversation="conv_..."):
    ...
```
"""

from __future__ import annotations

from .agent import Agent
from .conversations import ConversationRegistry, shared_registry
from .errors import AgentError, ResponseFailedError, StreamInterruptedError, ToolDefinitionError
from .events import (
    ErrorReceived,
    RawEvent,
    RunCompleted,
    RunEvent,
    TextDelta,
    TextDone,
    ToolArgumentsDelta,
    ToolCallReady,
    ToolCallStarted,
    ToolProgress,
    ToolResult,
    TurnCompleted,
    TurnQueued,
    TurnStarted,
)
from .execution import ErrorFormatter, default_error_formatter
from .results import RunResult, TokenUsage
from .retry import RetryPolicy
from .run_stream import RunStream
from .tools import (
    Tool,
    ToolArgumentsError,
    ToolCall,
    ToolContext,
    ToolTimeoutError,
    UnknownToolError,
    tool,
)

__all__ = [
    "Agent",
    "AgentError",
    "ConversationRegistry",
    "ErrorFormatter",
    "ErrorReceived",
    "RawEvent",
    "ResponseFailedError",
    "RetryPolicy",
    "RunCompleted",
    "RunEvent",
    "RunResult",
    "RunStream",
    "StreamInterruptedError",
    "TextDelta",
    "TextDone",
    "TokenUsage",
    "Tool",
    "ToolArgumentsDelta",
    "ToolArgumentsError",
    "ToolCall",
    "ToolCallReady",
    "ToolCallStarted",
    "ToolContext",
    "ToolDefinitionError",
    "ToolProgress",
    "ToolResult",
    "ToolTimeoutError",
    "TurnCompleted",
    "TurnQueued",
    "TurnStarted",
    "UnknownToolError",
    "default_error_formatter",
    "shared_registry",
    "tool",
]


def __getattr__(name: str) -> object:
    # `Usage` was this class's name until it was told apart from the wire's `Usage`
    # (`turnstream.protocol.Usage`); old imports keep working, with a warning.
    if name == "Usage":
        import warnings

        warnings.warn(
            "turnstream.runtime.Usage is now TokenUsage", DeprecationWarning, stacklevel=2
        )
        return TokenUsage
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
