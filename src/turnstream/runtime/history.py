"""Where a conversation's history lives, and so what each request must carry.

`StateMode` is the one interface the loop uses; three modes implement it:

- `ServerConversation` (`conversation=`): the server holds the history. Each request
  sends only the new items: the user's input, or the tool outputs.
- `ResponseChain` (`previous_response_id`): each request names the last response and
  sends only the new items. `instructions` and `tools` do not carry over, so the
  Agent resends them every request (it does in every mode).
- `LocalReplay` (`store=False`): the server keeps nothing. The whole history is resent
  each request, including reasoning items that carry `encrypted_content`. Ids of
  messages and function calls are dropped, since the server never stored them.

A mode never resends what the server already holds and never combines
`conversation` with `previous_response_id`.

A run cut off between sending a request and reading its response's terminal event
leaves that turn *in doubt* (`InDoubt`): the server may have kept it (it persists
before it announces, DESIGN.md invariant 2) or dropped it (a disconnect cancelled it).
Only the server knows, so the mode names what to read (`question`) and decides from
the answer what is still owed (`settle`); the driver does the reading.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "Compactable",
    "InDoubt",
    "LocalReplay",
    "Question",
    "ReadConversation",
    "ReadResponse",
    "ResponseChain",
    "ServerConversation",
    "Settled",
    "StateMode",
    "replayable",
]

Item = dict[str, Any]

CONVERSATION_WINDOW = 100
"""How many of a conversation's newest items settle a doubt (the API's largest page).
The turn in doubt is the newest one, so its items are among them."""


@dataclass(frozen=True, slots=True)
class InDoubt:
    """A turn whose end was never read: whether the server kept it is unknown here."""

    response_id: str | None
    """From `response.created`; `None` if the run was cut off before it."""
    sent: tuple[Item, ...]
    """The outputs the request carried: delivered if the server kept the turn."""
    note: str
    """The output owed to each call of the turn, if the server kept it: it was not
    run. Any call: the run may have been cut off before reading an announcement."""

    def answer(self, call_id: Any) -> Item:
        return {"type": "function_call_output", "call_id": call_id, "output": self.note}


@dataclass(frozen=True, slots=True)
class ReadConversation:
    """Answer with the conversation's newest `limit` items, newest first, once
    `response_id` (if known) is no longer queued or in progress."""

    conversation_id: str
    response_id: str | None
    limit: int = CONVERSATION_WINDOW


@dataclass(frozen=True, slots=True)
class ReadResponse:
    """Answer with the stored response `response_id` as a dict; `None` if not found."""

    response_id: str


Question = ReadConversation | ReadResponse


@dataclass(frozen=True, slots=True)
class Settled:
    """What a turn in doubt came to."""

    owed: list[Item]
    """The outputs the server still lacks: send them first."""
    continues_from: str | None = None
    """The turn's response id when the history now continues from it (a chain moved
    onto it): the run's last completed response until another completes."""


class StateMode(Protocol):
    """What the loop needs to know about where the history lives."""

    @property
    def lock_key(self) -> str | None:
        """Runs on the same key are serialised client-side (`ConversationRegistry.hold`);
        `None` when no two runs can share the server-side history."""
        ...

    @property
    def owed_key(self) -> str | None:
        """Where outputs owed to the calls the server holds *now* are kept between runs
        (`ConversationRegistry.owe`); changes as responses complete."""
        ...

    @property
    def conversation_id(self) -> str | None:
        """The server-side conversation, reported in `RunResult.conversation`."""
        ...

    def fields(self) -> dict[str, Any]:
        """Body fields that name the history (`conversation`, `previous_response_id`,
        `store`)."""
        ...

    def input(self, new_items: list[Item]) -> list[Item]:
        """The request's `input`, given the items new since the last response."""
        ...

    def completed(self, response_id: str, sent: list[Item], output: list[Item]) -> None:
        """A response completed: the server accepted `sent` and produced `output`."""
        ...

    def owe(self, outputs: list[Item]) -> list[Item]:
        """Take note of outputs this run could not send.

        Returns the ones still owed to the server, which the registry keeps under
        `owed_key` for the next run; a history held here takes them in and returns
        nothing.
        """
        ...

    def history(self) -> list[Item]:
        """The context held client-side (`RunResult.history`); empty when the server
        holds it."""
        ...

    def question(self, doubt: InDoubt) -> Question | None:
        """What to read from the server to settle `doubt`; `None` when this mode
        knows without asking (then `settle(doubt, None)`)."""
        ...

    def settle(self, doubt: InDoubt, truth: Any) -> Settled:
        """The outputs still owed once the server's answer to `question` is known;
        may move the history on to the turn in doubt."""
        ...


class Compactable(Protocol):
    """A mode whose history the client may replace by a compacted window (chains and
    local replay; a conversation's history is the server's)."""

    def compaction_source(self) -> dict[str, Any]:
        """The `POST /responses/compact` fields that name this history."""
        ...

    def rebase(self, window: list[Item]) -> None:
        """Continue from `window` (a `CompactResource`'s output) as a new chain."""
        ...


class ServerConversation:
    """History held by the server in conversation `conversation_id`."""

    def __init__(self, conversation_id: str) -> None:
        self.conversation_id: str | None = conversation_id
        self.lock_key: str | None = f"conv:{conversation_id}"
        self.owed_key: str | None = self.lock_key

    def fields(self) -> dict[str, Any]:
        return {"conversation": self.conversation_id}

    def input(self, new_items: list[Item]) -> list[Item]:
        return new_items

    def completed(self, response_id: str, sent: list[Item], output: list[Item]) -> None:
        """The server appended `sent` and `output` to the conversation."""

    def owe(self, outputs: list[Item]) -> list[Item]:
        return outputs

    def history(self) -> list[Item]:
        return []

    def question(self, doubt: InDoubt) -> Question | None:
        assert self.conversation_id is not None
        return ReadConversation(self.conversation_id, doubt.response_id)

    def settle(self, doubt: InDoubt, truth: Any) -> Settled:
        """`truth`: the conversation's newest items, newest first. An output is owed
        exactly to each stored call without one: the sent outputs' calls are stored
        (an earlier turn completed with them) and answered only if the server kept the
        turn in doubt; that turn's calls are stored only if it did. Every call is
        older than its output, so a call in the window has its output there too."""
        items: Sequence[Item] = list(reversed(truth or ()))
        answered = {i.get("call_id") for i in items if i.get("type") == "function_call_output"}
        owed = [output for output in doubt.sent if output["call_id"] not in answered]
        answered.update(output["call_id"] for output in owed)
        owed.extend(
            doubt.answer(item.get("call_id"))
            for item in items
            if item.get("type") == "function_call" and item.get("call_id") not in answered
        )
        return Settled(owed)


class ResponseChain:
    """History held by the server as a chain of stored responses."""

    def __init__(self, previous_response_id: str | None) -> None:
        self.previous_response_id = previous_response_id
        self.lock_key: str | None = None
        self.conversation_id: str | None = None
        self._base: list[Item] = []

    @property
    def owed_key(self) -> str | None:
        # outputs answer the calls of the response they must be chained onto
        if self.previous_response_id is None:
            return None
        return f"resp:{self.previous_response_id}"

    def fields(self) -> dict[str, Any]:
        if self.previous_response_id is None:
            return {}
        return {"previous_response_id": self.previous_response_id}

    def input(self, new_items: list[Item]) -> list[Item]:
        return [*self._base, *new_items]

    def completed(self, response_id: str, sent: list[Item], output: list[Item]) -> None:
        self.previous_response_id = response_id
        self._base = []

    def compaction_source(self) -> dict[str, Any]:
        """What `POST /responses/compact` needs to compact this history."""
        return {"previous_response_id": self.previous_response_id}

    def rebase(self, window: list[Item]) -> None:
        """Start a new chain from a compacted window: the next request sends it as
        its base input, without `previous_response_id`."""
        self.previous_response_id = None
        self._base = [replayable(item) for item in window]

    def owe(self, outputs: list[Item]) -> list[Item]:
        return outputs

    def history(self) -> list[Item]:
        return []

    def question(self, doubt: InDoubt) -> Question | None:
        # without its id the turn cannot be chained onto: the previous one always can
        return ReadResponse(doubt.response_id) if doubt.response_id else None

    def settle(self, doubt: InDoubt, truth: Any) -> Settled:
        """`truth`: the response in doubt, or `None`. A stored response never changes,
        so chaining onto the previous one is always valid; the turn in doubt is only
        taken when it completed with calls, which are then owed (all of them, also
        those whose announcement the run never read)."""
        response: Item = truth or {}
        calls = [
            item
            for item in response.get("output") or ()
            if isinstance(item, dict) and item.get("type") == "function_call"
        ]
        if response.get("status") != "completed" or not calls or doubt.response_id is None:
            return Settled(list(doubt.sent))
        self.previous_response_id = doubt.response_id
        owed = [doubt.answer(call.get("call_id")) for call in calls]
        return Settled(owed, continues_from=doubt.response_id)


class LocalReplay:
    """History held here and resent whole with `store: false`."""

    def __init__(self, history: list[Item] | None = None) -> None:
        self._history: list[Item] = [replayable(item) for item in history or ()]
        self.lock_key: str | None = None
        self.owed_key: str | None = None
        self.conversation_id: str | None = None

    def fields(self) -> dict[str, Any]:
        return {"store": False, "include": ["reasoning.encrypted_content"]}

    def input(self, new_items: list[Item]) -> list[Item]:
        return [*self._history, *new_items]

    def completed(self, response_id: str, sent: list[Item], output: list[Item]) -> None:
        self._history.extend(sent)
        self._history.extend(replayable(item) for item in output if _worth_replaying(item))

    def compaction_source(self) -> dict[str, Any]:
        return {"input": list(self._history)}

    def rebase(self, window: list[Item]) -> None:
        """Continue from a compacted window instead of the whole history."""
        self._history = [replayable(item) for item in window]

    def owe(self, outputs: list[Item]) -> list[Item]:
        # the caller carries this history into its next run (`history=`), so the
        # calls' outputs go straight into it and nothing is left to owe
        self._history.extend(outputs)
        return []

    def history(self) -> list[Item]:
        return list(self._history)

    def question(self, doubt: InDoubt) -> Question | None:
        return None  # the history held here is the truth

    def settle(self, doubt: InDoubt, truth: Any) -> Settled:
        # the server kept nothing: the calls it announced are dropped with the turn
        return Settled(list(doubt.sent))


def _worth_replaying(item: Item) -> bool:
    # Without its encrypted content a reasoning item can only be resolved by id,
    # which a store=false server does not have.
    return item.get("type") != "reasoning" or bool(item.get("encrypted_content"))


def replayable(item: Item) -> Item:
    """An output item as input for a server that stored nothing."""
    kind = item.get("type")
    if kind == "reasoning":
        # The SDK types require `id` here; the server resolves it from encrypted_content.
        keep = ("type", "id", "summary", "encrypted_content", "content")
        return {k: item[k] for k in keep if k in item and item[k] is not None}
    if kind == "message":
        return {
            "type": "message",
            "role": item.get("role", "assistant"),
            "content": [
                _replayable_part(part)
                for part in item.get("content") or ()
                if isinstance(part, dict)
            ],
        }
    if kind == "function_call":
        return {
            "type": "function_call",
            "call_id": item.get("call_id"),
            "name": item.get("name"),
            "arguments": item.get("arguments", ""),
        }
    return {k: v for k, v in item.items() if k not in ("id", "status")}


def _replayable_part(part: Item) -> Item:
    if part.get("type") == "output_text":
        return {
            "type": "output_text",
            "text": part.get("text", ""),
            "annotations": part.get("annotations") or [],
        }
    return part
