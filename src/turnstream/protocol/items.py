"""Input items: what a request's `input` list (and a conversation) holds.

`InputItem` is tagged by `type`, with two wire shortcuts: a bare "easy" message
(`{"role": "user", "content": "hi"}`, no `type`) and an `item_reference` whose `type`
may be left out. `normalize_input` turns any accepted input into canonical wire
dicts, the form the engine, storage and providers work with.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, Discriminator, Field, Tag, model_validator

from turnstream.protocol._base import WireModel
from turnstream.protocol.content import InputContentPart, MessageContentPart, SummaryTextPart

__all__ = [
    "PASSIVE_ITEM_TYPES",
    "CustomToolCallItem",
    "CustomToolCallOutputItem",
    "FunctionCallItem",
    "FunctionCallOutputItem",
    "InputItem",
    "ItemReferenceItem",
    "MessageItem",
    "PassiveItem",
    "ReasoningItem",
    "normalize_input",
]

Role = Literal["user", "assistant", "system", "developer"]
_ASSISTANT_PARTS = frozenset({"output_text", "refusal"})
_INPUT_PARTS = frozenset({"input_text", "input_image", "input_file"})


class MessageItem(WireModel):
    """A message from any role; `content` is a string or a list of parts."""

    type: Literal["message"] = "message"
    role: Role
    content: str | list[MessageContentPart]
    id: str | None = None
    status: str | None = None

    @model_validator(mode="after")
    def _parts_fit_the_role(self) -> MessageItem:
        if isinstance(self.content, str):
            return self
        allowed = _ASSISTANT_PARTS if self.role == "assistant" else _INPUT_PARTS
        for part in self.content:
            if part.type not in allowed:
                supported = " and ".join(f"'{name}'" for name in sorted(allowed))
                raise ValueError(
                    f"Invalid value: '{part.type}'. Supported values for role "
                    f"'{self.role}' are: {supported}."
                )
        return self


class FunctionCallItem(WireModel):
    """A function call the model made, replayed as input."""

    type: Literal["function_call"] = "function_call"
    call_id: str = Field(min_length=1)
    """Joins the call to its `function_call_output` (not the item `id`)."""
    name: str
    arguments: str
    """The arguments as a JSON string."""
    namespace: str | None = None
    """The `namespace` tool the function belongs to, if any."""
    id: str | None = None
    status: str | None = None


class CustomToolCallItem(WireModel):
    """A call to a custom (freeform) tool, replayed as input."""

    type: Literal["custom_tool_call"] = "custom_tool_call"
    call_id: str = Field(min_length=1)
    name: str
    input: str
    """The tool's whole input, as the model wrote it."""
    namespace: str | None = None
    id: str | None = None
    status: str | None = None


class CustomToolCallOutputItem(WireModel):
    """The result of running a custom tool call."""

    type: Literal["custom_tool_call_output"] = "custom_tool_call_output"
    call_id: str = Field(min_length=1)
    output: str | list[InputContentPart]
    id: str | None = None
    status: str | None = None


PassiveItemType = Literal[
    "web_search_call",
    "file_search_call",
    "image_generation_call",
    "code_interpreter_call",
    "tool_search_call",
    "tool_search_output",
    "local_shell_call",
    "local_shell_call_output",
]
PASSIVE_ITEM_TYPES: tuple[str, ...] = get_args(PassiveItemType)
"""Item kinds OpenAI's hosted tools produce, which clients such as Codex CLI send
back in their history. They are accepted and kept, but no model here can use them.
(`compaction` is not one of them: this server makes and opens its own, and refuses
any other; see `server/compaction.py`.)"""


class PassiveItem(WireModel):
    """An item of one of `PASSIVE_ITEM_TYPES`, kept as sent."""

    type: PassiveItemType
    id: str | None = None


class FunctionCallOutputItem(WireModel):
    """The result of running a function call, sent back to the model."""

    type: Literal["function_call_output"] = "function_call_output"
    call_id: str = Field(min_length=1)
    """The `call_id` of the `function_call` this answers."""
    output: str | list[InputContentPart]
    id: str | None = None
    status: str | None = None


class ReasoningItem(WireModel):
    """A reasoning item replayed as input (stateless mode)."""

    type: Literal["reasoning"] = "reasoning"
    summary: list[SummaryTextPart] = Field(default_factory=list)
    id: str | None = None
    encrypted_content: str | None = None
    """Opaque reasoning state returned when `include` asked for it."""
    content: list[dict[str, Any]] | None = None
    status: str | None = None


class CompactionItem(WireModel):
    """An opaque summary of earlier context, made by `POST /v1/responses/compact`.

    Only the server that sealed `encrypted_content` can read it; it expands the
    item back into the context it stands for."""

    type: Literal["compaction"] = "compaction"
    id: str | None = None
    encrypted_content: str


class ItemReferenceItem(WireModel):
    """A reference to a stored item by id, resolved by the server."""

    type: Literal["item_reference"] | None = "item_reference"
    id: str


def _input_item_tag(value: Any) -> str | None:
    if isinstance(value, Mapping):
        tag = value.get("type")
        if tag is None:
            # The two wire shortcuts: a bare message, or a bare {"id": ...} reference.
            return "message" if "role" in value else "item_reference"
        if tag in PASSIVE_ITEM_TYPES:
            return "passive"
        return tag if isinstance(tag, str) else None
    tag = getattr(value, "type", None)
    if tag in PASSIVE_ITEM_TYPES:
        return "passive"
    return "item_reference" if tag is None and isinstance(value, ItemReferenceItem) else tag


InputItem = Annotated[
    Annotated[MessageItem, Tag("message")]
    | Annotated[FunctionCallItem, Tag("function_call")]
    | Annotated[FunctionCallOutputItem, Tag("function_call_output")]
    | Annotated[CustomToolCallItem, Tag("custom_tool_call")]
    | Annotated[CustomToolCallOutputItem, Tag("custom_tool_call_output")]
    | Annotated[ReasoningItem, Tag("reasoning")]
    | Annotated[ItemReferenceItem, Tag("item_reference")]
    | Annotated[PassiveItem, Tag("passive")]
    | Annotated[CompactionItem, Tag("compaction")],
    Discriminator(
        _input_item_tag,
        custom_error_type="invalid_value",
        custom_error_message=(
            "Invalid value for 'type': expected one of 'message', 'function_call', "
            "'function_call_output', 'custom_tool_call', 'custom_tool_call_output', "
            "'reasoning', 'item_reference', 'compaction' or an item of a hosted tool."
        ),
    ),
]
"""Any item accepted in `input`."""


def normalize_input(input: str | Sequence[Mapping[str, Any] | BaseModel]) -> list[dict[str, Any]]:
    """Canonical wire dicts for a request's `input`.

    A string becomes one user message. Every message gets `type: "message"` and
    content as a list of parts (a string content becomes one `input_text` part, or one
    `output_text` part for the assistant); a bare reference gets
    `type: "item_reference"`. Fields that are `None` are dropped. Ids are not assigned.

    Args:
        input: The request's `input`: a string, validated `InputItem` models, or
            already-valid dicts.
    """
    if isinstance(input, str):
        return [_user_message(input)]
    return [_normalize_item(item) for item in input]


def _user_message(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def _normalize_item(item: Mapping[str, Any] | BaseModel) -> dict[str, Any]:
    if isinstance(item, BaseModel):
        data = item.model_dump(exclude_none=True)
    else:
        data = {key: value for key, value in item.items() if value is not None}
    kind = data.get("type")
    if kind is None:
        kind = data["type"] = "message" if "role" in data else "item_reference"
    if kind == "message":
        content = data.get("content")
        if isinstance(content, str):
            if data.get("role") == "assistant":
                data["content"] = [
                    {"type": "output_text", "text": content, "annotations": [], "logprobs": []}
                ]
            else:
                data["content"] = [{"type": "input_text", "text": content}]
    return data
