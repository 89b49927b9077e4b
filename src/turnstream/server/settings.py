"""Server settings: one explicit object, built by the CLI or by tests."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import platformdirs

from .limits import Limits

__all__ = [
    "FaultSettings",
    "HostedTools",
    "LockRelease",
    "PromptWarmup",
    "Settings",
    "default_db_path",
    "default_db_url",
]

LockRelease = Literal["before_terminal", "after_body"]
HostedTools = Literal["drop", "reject"]

DB_ENV = "TURNSTREAM_DB"
REASONING_SECRET_ENV = "TURNSTREAM_REASONING_SECRET"


def _reasoning_secret() -> str:
    # Without a configured secret only this process can open what it sealed; replicas
    # behind one load balancer must share TURNSTREAM_REASONING_SECRET.
    return os.environ.get(REASONING_SECRET_ENV) or secrets.token_urlsafe(32)


def default_db_path() -> Path:
    """`$TURNSTREAM_DB` (a file), else `turnstream.db` under the user's data directory."""
    env = os.environ.get(DB_ENV)
    if env and "://" not in env:
        return Path(env)
    return Path(platformdirs.user_data_dir("turnstream")) / "turnstream.db"


def default_db_url() -> str | None:
    """`$TURNSTREAM_DB` when it is a URL (`postgresql://...`, `sqlite:///...`)."""
    env = os.environ.get(DB_ENV)
    return env if env and "://" in env else None


@dataclass(slots=True)
class FaultSettings:
    """Deliberate faults, off by default, for testing clients against a bad day.

    Each rate is a probability per `POST /v1/responses`, decided before any work.
    """

    rate_limit: float = 0.0
    """Answer 429 `rate_limit_exceeded` with `retry-after-ms`."""
    unavailable: float = 0.0
    """Answer 503 `server_error`."""
    conversation_locked: float = 0.0
    """Answer 400 `conversation_locked` as if another request held the conversation."""
    retry_after_ms: int = 20
    seed: int | None = None

    @property
    def enabled(self) -> bool:
        return any((self.rate_limit, self.unavailable, self.conversation_locked))


@dataclass(frozen=True, slots=True)
class PromptWarmup:
    """A prompt prefix the embedded model evaluates at load, so the first request that
    starts with it is fast. Byte-identical to what the clients send, or it is wasted."""

    instructions: str | None = None
    tools: Sequence[Mapping[str, Any]] = ()


@dataclass(slots=True)
class Settings:
    db_path: Path = field(default_factory=default_db_path)
    db_url: str | None = field(default_factory=default_db_url)
    """A database URL, used instead of `db_path` when set:
    `postgresql://USER@HOST:PORT/DB` for replicas sharing PostgreSQL."""
    db_pool_size: int = 10
    """PostgreSQL: the most connections this process keeps open."""
    lease_ttl: float = 30.0
    """Seconds a conversation lease lives without a heartbeat (a crashed holder's
    conversation frees itself after this)."""
    event_ttl: float = 600.0
    """Seconds a background response's stored events stay resumable after it ends
    (ten minutes, as on OpenAI); a sweep then deletes them."""
    lock_release: LockRelease = "before_terminal"
    """`before_terminal`: persist, release the lock, then write the terminal event (the
    race-free default). `after_body`: OpenAI's hosted behaviour, release only after the
    body has closed and `lock_release_delay` has passed, to test clients against it."""
    lock_release_delay: float = 1.0
    keepalive_interval: float = 15.0
    first_delta_wait: float = 2.0
    """How long a stream waits for the model's first delta before sending headers, so
    that a provider failure in that window (an upstream 429) is still a plain HTTP
    error the client can retry. A provider that reports its upstream started (the
    Chat Completions bridge, at the upstream's first chunk) ends the wait sooner."""
    faults: FaultSettings = field(default_factory=FaultSettings)
    config_path: Path | None = None
    """A TOML model configuration (the format is in `turnstream.server.config`)."""
    enable_local_model: bool = True
    local_slots: int = 2
    """Conversations the embedded model generates for at once (llama.cpp's parallel
    slots, each with the full context); more requests wait, shown `queued`."""
    local_threads: int | None = None
    """CPU threads the embedded model computes with (None: the usable CPUs, at most 8);
    fewer than the cores suit a machine that is busy with other work."""
    local_preload: tuple[str, ...] | None = None
    """The embedded models loaded at start-up (None: all of them); the others load on
    their first request. The terminal chat preloads only its own model, so that the
    other one's load does not compete with its first turns for the cores."""
    local_warmup: PromptWarmup | None = None
    """What the embedded model warms its prompt cache with; the CLI sets the chat
    apps' instructions and tools here (the server does not know its clients)."""
    instance_id: str | None = None
    hosted_tools: HostedTools = "drop"
    """What to do with hosted tools (`web_search`, ...) this server cannot run:
    `drop` leaves them out and names them in a response header; `reject` is a 400."""
    reasoning_secret: str = field(default_factory=_reasoning_secret, repr=False)
    """Seals reasoning into `encrypted_content` for `store: false` clients; every
    replica must have the same one (`$TURNSTREAM_REASONING_SECRET`)."""
    log_content: bool = False
    """Put prompt and output text in the per-request log line (off: ids, sizes and
    timings only, so logs hold no user content)."""
    require_auth: bool = False
    """Refuse every request without a valid key even while no key exists (set when
    serving beyond loopback, so revoking the last key cannot open the server)."""
    auth_cache_ttl: float = 2.0
    """Seconds a key check is reused: a revoked key works at most this long after."""
    limits: Limits = field(default_factory=Limits)
    cors_origin: str | None = None
    """The one origin whose browsers may call the API cross-site (CORS is off without)."""
    idempotency_retention: float = 24 * 3600.0
    """Seconds an `Idempotency-Key` stays bound to the response it made."""
    compaction_secret: str | None = None
    """The Fernet key that seals compaction items; unset, one is kept in the
    database (shared by every replica)."""
    websocket_max_seconds: float = 3600.0
    """How long a WebSocket connection on `/v1/responses` may stay open (OpenAI closes
    them after 60 minutes, with `websocket_connection_limit_reached`)."""

    @property
    def database(self) -> str | Path:
        """What the store opens: `db_url` if set, else the SQLite file `db_path`."""
        return self.db_url or self.db_path
