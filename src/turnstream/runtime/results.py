"""What a run returns: the final text, the items it added, the tokens it used."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["RunResult", "RunStatus", "Usage"]

RunStatus = Literal["completed", "incomplete"]


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one response, or summed over a run."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    @classmethod
    def from_wire(cls, data: Any) -> Usage | None:
        """Read a Response's `usage` object; `None` when absent or malformed."""
        if not isinstance(data, dict):
            return None
        input_details = data.get("input_tokens_details") or {}
        output_details = data.get("output_tokens_details") or {}
        return cls(
            input_tokens=int(data.get("input_tokens") or 0),
            output_tokens=int(data.get("output_tokens") or 0),
            total_tokens=int(data.get("total_tokens") or 0),
            cached_tokens=int(input_details.get("cached_tokens") or 0),
            reasoning_tokens=int(output_details.get("reasoning_tokens") or 0),
        )

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.total_tokens + other.total_tokens,
            self.cached_tokens + other.cached_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
        )


@dataclass(frozen=True, slots=True)
class RunResult:
    """The outcome of `Agent.run()` / the payload of `RunCompleted`.

    Attributes:
        final_output: The text of the last response's message items.
        new_items: Every item this run added, in order: model output items and the
            `function_call_output`s the runtime sent, as wire dicts.
        usage: Token usage summed over the run's responses.
        status: `"completed"`, or `"incomplete"` when the last response was cut short
            (`max_output_tokens`, content filter).
        last_response_id: The id of the last response; pass it as
            `previous_response_id` to continue a chained run.
        conversation: The conversation id, in conversation mode.
        turns: How many model responses the run took.
        history: In local replay mode (`store=False`), the whole context so far, ready
            to pass as `history=` to the next run; empty otherwise.
    """

    final_output: str
    new_items: list[dict[str, Any]]
    usage: Usage
    status: RunStatus
    last_response_id: str | None
    conversation: str | None
    turns: int
    history: list[dict[str, Any]] = field(default_factory=list)
