"""The runtime's exceptions.

```
AgentError                      root of everything the runtime itself raises
├── ResponseFailedError         a response ended with `response.failed`
├── StreamInterruptedError      the body broke off after events had been shown
└── ToolDefinitionError         a `@tool` function cannot be described as a tool
```

HTTP errors before a stream starts are the `openai` SDK's own types
(`openai.RateLimitError`, `openai.BadRequestError` with `.code`, ...), raised once the
`RetryPolicy` gives up, so callers keep the status code, body and headers.
Tool failures are never raised: they become the call's `function_call_output`.
"""

from __future__ import annotations

__all__ = [
    "AgentError",
    "ResponseFailedError",
    "StreamInterruptedError",
    "ToolDefinitionError",
]


class AgentError(Exception):
    """Root of the runtime's own exceptions."""


class ResponseFailedError(AgentError):
    """The server ended a response with `response.failed`."""

    def __init__(self, response_id: str, code: str | None, message: str) -> None:
        super().__init__(f"response {response_id} failed: {code or 'error'}: {message}")
        self.response_id = response_id
        self.code = code
        self.message = message


class StreamInterruptedError(AgentError):
    """A streamed body ended early (connection lost, no terminal event).

    Raised only once events of that response were received: the model's output was
    partly shown, so a silent retry would show it twice. Failures before any event
    are retried under the `RetryPolicy` instead.
    """


class ToolDefinitionError(AgentError, TypeError):
    """A function cannot be turned into a tool (e.g. an untyped parameter)."""
