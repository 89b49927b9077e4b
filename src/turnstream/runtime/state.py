"""Where the conversation's history lives, and so what each request must carry.

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
"""

from __future__ import annotations

from typing import Any

__all__ = ["LocalReplay", "ResponseChain", "ServerConversation", "StateMode", "replayable"]


class ServerConversation:
    """History held by the server in conversation `conversation_id`."""

    def __init__(self, conversation_id: str) -> None:
        self.conversation_id = conversation_id
        self.lock_key: str | None = f"conv:{conversation_id}"
        self.owed_key: str | None = self.lock_key

    def fields(self) -> dict[str, Any]:
        return {"conversation": self.conversation_id}

    def input(self, new_items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return new_items

    def completed(
        self, response_id: str, new_items: list[dict[str, Any]], output: list[dict[str, Any]]
    ) -> None:
        """The server appended `new_items` and `output` to the conversation."""

    def key_for_calls(self, response_id: str) -> str | None:
        return self.owed_key


class ResponseChain:
    """History held by the server as a chain of stored responses."""

    def __init__(self, previous_response_id: str | None) -> None:
        self.previous_response_id = previous_response_id
        self.lock_key: str | None = None
        self.owed_key: str | None = (
            f"resp:{previous_response_id}" if previous_response_id is not None else None
        )

    def fields(self) -> dict[str, Any]:
        if self.previous_response_id is None:
            return {}
        return {"previous_response_id": self.previous_response_id}

    def input(self, new_items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return new_items

    def completed(
        self, response_id: str, new_items: list[dict[str, Any]], output: list[dict[str, Any]]
    ) -> None:
        self.previous_response_id = response_id

    def key_for_calls(self, response_id: str) -> str | None:
        return f"resp:{response_id}"


class LocalReplay:
    """History held here and resent whole with `store: false`."""

    def __init__(self, history: list[dict[str, Any]] | None = None) -> None:
        self.history: list[dict[str, Any]] = [replayable(item) for item in history or ()]
        self.lock_key: str | None = None
        self.owed_key: str | None = None

    def fields(self) -> dict[str, Any]:
        return {"store": False, "include": ["reasoning.encrypted_content"]}

    def input(self, new_items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [*self.history, *new_items]

    def completed(
        self, response_id: str, new_items: list[dict[str, Any]], output: list[dict[str, Any]]
    ) -> None:
        self.history.extend(new_items)
        self.history.extend(replayable(item) for item in output if _worth_replaying(item))

    def key_for_calls(self, response_id: str) -> str | None:
        return None


StateMode = ServerConversation | ResponseChain | LocalReplay


def _worth_replaying(item: dict[str, Any]) -> bool:
    # Without its encrypted content a reasoning item can only be resolved by id,
    # which a store=false server does not have.
    return item.get("type") != "reasoning" or bool(item.get("encrypted_content"))


def replayable(item: dict[str, Any]) -> dict[str, Any]:
    """An output item as input for a server that stored nothing."""
    kind = item.get("type")
    if kind == "reasoning":
        # The SDK types require `id` here; the server resolves it from encrypted_content.
        keep = ("type", "id", "summary", "encrypted_content", "content")
        return {k: item[k] for k in keep if k in item and item[k] is not None}
    if kind == "message":
        content = []
        for part in item.get("content") or ():
            if isinstance(part, dict) and part.get("type") == "output_text":
                content.append(
                    {
                        "type": "output_text",
                        "text": part.get("text", ""),
                        "annotations": part.get("annotations") or [],
                    }
                )
            elif isinstance(part, dict):
                content.append(part)
        return {"type": "message", "role": item.get("role", "assistant"), "content": content}
    if kind == "function_call":
        return {
            "type": "function_call",
            "call_id": item.get("call_id"),
            "name": item.get("name"),
            "arguments": item.get("arguments", ""),
        }
    return {k: v for k, v in item.items() if k not in ("id", "status")}
