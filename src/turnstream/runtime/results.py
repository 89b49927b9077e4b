"""What a run returns: the final text, the items it added, the tokens it used."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import pydantic

from turnstream.protocol.responses import Usage as WireUsage

__all__ = ["RunResult", "RunStatus", "TokenUsage"]

RunStatus = Literal["completed", "incomplete"]


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Token counts of one response, or summed over a run.

    A flat, addable view of the wire's `usage` object (`turnstream.protocol.Usage`),
    which is what it is read from.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    @classmethod
    def from_wire(cls, data: Any) -> TokenUsage | None:
        """Read a Response's `usage` object; `None` when absent or malformed."""
        if not isinstance(data, dict):
            return None
        # some servers send `null` for a breakdown they do not have
        present = {key: value for key, value in data.items() if value is not None}
        try:
            usage = WireUsage.model_validate(present)
        except pydantic.ValidationError:
            return None
        return cls(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            total_tokens=usage.total_tokens,
            cached_tokens=usage.input_tokens_details.cached_tokens,
            reasoning_tokens=usage.output_tokens_details.reasoning_tokens,
        )

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
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
            (`max_output_tokens`, content filter) or the turn limit left calls unrun.
        last_response_id: The id of the last response; pass it as
            `previous_response_id` to continue a chained run.
        conversation: The conversation id, in conversation mode.
        turns: How many model responses the run took.
        history: In local replay mode (`store=False`), the whole context so far, ready
            to pass as `history=` to the next run; empty otherwise.
    """

    final_output: str
    new_items: list[dict[str, Any]]
    usage: TokenUsage
    status: RunStatus
    last_response_id: str | None
    conversation: str | None
    turns: int
    history: list[dict[str, Any]] = field(default_factory=list)
