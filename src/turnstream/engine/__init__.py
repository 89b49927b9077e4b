"""The pure domain: the response state machine, context assembly, tool pairing.

No HTTP, no SQL, no event loop: provider deltas in (`engine.deltas`), wire events
and validated contexts out.
"""

from turnstream.engine.context import (
    ItemLookup,
    Turn,
    assemble_chain,
    assemble_conversation,
    resolve_references,
)
from turnstream.engine.deltas import (
    Delta,
    FinishDelta,
    ItemEndDelta,
    OutputTextDelta,
    QueuedDelta,
    ReasoningDelta,
    StartedDelta,
    ToolCallDelta,
    UsageDelta,
)
from turnstream.engine.pairing import check_duplicate_ids, check_tool_pairing, validate_context
from turnstream.engine.state import ResponseStateError, ResponseStateMachine

__all__ = [
    "Delta",
    "FinishDelta",
    "ItemEndDelta",
    "ItemLookup",
    "OutputTextDelta",
    "QueuedDelta",
    "ReasoningDelta",
    "ResponseStateError",
    "ResponseStateMachine",
    "StartedDelta",
    "ToolCallDelta",
    "Turn",
    "UsageDelta",
    "assemble_chain",
    "assemble_conversation",
    "check_duplicate_ids",
    "check_tool_pairing",
    "resolve_references",
    "validate_context",
]
