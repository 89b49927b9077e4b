"""The chats this machine started: a small JSON index, since the API cannot list them.

`/v1/conversations` has no list endpoint (OpenAI's has none either), so the terminal
chat's `/resume` and the page's sidebar remember the conversations they created in a
JSON file next to the database. Writes go through a temporary file and an atomic
rename, so a crash never leaves half an index; two writers at once may lose an entry,
never the file.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from turnstream.runtime.builtin_tools import BUILTIN_TOOLS

__all__ = ["CHAT_INSTRUCTIONS", "ChatEntry", "ChatIndex", "chat_index_path", "chat_warmup"]

CHAT_INSTRUCTIONS = (
    "You are a helpful assistant in a chat. Answer briefly, in Markdown, and write "
    "math in plain text, never in LaTeX. "
    "Never state the current time or date, the result of arithmetic, or a unit "
    "conversion unless a tool gave it to you in this conversation: call the matching "
    "tool (calculate, current_time, convert_units) instead of working it out, then "
    "answer using its result. Greetings and small talk need no tool."
)
"""The instructions both chat apps send with every request."""


def chat_warmup() -> tuple[str, list[dict[str, Any]]]:
    """The chat apps' instructions and tool definitions, byte for byte as they send
    them, so a local model can warm its prompt cache with exactly that prefix."""
    return CHAT_INSTRUCTIONS, [tool.definition() for tool in BUILTIN_TOOLS]


_MAX_ENTRIES = 200


def chat_index_path(db_path: Path) -> Path:
    """Where the index of chats on the database `db_path` lives (beside it)."""
    return db_path.with_name(f"{db_path.stem}.chats.json")


@dataclass(frozen=True, slots=True)
class ChatEntry:
    """One conversation the chat apps created."""

    id: str
    title: str
    created_at: float
    updated_at: float
    scope: str = "embedded"
    """Which server holds it: `embedded` (this database) or a base URL."""


class ChatIndex:
    """The JSON index of chats, newest first.

    Args:
        path: The JSON file (created on first write).
        scope: Only entries of this scope are listed and touched.
    """

    def __init__(self, path: Path, scope: str = "embedded") -> None:
        self.path = path
        self.scope = scope
        self._lock = threading.Lock()

    def _read_all(self) -> list[ChatEntry]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []
        entries = []
        for item in raw.get("chats", []) if isinstance(raw, dict) else []:
            with contextlib.suppress(TypeError, KeyError):
                entries.append(ChatEntry(**item))
        return entries

    def _write_all(self, entries: list[ChatEntry]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps({"chats": [asdict(e) for e in entries]}, indent=1)
        fd, tmp = tempfile.mkstemp(prefix=".chats-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(data)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def list(self) -> list[ChatEntry]:
        """This scope's chats, most recently used first."""
        entries = [e for e in self._read_all() if e.scope == self.scope]
        return sorted(entries, key=lambda e: e.updated_at, reverse=True)

    def get(self, conversation_id: str) -> ChatEntry | None:
        return next((e for e in self.list() if e.id == conversation_id), None)

    def touch(self, conversation_id: str, title: str = "") -> ChatEntry:
        """Record a conversation as used now; a new one is titled with `title`."""
        with self._lock:
            entries = self._read_all()
            now = time.time()
            old = next(
                (e for e in entries if e.id == conversation_id and e.scope == self.scope), None
            )
            entry = ChatEntry(
                id=conversation_id,
                title=old.title if old and old.title else _title(title),
                created_at=old.created_at if old else now,
                updated_at=now,
                scope=self.scope,
            )
            rest = [e for e in entries if not (e.id == conversation_id and e.scope == self.scope)]
            rest.sort(key=lambda e: e.updated_at, reverse=True)
            self._write_all([entry, *rest][:_MAX_ENTRIES])
            return entry

    def forget(self, conversation_id: str) -> None:
        """Drop a conversation (deleted on the server, say) from the index."""
        with self._lock:
            entries = self._read_all()
            kept = [e for e in entries if not (e.id == conversation_id and e.scope == self.scope)]
            if len(kept) != len(entries):
                self._write_all(kept)


def _title(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= 60 else line[:57] + "..."
