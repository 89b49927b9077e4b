"""The storage schema as SQLAlchemy Core tables.

This is the shape the Alembic migrations create; the migration files copy it
rather than import it, so that an old revision keeps describing the schema it made
even after this module moves on. A test compares the two.

Timestamps that the lock and heartbeat logic compare (`expires_at`, `updated_at`)
are float epoch seconds from the store's clock; `created_at` values are the wire's
integer seconds.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

__all__ = [
    "DEFAULT_PROJECT",
    "api_keys",
    "conversation_items",
    "conversation_locks",
    "conversations",
    "idempotency_keys",
    "metadata",
    "response_events",
    "response_input_items",
    "responses",
    "server_secrets",
    "store_owners",
    "stream_slots",
]

DEFAULT_PROJECT = "default"
"""The project of everything made without an API key (no keys configured)."""

# JSONB where PostgreSQL is the backend; JSON text elsewhere.
JSONDocument = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

responses = sa.Table(
    "responses",
    metadata,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("created_at", sa.Integer, nullable=False),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("background", sa.Boolean, nullable=False),
    # No foreign key: deleting a response must leave its successors in place, with
    # the chain broken (response_chain then answers None).
    sa.Column("previous_response_id", sa.String, nullable=True),
    sa.Column("conversation_id", sa.String, nullable=True),
    sa.Column("response", JSONDocument, nullable=False),
    sa.Column("owner", sa.String, nullable=True),
    sa.Column("updated_at", sa.Float, nullable=False),
    # Set by `request_cancel` on any process; the process running the response
    # watches it (`wait_for_cancel`) and cancels the run.
    sa.Column("cancel_requested_at", sa.Float, nullable=True),
    # The tenant: every read and write of a scoped store filters on it, so another
    # project's id is indistinguishable from a missing one.
    sa.Column("project", sa.String, nullable=False, server_default=DEFAULT_PROJECT),
    sa.Index(None, "status"),
)

response_input_items = sa.Table(
    "response_input_items",
    metadata,
    sa.Column(
        "response_id",
        sa.String,
        sa.ForeignKey("responses.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("item_id", sa.String, nullable=False),
    sa.Column("item", JSONDocument, nullable=False),
    sa.Index(None, "response_id", "item_id"),
)

response_events = sa.Table(
    "response_events",
    metadata,
    # The stream events of a background response, for `GET ?stream=true` replay:
    # `data` is the event's JSON exactly as it went out on the wire.
    sa.Column(
        "response_id",
        sa.String,
        sa.ForeignKey("responses.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("sequence_number", sa.Integer, primary_key=True),
    sa.Column("data", sa.Text, nullable=False),
)

conversations = sa.Table(
    "conversations",
    metadata,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("created_at", sa.Integer, nullable=False),
    sa.Column("metadata", JSONDocument, nullable=False),
    sa.Column("project", sa.String, nullable=False, server_default=DEFAULT_PROJECT),
)

conversation_items = sa.Table(
    "conversation_items",
    metadata,
    # One global, ever-rising sequence orders every conversation's items.
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "conversation_id",
        sa.String,
        sa.ForeignKey("conversations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("item_id", sa.String, nullable=False),
    sa.Column("item", JSONDocument, nullable=False),
    sa.UniqueConstraint("conversation_id", "item_id"),
    sa.Index(None, "conversation_id", "seq"),
    sqlite_autoincrement=True,
)

conversation_locks = sa.Table(
    "conversation_locks",
    metadata,
    sa.Column(
        "conversation_id",
        sa.String,
        sa.ForeignKey("conversations.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("holder", sa.String, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
)

store_owners = sa.Table(
    "store_owners",
    metadata,
    # One row per live store instance (normally one per server process); the row's
    # heartbeat tells fail_stale_responses which owners are still running responses.
    sa.Column("owner", sa.String, primary_key=True),
    sa.Column("expires_at", sa.Float, nullable=False),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    # Only a SHA-256 of the secret is kept; `prefix` (the secret's first characters,
    # safe to show) finds the candidate rows, the hash is compared in constant time.
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("project", sa.String, nullable=False),
    sa.Column("prefix", sa.String, nullable=False),
    sa.Column("secret_hash", sa.String, nullable=False),
    sa.Column("created_at", sa.Integer, nullable=False),
    sa.Column("last_used_at", sa.Integer, nullable=True),
    sa.Column("revoked_at", sa.Integer, nullable=True),
    sa.UniqueConstraint("name"),
    sa.Index(None, "prefix"),
)

stream_slots = sa.Table(
    "stream_slots",
    metadata,
    # One row per stream a key has open, on any replica: the concurrent-stream
    # limit counts these. A slot expires on its own if its replica dies.
    sa.Column("slot", sa.String, primary_key=True),
    sa.Column(
        "key_id", sa.String, sa.ForeignKey("api_keys.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Index(None, "key_id"),
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    # The first create request sent with a key binds it to the response it made; a
    # repeat within the retention window gets that response, never a second turn.
    # `scope` keeps one client's keys apart from another's (the API key's project).
    sa.Column("scope", sa.String, primary_key=True),
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("body_hash", sa.String, nullable=False),
    sa.Column("response_id", sa.String, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

server_secrets = sa.Table(
    "server_secrets",
    metadata,
    # Secrets every replica sharing the database must agree on (the key that seals
    # compaction items); made once by whichever process needs one first.
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
