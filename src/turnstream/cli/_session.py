"""What one chat holds, whatever shows it: the client, model, tools and conversation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import openai

from turnstream.runtime import Agent, AgentError, RunStream, Tool
from turnstream.web.chats import ChatIndex

__all__ = ["ChatError", "ChatSession", "describe_error"]


class ChatError(Exception):
    """A problem the user can act on; the message says what to do."""


@dataclass
class ChatSession:
    client: openai.AsyncOpenAI
    model: str
    tools: Sequence[Tool]
    instructions: str
    index: ChatIndex
    conversation: str | None = None
    request_options: dict[str, Any] = field(default_factory=dict)
    models: list[str] | None = None
    """What the server lists at `/models` (`None` when it cannot list them)."""

    def agent(self) -> Agent:
        return Agent(
            client=self.client,
            model=self.model,
            instructions=self.instructions,
            tools=self.tools,
            request_options=self.request_options or None,
        )

    async def start_turn(self, text: str) -> RunStream:
        """Create the conversation on first use, then stream a run on it."""
        if self.conversation is None:
            created = await self.client.conversations.create()
            self.conversation = created.id
        self.index.touch(self.conversation, text)
        return self.agent().stream(text, conversation=self.conversation)

    async def items(self, conversation: str | None = None) -> list[dict[str, Any]]:
        """Every item of a conversation, oldest first."""
        target = conversation or self.conversation
        if target is None:
            return []
        items: list[dict[str, Any]] = []
        async for item in self.client.conversations.items.list(target, order="asc", limit=100):
            items.append(item.model_dump(mode="json", exclude_none=True))
        return items


def describe_error(exc: BaseException, base_url: str) -> str:
    """One line that says what went wrong and, where it helps, what to do."""
    if isinstance(exc, ChatError):
        return str(exc)
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc
        return f"cannot reach {base_url}: {cause} (is the server running? check --base-url)"
    if isinstance(exc, openai.AuthenticationError):
        return f"{base_url} refused the API key (401); pass --api-key or set OPENAI_API_KEY"
    if isinstance(exc, openai.APIStatusError):
        body = exc.body
        message = body.get("message") if isinstance(body, dict) else None
        return f"the server answered {exc.status_code}: {message or exc.message}"
    if isinstance(exc, AgentError):
        return f"the turn failed: {exc}"
    return f"{type(exc).__name__}: {exc}"
