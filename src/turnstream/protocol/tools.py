"""Tools and `tool_choice`, shared by requests and the Response echo.

A request may offer four kinds of tool (what OpenAI's current API and Codex CLI send):

- `function`: a function with a JSON Schema of arguments;
- `namespace`: a named group of functions and custom tools (Codex groups the tools
  of its MCP servers and sub-agents this way); a call carries the `namespace`;
- `custom`: a freeform tool whose input is one string, optionally in a grammar
  (Codex's `apply_patch`);
- a hosted tool (`web_search`, `file_search`, `image_generation`, ...), which runs
  on OpenAI's side; turnstream cannot run these (see `engine.toolset`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag

from turnstream.protocol._base import WireModel

__all__ = [
    "AllowedToolsChoice",
    "CustomTool",
    "CustomToolChoice",
    "FunctionTool",
    "FunctionToolChoice",
    "HostedTool",
    "NamespaceTool",
    "RequestTool",
    "ToolChoice",
]

_TOOL_NAME = r"^[a-zA-Z0-9_-]+$"


class FunctionTool(WireModel):
    """A function the model may call (the flat Responses shape, not Chat's nested one)."""

    type: Literal["function"] = "function"
    name: str = Field(min_length=1, max_length=64, pattern=_TOOL_NAME)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    """The JSON Schema of the arguments object."""
    strict: bool | None = None
    """Whether the arguments must match `parameters` exactly."""


class CustomTool(WireModel):
    """A freeform tool: the model writes one string, the `input` of its call."""

    type: Literal["custom"] = "custom"
    name: str = Field(min_length=1, max_length=64, pattern=_TOOL_NAME)
    description: str | None = None
    format: dict[str, Any] | None = None
    """`{"type": "text"}` (the default) or `{"type": "grammar", "syntax", "definition"}`."""


class NamespaceTool(WireModel):
    """Functions and custom tools grouped under a name; calls carry `namespace`."""

    type: Literal["namespace"] = "namespace"
    name: str = Field(min_length=1, max_length=64, pattern=_TOOL_NAME)
    description: str | None = None
    tools: list[
        Annotated[
            Annotated[FunctionTool, Tag("function")] | Annotated[CustomTool, Tag("custom")],
            Field(discriminator="type"),
        ]
    ]


class HostedTool(WireModel):
    """A tool that runs on the API's side (`web_search`, `file_search`, ...)."""

    type: str


def _tool_tag(value: Any) -> str:
    tag = value.get("type", "function") if isinstance(value, dict) else getattr(value, "type", None)
    return tag if tag in ("function", "custom", "namespace") else "hosted"


RequestTool = Annotated[
    Annotated[FunctionTool, Tag("function")]
    | Annotated[CustomTool, Tag("custom")]
    | Annotated[NamespaceTool, Tag("namespace")]
    | Annotated[HostedTool, Tag("hosted")],
    Discriminator(_tool_tag),
]
"""Any tool a request may offer."""


class FunctionToolChoice(WireModel):
    """Force a call to one named function."""

    type: Literal["function"] = "function"
    name: str


class CustomToolChoice(WireModel):
    """Force a call to one named custom tool."""

    type: Literal["custom"] = "custom"
    name: str


class AllowedToolsChoice(WireModel):
    """Restrict the model to a subset of `tools`."""

    type: Literal["allowed_tools"] = "allowed_tools"
    mode: Literal["none", "auto", "required"] = "auto"
    tools: list[dict[str, Any]]


ToolChoice = (
    Literal["none", "auto", "required"]
    | Annotated[
        FunctionToolChoice | CustomToolChoice | AllowedToolsChoice, Field(discriminator="type")
    ]
)
"""`"none"`, `"auto"`, `"required"`, or a function / custom / allowed-tools object."""
