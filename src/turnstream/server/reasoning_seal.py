"""Reasoning that survives `store: false`: sealed into `encrypted_content`, opened on return.

A stateless client (Codex CLI sends `store: false` and its whole history on every
turn) asks for `include: ["reasoning.encrypted_content"]` so that the model's
reasoning comes back to it. The server seals the reasoning text with its secret
(`Settings.reasoning_secret`, Fernet: AES-128-CBC with an HMAC-SHA256 tag), so the
client can hold it but neither read nor alter it, and any replica with the same
secret opens it when the history comes back. What cannot be opened (another
server's, or sealed under an old secret) is left out of what the model sees, as
OpenAI's own reasoning is for a model that cannot take it back.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

__all__ = ["ENCRYPTED_REASONING", "ReasoningSeal"]

log = logging.getLogger("turnstream.server")

ENCRYPTED_REASONING = "reasoning.encrypted_content"
"""The `include` value that asks for sealed reasoning."""


class ReasoningSeal:
    """Seals and opens reasoning text with one server secret."""

    def __init__(self, secret: str) -> None:
        key = base64.urlsafe_b64encode(hashlib.sha256(secret.encode()).digest())
        self._fernet = Fernet(key)

    def seal(self, text: str) -> str:
        """The `encrypted_content` for a reasoning item with this text."""
        return self._fernet.encrypt(json.dumps({"text": text}).encode()).decode()

    def open(self, token: str) -> str | None:
        """The reasoning text sealed in `token`, or `None` if it is not ours."""
        try:
            payload = json.loads(self._fernet.decrypt(token.encode()))
        except (InvalidToken, ValueError, TypeError):
            return None
        text = payload.get("text") if isinstance(payload, Mapping) else None
        return text if isinstance(text, str) else None

    def reveal(self, items: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """The context with each sealed reasoning item's text restored as `content`.

        Only for the model's view: the items stored or echoed are left as sent.
        """
        view: list[Mapping[str, Any]] = []
        for item in items:
            token = item.get("encrypted_content") if item.get("type") == "reasoning" else None
            if isinstance(token, str):
                text = self.open(token)
                if text is None:
                    log.debug("left out reasoning sealed by another server or secret")
                else:
                    item = {**item, "content": [{"type": "reasoning_text", "text": text}]}
            view.append(item)
        return view
