"""The server side's one error root, and OpenAI's exact error bodies.

Everything the server rejects is an `APIError`; one handler at the edge renders it as

```json
{"error": {"message": "...", "type": "invalid_request_error", "param": "input", "code": null}}
```

with `status` as the HTTP status and `headers` (for example `retry-after`) added to
the response. Route, engine and storage code raise it and never build error JSON.

```
APIError(Exception)          status, type, code, param, message, headers
```

The constructors below reproduce OpenAI's messages where they are known
(`docs/protocol.md` §1.2 and §5); the others are our own wording and say so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "APIError",
    "background_requires_store",
    "conversation_locked",
    "conversation_not_found",
    "duplicate_item",
    "invalid_request",
    "item_not_found",
    "malformed_json",
    "missing_tool_output",
    "model_not_found",
    "mutually_exclusive_parameters",
    "orphan_tool_output",
    "previous_response_not_found",
    "response_not_cancellable",
    "response_not_found",
    "server_error",
    "stream_options_without_stream",
    "unknown_parameter",
]

INVALID_REQUEST = "invalid_request_error"


class APIError(Exception):
    """An error answered to the client as OpenAI's error JSON.

    Attributes:
        status: The HTTP status code.
        type: The error `type` (`invalid_request_error`, `server_error`, ...).
        message: The human-readable message, shown by the SDK as
            `Error code: <status> - <body>`.
        code: A machine-readable code (`conversation_locked`, ...) or `None`.
        param: The request parameter at fault (`input`, `metadata.key`, ...) or `None`.
        headers: Extra HTTP headers for the error response (`retry-after`, ...).
    """

    def __init__(
        self,
        status: int,
        type: str,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type
        self.message = message
        self.code = code
        self.param = param
        self.headers: dict[str, str] = dict(headers or {})

    def to_body(self) -> dict[str, Any]:
        """The JSON body: `{"error": {"message", "type", "param", "code"}}`."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def __repr__(self) -> str:
        return (
            f"APIError(status={self.status}, type={self.type!r}, code={self.code!r}, "
            f"param={self.param!r}, message={self.message!r})"
        )


def invalid_request(message: str, *, param: str | None = None, code: str | None = None) -> APIError:
    """A generic 400 `invalid_request_error`."""
    return APIError(400, INVALID_REQUEST, message, code=code, param=param)


def unknown_parameter(name: str) -> APIError:
    """400 for a top-level body key the API does not know (OpenAI's wording)."""
    return APIError(
        400,
        INVALID_REQUEST,
        f"Unknown parameter: '{name}'.",
        code="unknown_parameter",
        param=name,
    )


_JSON_HINT = (
    "This likely means you aren't using your HTTP library correctly. The OpenAI API "
    "expects a JSON payload, but what was sent was not valid JSON. If you have trouble "
    "figuring out how to fix this, please contact us through our help center at "
    "help.openai.com."
)


def malformed_json(hint: str = _JSON_HINT) -> APIError:
    """400 for a body that is not JSON (OpenAI's wording and default hint)."""
    return APIError(
        400,
        INVALID_REQUEST,
        f"We could not parse the JSON body of your request. (HINT: {hint})",
    )


def conversation_locked() -> APIError:
    """400 while another response holds the conversation (§5.1; a 400, not retried by the SDK)."""
    return APIError(
        400,
        INVALID_REQUEST,
        "Another process is currently operating on this conversation. "
        "Please retry in a few seconds.",
        code="conversation_locked",
        param="conversation",
    )


def previous_response_not_found(response_id: str) -> APIError:
    """400 for an unknown, unstored or deleted `previous_response_id` (§5.2)."""
    return APIError(
        400,
        INVALID_REQUEST,
        f"Previous response with id '{response_id}' not found.",
        code="previous_response_not_found",
        param="previous_response_id",
    )


def orphan_tool_output(call_id: str) -> APIError:
    """400 for a `function_call_output` whose `call_id` matches no earlier call (§5.3)."""
    return APIError(
        400,
        INVALID_REQUEST,
        f"No tool call found for function call output with call_id {call_id}.",
        param="input",
    )


def missing_tool_output(call_id: str) -> APIError:
    """400 naming the first `function_call` in the context without an output (§5.4)."""
    return APIError(
        400,
        INVALID_REQUEST,
        f"No tool output found for function call {call_id}.",
        param="input",
    )


def duplicate_item(item_id: str) -> APIError:
    """400 for an item id sent twice in one context (as quoted in MacPaw/OpenAI#432)."""
    return APIError(400, INVALID_REQUEST, f"Duplicate item found with id {item_id}.", param="input")


def model_not_found(model: str) -> APIError:
    """400 for a model id no provider serves (the Responses wording)."""
    return APIError(
        400,
        INVALID_REQUEST,
        f"The requested model '{model}' does not exist.",
        code="model_not_found",
        param="model",
    )


def response_not_found(response_id: str) -> APIError:
    """404 for GET/DELETE/cancel/input_items on an unknown response id."""
    return APIError(404, INVALID_REQUEST, f"Response with id '{response_id}' not found.")


def conversation_not_found(conversation_id: str) -> APIError:
    """404 for an unknown conversation (wording modelled on the response case)."""
    return APIError(404, INVALID_REQUEST, f"Conversation with id '{conversation_id}' not found.")


def item_not_found(item_id: str, *, status: int = 404, param: str | None = None) -> APIError:
    """An unknown item id: 404 on item routes, 400 (`param="input"`) for an `item_reference`."""
    return APIError(status, INVALID_REQUEST, f"Item with id '{item_id}' not found.", param=param)


def mutually_exclusive_parameters() -> APIError:
    """400 for `previous_response_id` together with `conversation` (our wording, §1.2)."""
    return APIError(
        400,
        INVALID_REQUEST,
        "Mutually exclusive parameters: Ensure you are only providing one of: "
        "'previous_response_id' or 'conversation'.",
        code="mutually_exclusive_parameters",
        param="conversation",
    )


def background_requires_store() -> APIError:
    """400 for `background: true` with `store: false` (our wording)."""
    return APIError(
        400,
        INVALID_REQUEST,
        "Background mode requires 'store' to be true.",
        param="background",
    )


def stream_options_without_stream() -> APIError:
    """400 for `stream_options` on a request that does not stream (our wording)."""
    return APIError(
        400,
        INVALID_REQUEST,
        "Invalid 'stream_options': 'stream_options' is only allowed when 'stream' is true.",
        param="stream_options",
    )


def response_not_cancellable() -> APIError:
    """400 for cancelling a response that was not created with `background: true`."""
    return APIError(
        400,
        INVALID_REQUEST,
        "Only responses created with background=true can be cancelled.",
    )


def server_error(
    message: str = "The server had an error while processing your request. Sorry about that!",
    *,
    status: int = 500,
    headers: Mapping[str, str] | None = None,
) -> APIError:
    """A 5xx `server_error` (the SDK retries these)."""
    return APIError(status, "server_error", message, code="server_error", headers=headers)
