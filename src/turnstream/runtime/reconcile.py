"""Reading what the server kept of a turn in doubt: the I/O half of `ToolLoop.question`.

The decision stays in the `StateMode` (`settle`); this only fetches the answer, through
the Agent's own `openai.AsyncOpenAI` client.
"""

from __future__ import annotations

from typing import Any

import openai

from .history import Question, ReadConversation
from .retry import RetryPolicy

__all__ = ["ask_server"]

UNSETTLED = frozenset({"queued", "in_progress"})
POLL_INTERVAL = 0.05
"""Seconds between looks at a running response: its end (the server noticing the
disconnect, or finishing its write) is imminent, so no backoff."""
POLLS = 200
"""Looks before giving up (about 10 s): the answer read then is the best there is."""


async def ask_server(client: openai.AsyncOpenAI, question: Question, policy: RetryPolicy) -> Any:
    """The answer `question` asks for: the conversation's newest items, or a response.

    `policy` lends its `sleep` (a fake clock in tests) to the wait for a running one.
    """
    response = await _settled_response(client, question.response_id, policy)
    if not isinstance(question, ReadConversation):
        return response
    page = await client.conversations.items.list(
        question.conversation_id, order="desc", limit=question.limit
    )
    return [item.model_dump(mode="json", exclude_none=True) for item in page.data]


async def _settled_response(
    client: openai.AsyncOpenAI, response_id: str | None, policy: RetryPolicy
) -> dict[str, Any] | None:
    """The stored response once it is no longer running; `None` if there is none.

    A response cut off mid-stream may still be running on the server (being persisted,
    or not yet cancelled by the disconnect): what it keeps is known only once it ends.
    """
    if not response_id:
        return None
    for _ in range(POLLS):
        try:
            response = await client.responses.retrieve(response_id)
        except openai.NotFoundError:
            return None
        if response.status not in UNSETTLED:
            break
        await policy.sleep(POLL_INTERVAL)
    return response.model_dump(mode="json", exclude_none=True)
