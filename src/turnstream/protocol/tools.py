"""Function tools and `tool_choice`, shared by requests and the Response echo."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from turnstream.protocol._base import WireModel

__all__ = [
    "AllowedToolsChoice",
    "FunctionTool",
    "FunctionToolChoice",
    "ToolChoice",
]


class FunctionTool(WireModel):
    """A function the model may call (the flat Responses shape, not Chat's nested one)."""

    type: Literal["function"] = "function"
    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9_-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    """The JSON Schema of the arguments object."""
    strict: bool | None = None
    """Whether the arguments must match `parameters` exactly."""


class FunctionToolChoice(WireModel):
    """Force a call to one named function."""

    type: Literal["function"] = "function"
    name: str


class AllowedToolsChoice(WireModel):
    """Restrict the model to a subset of `tools`."""

    type: Literal["allowed_tools"] = "allowed_tools"
    mode: Literal["none", "auto", "required"] = "auto"
    tools: list[dict[str, Any]]


ToolChoice = (
    Literal["none", "auto", "required"]
    | Annotated[FunctionToolChoice | AllowedToolsChoice, Field(discriminator="type")]
)
"""`"none"`, `"auto"`, `"required"`, or a function / allowed-tools object."""
