"""The chat page: served by `turnstream serve` at `/`, driven by the runtime in-process."""

from __future__ import annotations

from .chats import CHAT_INSTRUCTIONS, ChatEntry, ChatIndex, chat_index_path, chat_warmup
from .events import event_to_dict
from .router import create_chat_router

__all__ = [
    "CHAT_INSTRUCTIONS",
    "ChatEntry",
    "ChatIndex",
    "chat_index_path",
    "chat_warmup",
    "create_chat_router",
    "event_to_dict",
]
