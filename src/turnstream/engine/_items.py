"""Bookkeeping for the state machine's items (internal to `engine.state`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from turnstream.engine.toolset import Toolset
from turnstream.protocol.content import OutputTextPart, SummaryTextPart
from turnstream.protocol.outputs import (
    ItemStatus,
    OutputCustomToolCallItem,
    OutputFunctionCallItem,
    OutputItem,
    OutputMessageItem,
    OutputReasoningItem,
)

__all__ = ["OpenItem", "PendingCall", "output_item"]


class OpenItem:
    """An announced output item that is still receiving deltas."""

    __slots__ = ("call_id", "id", "index", "kind", "name", "output_index", "pieces")

    def __init__(
        self,
        kind: Literal["text", "reasoning", "call"],
        item_id: str,
        output_index: int,
        *,
        index: int = -1,
        name: str = "",
        call_id: str = "",
        pieces: list[str] | None = None,
    ) -> None:
        self.kind = kind
        self.id = item_id
        self.output_index = output_index
        self.index = index
        self.name = name
        self.call_id = call_id
        self.pieces: list[str] = pieces if pieces is not None else []


class PendingCall:
    """A tool call seen from the provider but not yet announced on the wire."""

    __slots__ = ("call_id", "index", "name", "pieces")

    def __init__(self, index: int) -> None:
        self.index = index
        self.name: str | None = None
        self.call_id: str | None = None
        self.pieces: list[str] = []


def output_item(
    item: OpenItem,
    status: ItemStatus,
    text: str | None = None,
    *,
    tools: Toolset | None = None,
    seal: Callable[[str], str] | None = None,
) -> OutputItem:
    """The wire item for an open item, with the given status.

    `tools` maps a call's model-facing name back to the request's tool (a namespaced
    function, a custom tool); `seal` makes a closed reasoning item's
    `encrypted_content` from its text.
    """
    if text is None:
        text = "".join(item.pieces)
    if item.kind == "text":
        return OutputMessageItem(id=item.id, status=status, content=[OutputTextPart(text=text)])
    if item.kind == "reasoning":
        encrypted = seal(text) if seal is not None and status != "in_progress" else None
        return OutputReasoningItem(
            id=item.id,
            summary=[SummaryTextPart(text=text)],
            status=status,
            encrypted_content=encrypted,
        )
    if tools is None:
        return OutputFunctionCallItem(
            id=item.id, call_id=item.call_id, name=item.name, arguments=text, status=status
        )
    fields = tools.call_item(item.name, text)
    if fields.pop("type") == "custom_tool_call":
        return OutputCustomToolCallItem(id=item.id, call_id=item.call_id, status=status, **fields)
    return OutputFunctionCallItem(id=item.id, call_id=item.call_id, status=status, **fields)
