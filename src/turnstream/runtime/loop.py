"""The tool loop's decisions, as a sans-I/O state machine. No network, no tasks, no clock.

`ToolLoop` answers two questions: "what is the next request?" and "the response's
body has ended: finish, run these tools, or owe these outputs?". The `Agent` drives it
the way httpx drives an auth flow; the driver does the HTTP, runs the tools, handles
cancellation and retries, and reports back:

```python
loop = ToolLoop(mode, template, user_items, owed=owed, doubt=doubt, max_turns=10)
try:
    if loop.question is not None:                   # an earlier run left a turn in doubt
        loop.settle(...)                            # read what the question names
    while True:
        request = loop.next_request()               # a TurnRequest: the body to send
        outcome = ...                               # stream it to EOF, read a TurnOutcome
        decision = loop.on_stream_end(outcome)
        # Failed: raise. Finish: done. RunTools: run the calls. OweOutputs: do not.
        finish = loop.on_outputs(outputs)           # one per call; Finish or None
finally:
    owed = loop.close(outputs_so_far, response_id=...)  # mid-stream: the id if read
    doubt = loop.in_doubt                           # what the next run must settle first
```

It owns DESIGN.md invariant 5, "every function call gets exactly one output": the
outputs it sends, or returns as owed, answer exactly the calls the server holds, one
each, whatever the driver hands it. Outputs that were sent but not accepted by a
completed response stay *undelivered*; a run that ends before they are accepted (a
failure, a cancellation, a broken stream) owes them, and the calls held by the last
completed response, to the next run on the same history.

A run cut off mid-stream (after sending, before the terminal event) cannot know
whether the server kept that turn: it persists before it announces, and a disconnect
cancels only what was not persisted yet. The loop then owes nothing for it but leaves
the turn `in_doubt` (its response id, the outputs it carried); the next run
on that history asks the server (`question`, `settle`, decided by the `StateMode`)
before its first request, and owes exactly what the server's state still lacks.

Phases: `ready` (next_request) -> `streaming` (on_stream_end) -> `answering`
(on_outputs) -> `ready` ...; any phase -> `done` (close).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import ResponseFailedError
from .history import InDoubt, Question, StateMode
from .results import RunResult, RunStatus, TokenUsage
from .tools import ToolCall
from .turn import TurnOutcome

__all__ = [
    "NOT_RUN_CANCELLED",
    "NOT_RUN_INCOMPLETE",
    "NOT_RUN_TURN_LIMIT",
    "Decision",
    "Failed",
    "Finish",
    "OweOutputs",
    "RequestTemplate",
    "RunTools",
    "ToolLoop",
    "TurnRequest",
]

Item = dict[str, Any]
Phase = Literal["ready", "streaming", "answering", "done"]

NOT_RUN_TURN_LIMIT = "Error: the tool was not run: the turn limit was reached."
NOT_RUN_INCOMPLETE = "Error: the tool was not run: the response was incomplete."
NOT_RUN_CANCELLED = "Error: the tool was not run: the run ended before it could."


@dataclass(frozen=True, slots=True)
class RequestTemplate:
    """What every request of an Agent carries, whatever the turn."""

    model: str
    instructions: str | None = None
    tools: Sequence[Mapping[str, Any]] = ()
    """Tool definitions (`Tool.definition()`)."""
    options: Mapping[str, Any] = field(default_factory=dict)
    """Extra body fields (`temperature`, `reasoning`, ...), sent after the rest."""


@dataclass(frozen=True, slots=True)
class TurnRequest:
    """One logical request: a transport may send it more than once (retries), never
    a different body."""

    turn: int
    """1-based index of the response this request asks for."""
    body: dict[str, Any]
    """The wire body, without `stream` and without `options`."""
    options: Mapping[str, Any]
    """Extra body fields that win over `body` (`RequestTemplate.options`)."""
    final: bool
    """The last turn: tools are not offered to run (`tool_choice: "none"`), so none
    should be started."""


@dataclass(frozen=True, slots=True)
class RunTools:
    """Run these calls, then hand `on_outputs` one output per call."""

    calls: tuple[ToolCall, ...]


@dataclass(frozen=True, slots=True)
class OweOutputs:
    """Do not run these calls (stop any that started early); hand `on_outputs` what
    there is, and `note` stands in for the rest. The run then finishes, owing them."""

    calls: tuple[ToolCall, ...]
    note: str


@dataclass(frozen=True, slots=True)
class Finish:
    """The run is over."""

    result: RunResult


@dataclass(frozen=True, slots=True)
class Failed:
    """The response failed; raise `error`. Nothing of it is kept."""

    error: ResponseFailedError


Decision = RunTools | OweOutputs | Finish | Failed


class ToolLoop:
    """One run's decisions: what to send, and what to do when a response ends.

    Args:
        mode: Where the history lives (`StateMode`).
        template: The Agent's per-request fields.
        user_items: The run's new input items.
        owed: Outputs an earlier run owes this history; they are sent first.
        doubt: A turn an earlier run left in doubt; `settle` it before `next_request`.
        max_turns: Model responses in this run; the last is asked for a final answer.
    """

    def __init__(
        self,
        mode: StateMode,
        template: RequestTemplate,
        user_items: Sequence[Item],
        *,
        owed: Sequence[Item] = (),
        doubt: InDoubt | None = None,
        max_turns: int,
    ) -> None:
        if max_turns < 1:
            raise ValueError("max_turns must be at least 1")
        self.mode = mode
        self.template = template
        self.max_turns = max_turns
        self.turn = 0
        self.phase: Phase = "ready"
        self.usage = TokenUsage()
        self.last_response_id: str | None = None
        self.items: list[Item] = []
        """The run's items: owed outputs it sent, model output, tool outputs."""
        self._pending: list[Item] = [*owed, *user_items]
        """The next request's new items."""
        self._undelivered: list[Item] = list(owed)
        """Outputs sent (or about to be) that no completed response has accepted."""
        self._reported = list(owed)
        """What of the first request counts as the run's items (not the user's input)."""
        self._held: tuple[ToolCall, ...] = ()
        """Calls of the last completed response that still wait for their outputs."""
        self._closing: tuple[TurnOutcome, str] | None = None
        self._owed: list[Item] = []
        self.in_doubt: InDoubt | None = doubt
        """A turn whose fate the server knows and this history does not: the one given,
        until settled, or the one this run was cut off in (after `close`)."""
        if doubt is not None and mode.question(doubt) is None:
            self.settle(None)

    # -- the driver's questions ---------------------------------------------------------

    @property
    def question(self) -> Question | None:
        """What the driver must read from the server and hand to `settle` before the
        first request; `None` when nothing is in doubt."""
        if self.in_doubt is None or self.turn > 0 or self.phase != "ready":
            return None
        return self.mode.question(self.in_doubt)

    def settle(self, truth: Any) -> None:
        """The server's answer to `question`: what it lacks is owed, and sent first."""
        self._expect("ready")
        if self.in_doubt is None or self.turn > 0:
            raise RuntimeError("nothing is in doubt")
        settled = self.mode.settle(self.in_doubt, truth)
        owed = settled.owed
        self.in_doubt = None
        if settled.continues_from is not None:
            self.last_response_id = settled.continues_from
        self._pending[:0] = owed
        self._undelivered[:0] = owed
        self._reported[:0] = owed

    def next_request(self) -> TurnRequest:
        """The next request to send (phase `ready` -> `streaming`)."""
        self._expect("ready")
        if self.question is not None:
            raise RuntimeError("settle the turn in doubt first")
        self.turn += 1
        final = self.turn == self.max_turns
        body: dict[str, Any] = {
            "model": self.template.model,
            "input": self.mode.input(self._pending),
        }
        if self.template.instructions is not None:
            body["instructions"] = self.template.instructions
        if self.template.tools:
            body["tools"] = [dict(tool) for tool in self.template.tools]
            if final:
                body["tool_choice"] = "none"
        body.update(self.mode.fields())
        self.phase = "streaming"
        return TurnRequest(self.turn, body, dict(self.template.options), final)

    def on_stream_end(self, outcome: TurnOutcome) -> Decision:
        """The response's body has ended (phase `streaming` -> the decision's)."""
        self._expect("streaming")
        if outcome.usage is not None:
            self.usage = self.usage + outcome.usage
        if outcome.status == "failed":
            # a failed response kept nothing: what it carried is still undelivered
            self._end(self._undelivered)
            error = ResponseFailedError(
                outcome.response_id, outcome.error_code, outcome.error_message
            )
            return Failed(error)
        self.mode.completed(outcome.response_id, self._pending, outcome.output)
        self.last_response_id = outcome.response_id
        self.items.extend(self._pending if self.turn > 1 else self._reported)
        self.items.extend(outcome.output)
        self._pending = []
        self._undelivered = []
        if not outcome.calls:
            self._end([])
            return Finish(self._result(outcome, outcome.status))
        self._held = tuple(outcome.calls)
        self.phase = "answering"
        if self.turn == self.max_turns or outcome.status == "incomplete":
            note = NOT_RUN_TURN_LIMIT if self.turn == self.max_turns else NOT_RUN_INCOMPLETE
            self._closing = (outcome, note)
            return OweOutputs(self._held, note)
        return RunTools(self._held)

    def on_outputs(self, outputs: Sequence[Item]) -> Finish | None:
        """The outputs for the calls of `RunTools` / `OweOutputs`.

        Exactly one output per call is kept, in call order: the first given for its
        `call_id`; a call without one gets a note saying it was not run; outputs for
        other calls are dropped.

        Returns:
            `Finish` after `OweOutputs`; `None` after `RunTools`: send `next_request()`.
        """
        self._expect("answering")
        if self._closing is not None:
            outcome, note = self._closing
            self._end(self._answer(outputs, note))
            return Finish(self._result(outcome, "incomplete"))
        self._pending = self._answer(outputs, NOT_RUN_CANCELLED)
        self._undelivered = list(self._pending)
        self._held = ()
        self.phase = "ready"
        return None

    def close(
        self, outputs: Sequence[Item] = (), *, response_id: str | None = None, refused: bool = False
    ) -> list[Item]:
        """The run ends here, however it ended; returns what it owes. A turn it was
        cut off in, or one it could not settle, is left in `in_doubt`.

        Args:
            outputs: What there is for `unanswered_calls` (e.g. the outputs of
                cancelled tools); calls without one get a note.
            response_id: Mid-stream: the response's id (`response.created`), if read.
            refused: Mid-stream: the server answered the request with an error status,
                so it kept nothing of it and nothing is in doubt.

        Returns:
            The outputs the next run on this history must send first; keep them under
            the mode's `owed_key`. Empty when nothing is owed (or the mode keeps them).
        """
        if self.phase == "answering":
            note = self._closing[1] if self._closing is not None else NOT_RUN_CANCELLED
            self._end(self._answer(outputs, note))
        elif self.phase == "streaming" and not refused:
            self._cut_off(response_id)
        elif self.phase != "done":
            self._end(self._undelivered)
        owed, self._owed = self._owed, []
        return owed

    @property
    def unanswered_calls(self) -> tuple[ToolCall, ...]:
        """Calls the server holds whose outputs the loop has not been given yet."""
        return self._held if self.phase == "answering" else ()

    # -- internals ----------------------------------------------------------------------

    def _expect(self, phase: Phase) -> None:
        if self.phase != phase:
            raise RuntimeError(f"the tool loop is {self.phase!r}, not {phase!r}")

    def _answer(self, outputs: Sequence[Item], note: str) -> list[Item]:
        given: dict[str, Item] = {}
        for output in outputs:
            call_id = output.get("call_id")
            if isinstance(call_id, str):
                given.setdefault(call_id, output)
        return [
            given.get(call.call_id)
            or {"type": "function_call_output", "call_id": call.call_id, "output": note}
            for call in self._held
        ]

    def _cut_off(self, response_id: str | None) -> None:
        # Even with no call announced the server may hold some: the run can be cut
        # off before it reads what the server already sent and persisted.
        doubt = InDoubt(response_id, tuple(self._undelivered), NOT_RUN_CANCELLED)
        if self.mode.owed_key is None or self.mode.question(doubt) is None:
            self._end(self.mode.settle(doubt, None).owed)  # the truth is known here
        else:
            self._end([])
            self.in_doubt = doubt

    def _end(self, unsent: list[Item]) -> None:
        self._owed = self.mode.owe(unsent) if unsent else []
        self._held = ()
        self._closing = None
        self.phase = "done"

    def _result(self, outcome: TurnOutcome, status: RunStatus | str) -> RunResult:
        return RunResult(
            final_output=outcome.text,
            new_items=list(self.items),
            usage=self.usage,
            status="incomplete" if status == "incomplete" else "completed",
            last_response_id=outcome.response_id,
            conversation=self.mode.conversation_id,
            turns=self.turn,
            history=self.mode.history(),
        )
