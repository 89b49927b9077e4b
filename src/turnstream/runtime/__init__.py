"""The client runtime: an agent loop over the Responses API that is correct by construction.

```python
agent = Agent(client=AsyncOpenAI(), model="gpt-4.1", instructions="...", tools=[add])
async for event in agent.stream("What is 2 + 3?", conversation="conv_..."):
    ...
```
"""

from __future__ import annotations

from .agent import Agent, RunStream
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
    TurnStarted,
)
from .execution import ErrorFormatter, default_error_formatter
from .results import RunResult, Usage
from .retry import RetryPolicy
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
    "TurnStarted",
    "UnknownToolError",
    "Usage",
    "default_error_formatter",
    "shared_registry",
    "tool",
]
