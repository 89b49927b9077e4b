"""Output items: what a Response's `output` list and `output_item.*` events hold.

Unlike input items, output items always carry an `id` and a `status`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    Discriminator,
    Field,
    SerializerFunctionWrapHandler,
    Tag,
    model_serializer,
)

from turnstream.protocol._base import WireModel
from turnstream.protocol.content import AssistantContentPart, ReasoningTextPart, SummaryTextPart

__all__ = [
    "GenericOutputItem",
    "ItemStatus",
    "OutputCustomToolCallItem",
    "OutputFunctionCallItem",
    "OutputItem",
    "OutputMessageItem",
    "OutputReasoningItem",
]

ItemStatus = Literal["in_progress", "completed", "incomplete"]


class OutputMessageItem(WireModel):
    """An assistant message produced by the model."""

    type: Literal["message"] = "message"
    id: str
    status: ItemStatus = "completed"
    role: Literal["assistant"] = "assistant"
    content: list[AssistantContentPart] = Field(default_factory=list)


class OutputFunctionCallItem(WireModel):
    """A function call produced by the model; the client runs it and answers."""

    type: Literal["function_call"] = "function_call"
    id: str
    """The item id (`fc_…`), used as `item_id` in argument events."""
    call_id: str
    """The id (`call_…`) a `function_call_output` must quote."""
    name: str
    arguments: str
    """The arguments as a JSON string."""
    status: ItemStatus = "completed"
    namespace: str | None = None
    """The `namespace` tool the function belongs to; left out of the JSON when absent."""

    @model_serializer(mode="wrap")
    def _omit_absent_namespace(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if data.get("namespace", ...) is None:
            del data["namespace"]
        return data


class OutputCustomToolCallItem(WireModel):
    """A call to a custom (freeform) tool; the client runs it and answers with a
    `custom_tool_call_output`."""

    type: Literal["custom_tool_call"] = "custom_tool_call"
    id: str
    call_id: str
    name: str
    input: str
    """The tool's whole input, as the model wrote it."""
    status: ItemStatus = "completed"
    namespace: str | None = None

    @model_serializer(mode="wrap")
    def _omit_absent_namespace(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if data.get("namespace", ...) is None:
            del data["namespace"]
        return data


class OutputReasoningItem(WireModel):
    """A reasoning item: a summary of the model's reasoning (and optionally its text)."""

    type: Literal["reasoning"] = "reasoning"
    id: str
    summary: list[SummaryTextPart] = Field(default_factory=list)
    content: list[ReasoningTextPart] | None = None
    """Raw reasoning text; left out of the JSON when absent."""
    encrypted_content: str | None = None
    """Opaque reasoning state; left out of the JSON when absent."""
    status: ItemStatus | None = None

    @model_serializer(mode="wrap")
    def _omit_absent_optionals(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # The spec types these as non-nullable when present, so absent means omitted.
        data: dict[str, Any] = handler(self)
        for key in ("content", "encrypted_content", "status"):
            if data.get(key, ...) is None:
                del data[key]
        return data


class GenericOutputItem(WireModel):
    """An output item of a kind we do not model (read from another server)."""

    type: str
    id: str | None = None


_KNOWN_OUTPUT_TYPES = frozenset({"message", "function_call", "custom_tool_call", "reasoning"})


def _output_item_tag(value: Any) -> str:
    tag = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    if isinstance(value, GenericOutputItem) or tag not in _KNOWN_OUTPUT_TYPES:
        return "other"
    return str(tag)


OutputItem = Annotated[
    Annotated[OutputMessageItem, Tag("message")]
    | Annotated[OutputFunctionCallItem, Tag("function_call")]
    | Annotated[OutputCustomToolCallItem, Tag("custom_tool_call")]
    | Annotated[OutputReasoningItem, Tag("reasoning")]
    | Annotated[GenericOutputItem, Tag("other")],
    Discriminator(_output_item_tag),
]
"""Any item in `Response.output`; unknown kinds are read as `GenericOutputItem`."""
