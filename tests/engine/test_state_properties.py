"""Property: ANY delta sequence gives a stream that keeps invariant 1 and loses nothing.

Random mixes of text, reasoning and (interleaved) tool-call deltas, split at random
points, with ItemEnd hints, usage, finish reasons, and an end by finish, failure or
cancellation; queued/started signals anywhere, with `in_progress` held for them or
not. Every stream must pass `check_stream` (order, sequence numbers, ids,
spec validity, the SDK's accumulator), and the final output must hold exactly the
text, reasoning and arguments that were fed, in order.
"""

from __future__ import annotations

import re
from collections import defaultdict
from itertools import count
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.engine.checks import check_stream, wire_round_trip
from turnstream.engine import (
    Delta,
    FinishDelta,
    ItemEndDelta,
    OutputTextDelta,
    QueuedDelta,
    ReasoningDelta,
    ResponseStateMachine,
    StartedDelta,
    ToolCallDelta,
    UsageDelta,
)
from turnstream.protocol import StreamEvent

_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=6)

_op = st.one_of(
    st.tuples(st.just("text"), _text),
    st.tuples(st.just("reasoning"), _text),
    st.tuples(
        st.just("call"),
        st.integers(0, 3),
        st.booleans(),  # carries a name
        st.sampled_from([None, None, "call_x", "call_y"]),  # provider call_id (may repeat)
        st.booleans(),  # carries an arguments piece
    ),
    st.tuples(st.just("end")),
    st.tuples(st.just("usage"), st.integers(0, 10_000), st.integers(0, 10_000)),
    st.tuples(st.just("finish"), st.sampled_from(["stop", "length", "content_filter"])),
    st.tuples(st.just("queued")),
    st.tuples(st.just("started")),
)

_ARG = re.compile(r"<(\d+):(\d+)>")


def _deltas(ops: list[tuple[Any, ...]]) -> tuple[list[Delta], dict[int, list[int]]]:
    """Turn drawn ops into deltas; argument pieces are tagged `<index:n>` to track them."""
    pieces: dict[int, list[int]] = defaultdict(list)
    deltas: list[Delta] = []
    for op in ops:
        kind = op[0]
        if kind == "text":
            deltas.append(OutputTextDelta(op[1]))
        elif kind == "reasoning":
            deltas.append(ReasoningDelta(op[1]))
        elif kind == "call":
            _, index, named, call_id, has_args = op
            arguments = ""
            if has_args:
                number = len(pieces[index])
                pieces[index].append(number)
                arguments = f"<{index}:{number}>"
            name = f"tool{index}" if named else None
            deltas.append(ToolCallDelta(index, name=name, call_id=call_id, arguments=arguments))
        elif kind == "end":
            deltas.append(ItemEndDelta())
        elif kind == "usage":
            deltas.append(UsageDelta(op[1], op[2]))
        elif kind == "queued":
            deltas.append(QueuedDelta())
        elif kind == "started":
            deltas.append(StartedDelta())
        else:
            deltas.append(FinishDelta(op[1]))
    return deltas, pieces


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=st.lists(_op, max_size=40),
    end=st.sampled_from(["finish", "finish", "fail", "cancel"]),
    background=st.booleans(),
    hold=st.booleans(),
)
def test_any_delta_sequence_yields_a_valid_stream_that_keeps_every_delta(
    ops: list[tuple[Any, ...]], end: str, background: bool, hold: bool
) -> None:
    deltas, pieces = _deltas(ops)
    counter = count()
    machine = ResponseStateMachine(
        {"id": "resp_p", "created_at": 1, "model": "m", "background": background},
        clock=lambda: 5.0,
        id_factory=lambda prefix: f"{prefix}_{next(counter)}",
    )
    events: list[StreamEvent] = list(machine.start(hold=hold))
    for delta in deltas:
        events += machine.feed(delta)
    if end == "finish":
        events += machine.finish()
    elif end == "fail":
        events += machine.fail("server_error", "midway")
    else:
        events += machine.cancel()

    final = check_stream(wire_round_trip(events))
    lifecycle = [e.type for e in events if e.type in ("response.queued", "response.in_progress")]
    queued_first = hold and isinstance(next(iter(deltas), None), QueuedDelta)
    assert lifecycle.count("response.queued") == int(background or queued_first)
    assert lifecycle.count("response.in_progress") == 1
    assert machine.response.model_dump(mode="json") == final

    # Text and reasoning: every piece, in order, nothing else.
    output = final["output"]
    texts = [p["text"] for i in output if i["type"] == "message" for p in i["content"]]
    assert "".join(texts) == "".join(d.text for d in deltas if isinstance(d, OutputTextDelta))
    summaries = [p["text"] for i in output if i["type"] == "reasoning" for p in i["summary"]]
    assert "".join(summaries) == "".join(d.text for d in deltas if isinstance(d, ReasoningDelta))

    # Arguments: each call holds pieces of one provider index; per index, in order, all.
    seen: dict[int, list[int]] = defaultdict(list)
    for item in output:
        if item["type"] != "function_call":
            continue
        tags = [(int(a), int(b)) for a, b in _ARG.findall(item["arguments"])]
        assert "".join(f"<{a}:{b}>" for a, b in tags) == item["arguments"]
        indexes = {a for a, _ in tags}
        assert len(indexes) <= 1, "a call mixed the arguments of two provider indexes"
        for index, number in tags:
            seen[index].append(number)
        if indexes and item["name"]:
            assert item["name"] == f"tool{indexes.pop()}"
    assert dict(seen) == {k: v for k, v in pieces.items() if v}

    # Terminal choice and usage.
    finishes = [d.reason for d in deltas if isinstance(d, FinishDelta)]
    if end == "fail":
        assert final["status"] == "failed"
    elif end == "cancel":
        assert final["status"] == "cancelled"
    elif finishes and finishes[-1] != "stop":
        reason = {"length": "max_output_tokens", "content_filter": "content_filter"}
        assert final["incomplete_details"] == {"reason": reason[finishes[-1]]}
    else:
        assert final["status"] == "completed"
        assert all(item["status"] == "completed" for item in output)
    usages = [d for d in deltas if isinstance(d, UsageDelta)]
    if usages:
        last = usages[-1]
        assert final["usage"]["total_tokens"] == last.input_tokens + last.output_tokens
    else:
        assert final["usage"] is None
