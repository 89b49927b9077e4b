"""Property tests of DESIGN.md invariant 5 on `ToolLoop`: every call gets exactly one output.

Hypothesis plays several runs on one history against a simulated server that checks
tool pairing the way OpenAI does: every request's context (what the server holds
plus the request's input) must give each function call exactly one output, after the
call, and no output may lack its call. The model calls tools or not, responses
complete, end incomplete or fail, the driver hands over missing, duplicated or stray
outputs, and runs are cut off at any point (mid-stream, while tools run, between
turns). A run cut off mid-stream finds the server in either state a real one can be
in: it kept the turn (it persists before it announces) or dropped it (the disconnect
cancelled it); the next run settles that doubt by asking it. A last run must still be
accepted, and leave every call answered once.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Literal

from hypothesis import given, settings
from hypothesis import strategies as st

from turnstream.runtime.conversations import ConversationRegistry
from turnstream.runtime.history import (
    LocalReplay,
    Question,
    ReadConversation,
    ResponseChain,
    ServerConversation,
    StateMode,
)
from turnstream.runtime.loop import Failed, Finish, RequestTemplate, RunTools, ToolLoop
from turnstream.runtime.results import RunResult
from turnstream.runtime.tools import ToolCall
from turnstream.runtime.turn import EndStatus, TurnOutcome

Item = dict[str, Any]
ModeName = Literal["conversation", "chain", "local"]
StopAt = Literal["streaming", "kept", "answering", "ready"]
"""Where a run is cut off: mid-stream with the turn dropped by the server, or `kept`
(stored, its end never read); after a response with calls; after their outputs."""
Handover = Literal["once", "twice", "missing"]

TEMPLATE = RequestTemplate("m", tools=[{"type": "function", "name": "f"}])


def paired(context: list[Item]) -> bool:
    calls: set[str] = set()
    answered: set[str] = set()
    for item in context:
        if item.get("type") == "function_call":
            if item["call_id"] in calls:
                return False
            calls.add(item["call_id"])
        elif item.get("type") == "function_call_output":
            if item["call_id"] not in calls or item["call_id"] in answered:
                return False
            answered.add(item["call_id"])
    return calls == answered


@dataclass
class SimServer:
    """What a Responses server holds, and its pairing check on every request."""

    conversation: list[Item] = field(default_factory=list)
    stored: dict[str, list[Item]] = field(default_factory=dict)
    responses: dict[str, Item] = field(default_factory=dict)
    ids: itertools.count[int] = field(default_factory=itertools.count)

    def answer(self, question: Question) -> Any:
        """What the driver reads to settle a turn in doubt."""
        if isinstance(question, ReadConversation):
            return list(reversed(self.conversation))[: question.limit]
        return self.responses.get(question.response_id)

    def accept(self, body: dict[str, Any]) -> list[Item]:
        if "conversation" in body:
            prior = self.conversation
        elif "previous_response_id" in body:
            prior = self.stored[body["previous_response_id"]]
        else:
            prior = []
        context = [*prior, *body["input"]]
        assert paired(context), f"the server would refuse: {context}"
        return context

    def respond(
        self, body: dict[str, Any], context: list[Item], calls: int, status: EndStatus
    ) -> list[Item]:
        """A completed (or incomplete) response: the server keeps it."""
        number = next(self.ids)
        response_id = f"resp_{number}"
        output = [
            {"type": "function_call", "call_id": f"call_{number}_{n}", "name": "f", "id": "x"}
            for n in range(calls)
        ]
        if "conversation" in body:
            self.conversation = [*context, *output]
        if body.get("store", True):
            self.stored[response_id] = [*context, *output]
            self.responses[response_id] = {"id": response_id, "status": status, "output": output}
        return [{"id": response_id}, *output]


@dataclass(frozen=True)
class Turn:
    calls: int
    status: EndStatus
    handover: tuple[Handover, ...]
    stray: bool


@dataclass(frozen=True)
class RunPlan:
    max_turns: int
    turns: tuple[Turn, ...]
    stop: tuple[int, StopAt] | None


QUIET = Turn(calls=0, status="completed", handover=("once",), stray=False)
"""A model that answers without calling tools."""

handovers = st.sampled_from(["once", "twice", "missing"])
turns = st.builds(
    Turn,
    calls=st.integers(0, 3),
    status=st.sampled_from(["completed", "completed", "incomplete", "failed"]),
    handover=st.tuples(handovers, handovers, handovers),
    stray=st.booleans(),
)
plans = st.builds(
    RunPlan,
    max_turns=st.integers(1, 4),
    turns=st.lists(turns, max_size=4).map(tuple),
    stop=st.none()
    | st.tuples(st.integers(1, 4), st.sampled_from(["streaming", "kept", "answering", "ready"])),
)


def handed_over(calls: tuple[ToolCall, ...], turn: Turn) -> list[Item]:
    outputs = []
    for number, call in enumerate(calls):
        way = turn.handover[number % len(turn.handover)]
        if way != "missing":
            outputs.append({"type": "function_call_output", "call_id": call.call_id, "output": "1"})
        if way == "twice":
            outputs.append({"type": "function_call_output", "call_id": call.call_id, "output": "2"})
    if turn.stray:
        outputs.append({"type": "function_call_output", "call_id": "stray", "output": "?"})
    return outputs


class Client:
    """Plays runs the way `Agent` drives the loop, keeping owed outputs between runs."""

    def __init__(self, mode_name: ModeName) -> None:
        self.mode_name = mode_name
        self.server = SimServer()
        self.registry = ConversationRegistry()
        self.last_response_id: str | None = None
        self.history: list[Item] = []

    def mode(self) -> StateMode:
        if self.mode_name == "conversation":
            return ServerConversation("conv")
        if self.mode_name == "chain":
            return ResponseChain(self.last_response_id)
        return LocalReplay(self.history)

    def play(self, plan: RunPlan) -> RunResult | None:
        mode = self.mode()
        owed = self.registry.take_owed(mode.owed_key) if mode.owed_key else []
        doubt = self.registry.take_doubt(mode.owed_key) if mode.owed_key else None
        user = {"role": "user", "content": "go"}
        loop = ToolLoop(mode, TEMPLATE, [user], owed=owed, doubt=doubt, max_turns=plan.max_turns)
        self.turn = QUIET
        self.cut_off_in: str | None = None
        try:
            if (question := loop.question) is not None:
                loop.settle(self.server.answer(question))
            return self._turns(loop, plan)
        finally:
            # what the cancelled tools came to (close ignores it outside `answering`)
            outputs = handed_over(loop.unanswered_calls, self.turn)
            owed = loop.close(outputs, response_id=self.cut_off_in)
            key = loop.mode.owed_key
            if owed or loop.in_doubt:
                assert key is not None
                self.registry.owe(key, owed)
                if loop.in_doubt is not None:
                    self.registry.leave_doubt(key, loop.in_doubt)
            if loop.last_response_id is not None:
                self.last_response_id = loop.last_response_id

    def _turns(self, loop: ToolLoop, plan: RunPlan) -> RunResult | None:
        for number in itertools.count(1):
            turn = plan.turns[number - 1] if number <= len(plan.turns) else QUIET
            self.turn = turn
            request = loop.next_request()
            context = self.server.accept(request.body)
            if plan.stop == (number, "streaming"):
                self.cut_off_in = f"resp_dropped_{number}"  # the server kept nothing
                return None
            if plan.stop == (number, "kept"):
                status = "incomplete" if turn.status == "incomplete" else "completed"
                head, *_ = self.server.respond(request.body, context, turn.calls, status)
                self.cut_off_in = head["id"]
                return None
            if turn.status == "failed":
                outcome = TurnOutcome("failed", "failed", [], [], "")
                assert isinstance(loop.on_stream_end(outcome), Failed)
                return None
            head, *output = self.server.respond(request.body, context, turn.calls, turn.status)
            calls = [ToolCall(i["call_id"], "f", "{}", "x") for i in output]
            outcome = TurnOutcome(head["id"], turn.status, output, calls, "")
            decision = loop.on_stream_end(outcome)
            if isinstance(decision, Finish):
                return self._finished(decision)
            if plan.stop == (number, "answering"):
                return None
            finish = loop.on_outputs(handed_over(decision.calls, turn))
            if finish is not None:
                return self._finished(finish)
            assert isinstance(decision, RunTools)
            if plan.stop == (number, "ready"):
                return None
        raise AssertionError("unreachable")

    def _finished(self, finish: Finish) -> RunResult:
        self.history = finish.result.history
        return finish.result


@settings(max_examples=300, deadline=None)
@given(
    mode_name=st.sampled_from(["conversation", "chain", "local"]),
    runs=st.lists(plans, min_size=1, max_size=5),
)
def test_every_call_gets_exactly_one_output_over_any_calls_failures_and_cancels(
    mode_name: ModeName, runs: list[RunPlan]
) -> None:
    client = Client(mode_name)
    for plan in runs:
        client.play(plan)  # each request passes the server's pairing check
    mode = client.mode()
    last = client.play(RunPlan(max_turns=1, turns=(), stop=None))
    assert last is not None, "the last run must be accepted and finish"
    if mode.owed_key is not None:
        assert client.registry.owed(mode.owed_key) == []
        assert client.registry.take_doubt(mode.owed_key) is None
    held = {
        "conversation": client.server.conversation,
        "chain": client.server.stored.get(last.last_response_id or "", []),
        "local": last.history,
    }[mode_name]
    assert held, "the history holds the runs' items"
    assert paired(held)
