"""The Response object (`docs/protocol.md` §3) and its parts.

Serialized with `model_dump(mode="json")`, a `Response` carries every field OpenAI
sends (nulls included) and validates against the spec's `ResponseResource`. Reading
is tolerant: only `id`, `created_at` and `model` are needed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import Field

from turnstream.protocol._base import WireModel
from turnstream.protocol.outputs import OutputItem, OutputMessageItem
from turnstream.protocol.requests import ResponseCreateParams
from turnstream.protocol.tools import FunctionTool, ToolChoice

__all__ = [
    "TERMINAL_STATUSES",
    "ConversationRef",
    "IncompleteDetails",
    "InputTokensDetails",
    "OutputTokensDetails",
    "ReasoningConfig",
    "Response",
    "ResponseError",
    "ResponseStatus",
    "Usage",
]

ResponseStatus = Literal["queued", "in_progress", "completed", "failed", "incomplete", "cancelled"]
TERMINAL_STATUSES: frozenset[str] = frozenset({"completed", "failed", "incomplete", "cancelled"})
"""The statuses a response never leaves (the one definition; `TERMINAL_EVENT_TYPES`
in `protocol.events` names the events that announce them)."""


class InputTokensDetails(WireModel):
    """Breakdown of `input_tokens`."""

    cached_tokens: int = 0
    """Input tokens served from the prompt cache."""
    cache_write_tokens: int = 0
    """Input tokens written to the prompt cache."""


class OutputTokensDetails(WireModel):
    """Breakdown of `output_tokens`."""

    reasoning_tokens: int = 0


class Usage(WireModel):
    """Token counts of a finished response; `total_tokens` is input plus output."""

    input_tokens: int
    input_tokens_details: InputTokensDetails = Field(default_factory=InputTokensDetails)
    output_tokens: int
    output_tokens_details: OutputTokensDetails = Field(default_factory=OutputTokensDetails)
    total_tokens: int


class ResponseError(WireModel):
    """Why a response `failed` (`response.error`)."""

    code: str
    message: str


class IncompleteDetails(WireModel):
    """Why a response is `incomplete`: `max_output_tokens` or `content_filter`."""

    reason: str


class ConversationRef(WireModel):
    """The conversation a response belongs to."""

    id: str


class ReasoningConfig(WireModel):
    """The reasoning settings used (`effort`, `summary`)."""

    effort: str | None = None
    summary: str | None = None


def _default_text() -> dict[str, Any]:
    return {"format": {"type": "text"}}


def _text_settings(requested: dict[str, Any] | None) -> dict[str, Any]:
    # The echo must always name a format; a null `verbosity` is left out (not nullable).
    text = {k: v for k, v in (requested or {}).items() if v is not None}
    text.setdefault("format", {"type": "text"})
    if isinstance(text["format"], dict) and text["format"].get("type") == "json_schema":
        # OpenAI's echo names every field of a JSON schema format, defaults included
        text["format"] = {"description": None, "strict": False, **text["format"]}
    return text


class Response(WireModel):
    """A model response: settings echoed from the request, then status and output."""

    id: str
    object: Literal["response"] = "response"
    created_at: int
    """Unix seconds."""
    status: ResponseStatus = "in_progress"
    background: bool = False
    completed_at: int | None = None
    """Unix seconds, set when the response completed."""
    conversation: ConversationRef | None = None
    error: ResponseError | None = None
    incomplete_details: IncompleteDetails | None = None
    instructions: str | None = None
    max_output_tokens: int | None = None
    max_tool_calls: int | None = None
    model: str
    output: list[OutputItem] = Field(default_factory=list)
    parallel_tool_calls: bool = True
    previous_response_id: str | None = None
    reasoning: ReasoningConfig | None = Field(default_factory=ReasoningConfig)
    store: bool = True
    temperature: float = 1.0
    text: dict[str, Any] = Field(default_factory=_default_text)
    """Text output settings: `{"format": {"type": "text"}}` unless asked otherwise."""
    tool_choice: ToolChoice = "auto"
    tools: list[FunctionTool] = Field(default_factory=list)
    top_p: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    top_logprobs: int = 0
    truncation: Literal["auto", "disabled"] = "disabled"
    metadata: dict[str, str] = Field(default_factory=dict)
    user: str | None = None
    usage: Usage | None = None
    service_tier: str = "default"
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None

    @property
    def output_text(self) -> str:
        """The text of every `output_text` part of every message, joined."""
        return "".join(
            part.text
            for item in self.output
            if isinstance(item, OutputMessageItem)
            for part in item.content
            if part.type == "output_text"
        )

    @classmethod
    def from_params(
        cls,
        params: ResponseCreateParams,
        *,
        response_id: str,
        created_at: int,
        model: str | None = None,
        conversation_id: str | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
    ) -> Response:
        """The initial `in_progress` Response echoing a create request's settings.

        Args:
            params: The validated request.
            response_id: The new response's id (`new_id("resp")`).
            created_at: Unix seconds.
            model: The model name to report (defaults to `params.model`).
            conversation_id: The conversation, when the request used one.
            tools: The tools to echo, as the model was offered them
                (`engine.toolset`); by default the request's function tools.
            tool_choice: The `tool_choice` to echo, in the same terms as `tools`.
        """
        reasoning = params.reasoning
        return cls(
            id=response_id,
            created_at=created_at,
            status="in_progress",
            background=params.background,
            conversation=ConversationRef(id=conversation_id) if conversation_id else None,
            instructions=params.instructions,
            max_output_tokens=params.max_output_tokens,
            max_tool_calls=params.max_tool_calls,
            model=model if model is not None else params.model or "",
            parallel_tool_calls=params.parallel_tool_calls,
            previous_response_id=params.previous_response_id,
            reasoning=ReasoningConfig(
                effort=reasoning.effort if reasoning else None,
                summary=reasoning.summary if reasoning else None,
            ),
            store=params.store,
            temperature=1.0 if params.temperature is None else params.temperature,
            text=_text_settings(params.text),
            tool_choice=params.tool_choice if tool_choice is None else tool_choice,
            tools=[
                FunctionTool.model_validate(tool)
                for tool in (
                    [t for t in params.tools or () if isinstance(t, FunctionTool)]
                    if tools is None
                    else tools
                )
            ],
            top_p=1.0 if params.top_p is None else params.top_p,
            presence_penalty=params.presence_penalty or 0.0,
            frequency_penalty=params.frequency_penalty or 0.0,
            top_logprobs=params.top_logprobs or 0,
            truncation=params.truncation,
            metadata=dict(params.metadata or {}),
            user=params.user,
            service_tier=params.service_tier or "default",
            safety_identifier=params.safety_identifier,
            prompt_cache_key=params.prompt_cache_key,
        )
