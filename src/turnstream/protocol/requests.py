"""The `POST /v1/responses` body, validated strictly.

`parse_create_params` is the single entry: it turns a decoded JSON body into
`ResponseCreateParams` or raises `APIError` 400 with OpenAI's wording and the failing
parameter's path in `param` (`input[0].content`, `metadata`, ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from turnstream.protocol._base import WireModel
from turnstream.protocol.errors import (
    APIError,
    background_requires_store,
    invalid_request,
    mutually_exclusive_parameters,
    stream_options_without_stream,
    unknown_parameter,
)
from turnstream.protocol.items import InputItem
from turnstream.protocol.tools import RequestTool, ToolChoice

__all__ = [
    "ConversationParam",
    "Metadata",
    "ReasoningParams",
    "ResponseCreateParams",
    "StreamOptionsParams",
    "parse_body",
    "parse_create_params",
]

METADATA_MAX_PAIRS = 16
METADATA_MAX_KEY = 64
METADATA_MAX_VALUE = 512


def _check_metadata(value: dict[str, str]) -> dict[str, str]:
    if len(value) > METADATA_MAX_PAIRS:
        raise PydanticCustomError(
            "metadata_limits",
            "too many properties. Expected an object with at most {limit} properties, "
            "but got an object with {count} properties instead.",
            {"limit": METADATA_MAX_PAIRS, "count": len(value)},
        )
    for key, item in value.items():
        if len(key) > METADATA_MAX_KEY:
            raise PydanticCustomError(
                "metadata_limits",
                "key {key!r} is too long. Expected keys of at most {limit} characters.",
                {"key": key[:20] + "…", "limit": METADATA_MAX_KEY},
            )
        if len(item) > METADATA_MAX_VALUE:
            raise PydanticCustomError(
                "metadata_limits",
                "the value of {key!r} is too long. Expected values of at most {limit} characters.",
                {"key": key, "limit": METADATA_MAX_VALUE},
            )
    return value


Metadata = Annotated[dict[str, str], AfterValidator(_check_metadata)]
"""Up to 16 string pairs; keys up to 64 characters, values up to 512 (OpenAI's limits)."""

# An explicit null for these means "use the default", as the API treats it.
_NULL_MEANS_DEFAULT = (
    "tool_choice",
    "parallel_tool_calls",
    "store",
    "stream",
    "background",
    "truncation",
)


class ConversationParam(WireModel):
    """The object form of `conversation`: `{"id": "conv_…"}`."""

    id: str


class StreamOptionsParams(WireModel):
    """`stream_options`; only valid together with `stream: true`."""

    include_obfuscation: bool | None = None
    """Pad delta events with an `obfuscation` string (we accept it and send none)."""


class ReasoningParams(WireModel):
    """`reasoning`: effort and summary settings for reasoning models."""

    effort: str | None = None
    summary: str | None = None


class ResponseCreateParams(BaseModel):
    """Every field of the create body (`docs/protocol.md` §1). Unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    input: str | list[InputItem] | None = None
    """A string (one user message) or a list of input items."""
    instructions: str | None = None
    """A system/developer message for this request only; never carried over."""
    tools: list[RequestTool] | None = None
    """Functions, namespaces, custom tools and hosted tools (`protocol.tools`)."""
    tool_choice: ToolChoice = "auto"
    parallel_tool_calls: bool = True
    max_tool_calls: int | None = Field(default=None, ge=1)
    previous_response_id: str | None = None
    conversation: str | ConversationParam | None = None
    """`"conv_…"` or `{"id": "conv_…"}`; exclusive with `previous_response_id`."""
    store: bool = True
    stream: bool = False
    background: bool = False
    include: list[str] | None = None
    truncation: Literal["auto", "disabled"] = "disabled"
    max_output_tokens: int | None = Field(default=None, ge=1)
    """Cap on visible plus reasoning tokens. OpenAI's minimum is 16; clients probe
    with 1 (Codex CLI does), which is no reason to refuse them."""
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    metadata: Metadata | None = None
    stream_options: StreamOptionsParams | None = None
    reasoning: ReasoningParams | None = None
    text: dict[str, Any] | None = None
    """Text output settings: `format` (text / json_object / json_schema), `verbosity`."""
    prompt: dict[str, Any] | None = None
    """A stored prompt template reference (accepted, not interpreted)."""
    prompt_cache_key: str | None = Field(default=None, max_length=64)
    safety_identifier: str | None = Field(default=None, max_length=64)
    service_tier: Literal["auto", "default", "flex", "scale", "priority"] | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    user: str | None = None
    # Accepted, as OpenAI accepts them, but without effect here: they tune OpenAI's
    # own infrastructure (caching, moderation, programmatic tool callers, context
    # management) or label the request for the client's own bookkeeping.
    client_metadata: dict[str, Any] | None = None
    """Free-form labels from the client (Codex CLI sends its thread and turn ids)."""
    prompt_cache_retention: str | None = None
    prompt_cache_options: dict[str, Any] | None = None
    context_management: list[dict[str, Any]] | dict[str, Any] | None = None
    background_options: dict[str, Any] | None = None
    moderation: Any = None
    access_programs: Any = None
    image: Any = None

    @model_validator(mode="before")
    @classmethod
    def _null_means_default(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and any(data.get(k, ...) is None for k in _NULL_MEANS_DEFAULT):
            return {k: v for k, v in data.items() if not (v is None and k in _NULL_MEANS_DEFAULT)}
        return data

    @property
    def text_format(self) -> dict[str, Any] | None:
        """`text.format` when it asks for JSON (`json_schema` or `json_object`)."""
        text_format = (self.text or {}).get("format")
        if isinstance(text_format, dict) and text_format.get("type") in (
            "json_schema",
            "json_object",
        ):
            return text_format
        return None

    @property
    def conversation_id(self) -> str | None:
        """The conversation id, whichever form `conversation` was given in."""
        if isinstance(self.conversation, ConversationParam):
            return self.conversation.id
        return self.conversation


def parse_create_params(body: Any) -> ResponseCreateParams:
    """Validate a decoded `POST /v1/responses` body.

    Args:
        body: The decoded JSON body.

    Raises:
        APIError: 400 `invalid_request_error`: `code="unknown_parameter"` naming the
            first unknown top-level key; otherwise `param` is the failing field's
            path in OpenAI's notation (`input[0].content[1].type`). Also for the
            invalid combinations of §1.2 (`previous_response_id` with
            `conversation`, `background` without `store`, `stream_options` without
            `stream`).
    """
    params = parse_body(ResponseCreateParams, body)
    if params.previous_response_id is not None and params.conversation is not None:
        raise mutually_exclusive_parameters()
    if params.background and not params.store:
        raise background_requires_store()
    if params.stream_options is not None and not params.stream:
        raise stream_options_without_stream()
    return params


ModelT = TypeVar("ModelT", bound=BaseModel)


def parse_body(model: type[ModelT], body: Any) -> ModelT:
    """Validate a decoded request body against `model`, OpenAI-style.

    Raises:
        APIError: 400 `unknown_parameter` naming the first unknown top-level key, or
            400 with `param` set to the failing field's path.
    """
    if not isinstance(body, Mapping):
        raise invalid_request("Invalid body: expected a JSON object.")
    for key in body:
        if key not in model.model_fields:
            raise unknown_parameter(str(key))
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise _to_api_error(exc, body) from None


def _to_api_error(exc: ValidationError, body: Mapping[str, Any]) -> APIError:
    # A union reports one error per member; the deepest path is the most specific.
    best: tuple[int, str, ErrorDetails] | None = None
    for error in exc.errors():
        param, depth = _param_path(error, body)
        if best is None or depth > best[0]:
            best = (depth, param, error)
    assert best is not None  # a ValidationError always carries an error
    _, param, error = best
    if error["type"] == "missing":
        return invalid_request(f"Missing required parameter: '{param}'.", param=param)
    context = error.get("ctx") or {}
    detail = str(context["error"]) if error["type"] == "value_error" else error["msg"]
    if not detail.endswith("."):
        detail += "."
    return invalid_request(f"Invalid '{param}': {detail}", param=param)


def _param_path(error: ErrorDetails, body: Mapping[str, Any]) -> tuple[str, int]:
    """Map pydantic's location onto the body, skipping union-member labels."""
    path = ""
    depth = 0
    node: Any = body
    loc = error["loc"]
    for position, segment in enumerate(loc):
        if isinstance(segment, int) and isinstance(node, list) and 0 <= segment < len(node):
            path += f"[{segment}]"
            node = node[segment]
        elif isinstance(segment, str) and isinstance(node, Mapping) and segment in node:
            path += f".{segment}" if path else segment
            node = node[segment]
        elif position == len(loc) - 1 and error["type"] == "missing":
            path += f".{segment}" if path else str(segment)
        else:
            continue
        depth += 1
    return path, depth
