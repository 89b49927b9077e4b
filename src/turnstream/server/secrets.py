"""Server secrets that every replica must share.

The compaction key seals `compaction` items (`server/compaction.py`). It comes from
`Settings.compaction_secret` when set (a Fernet key: 32 url-safe base64 bytes),
else from the database, where the first process that needs one stores a fresh one
and every other process sharing the database reads the same. It is cached on the
app's state after the first read.

(CODEX seals reasoning `encrypted_content` with a server secret too: one store of
secrets for both is the plan at merge.)
"""

from __future__ import annotations

from cryptography.fernet import Fernet

from .appstate import ServerState

__all__ = ["compaction_key"]

COMPACTION = "compaction"


async def compaction_key(state: ServerState) -> bytes:
    """The key that seals and opens this server's compaction items."""
    configured = state.settings.compaction_secret
    if configured:
        return configured.encode()
    cached = state.secrets.get(COMPACTION)
    if cached is None:
        cached = await state.store.server_secret(COMPACTION, lambda: Fernet.generate_key().decode())
        state.secrets[COMPACTION] = cached
    return cached.encode()
