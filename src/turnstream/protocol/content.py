"""Content parts: the typed pieces inside messages and tool outputs.

User, system and developer messages hold `input_text`, `input_image` and
`input_file`; assistant messages hold `output_text` and `refusal`; reasoning items
hold `summary_text` (summary) and `reasoning_text` (content).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from turnstream.protocol._base import WireModel

__all__ = [
    "AssistantContentPart",
    "InputContentPart",
    "InputFilePart",
    "InputImagePart",
    "InputTextPart",
    "MessageContentPart",
    "OutputTextPart",
    "ReasoningTextPart",
    "RefusalPart",
    "SummaryTextPart",
]


class InputTextPart(WireModel):
    """Text written by the user, system or developer."""

    type: Literal["input_text"] = "input_text"
    text: str


class InputImagePart(WireModel):
    """An image given as a URL (or data URL) or an uploaded file id."""

    type: Literal["input_image"] = "input_image"
    image_url: str | None = None
    file_id: str | None = None
    detail: str | None = None
    """`low`, `high` or `auto`: how closely the model looks at the image."""


class InputFilePart(WireModel):
    """A file given inline (`file_data`, base64), by URL or by uploaded file id."""

    type: Literal["input_file"] = "input_file"
    file_id: str | None = None
    file_data: str | None = None
    file_url: str | None = None
    filename: str | None = None


class OutputTextPart(WireModel):
    """Text written by the model."""

    type: Literal["output_text"] = "output_text"
    text: str
    annotations: list[dict[str, Any]] = Field(default_factory=list)
    """Citations and other spans over `text` (we never produce any)."""
    logprobs: list[dict[str, Any]] = Field(default_factory=list)
    """Token log probabilities, only when `include` asked for them."""


class RefusalPart(WireModel):
    """The model's explanation of why it declined."""

    type: Literal["refusal"] = "refusal"
    refusal: str


class SummaryTextPart(WireModel):
    """One part of a reasoning item's `summary`."""

    type: Literal["summary_text"] = "summary_text"
    text: str


class ReasoningTextPart(WireModel):
    """One part of a reasoning item's raw `content`."""

    type: Literal["reasoning_text"] = "reasoning_text"
    text: str


InputContentPart = Annotated[
    InputTextPart | InputImagePart | InputFilePart, Field(discriminator="type")
]
"""A part of a user/system/developer message or of a `function_call_output`."""

AssistantContentPart = Annotated[OutputTextPart | RefusalPart, Field(discriminator="type")]
"""A part of an assistant message."""

MessageContentPart = Annotated[
    InputTextPart | InputImagePart | InputFilePart | OutputTextPart | RefusalPart,
    Field(discriminator="type"),
]
"""Any part a message may hold; `MessageItem` checks it fits the role."""
