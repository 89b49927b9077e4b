"""API keys, the project (tenant) of responses and conversations, stream slots.

Revision ID: 0004_keys
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004_keys"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # Existing rows were made before keys existed: they belong to `default`.
    op.add_column(
        "responses", sa.Column("project", sa.String, nullable=False, server_default="default")
    )
    op.add_column(
        "conversations",
        sa.Column("project", sa.String, nullable=False, server_default="default"),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String, nullable=False),
        sa.Column("name", sa.String, nullable=False),
        sa.Column("project", sa.String, nullable=False),
        sa.Column("prefix", sa.String, nullable=False),
        sa.Column("secret_hash", sa.String, nullable=False),
        sa.Column("created_at", sa.Integer, nullable=False),
        sa.Column("last_used_at", sa.Integer, nullable=True),
        sa.Column("revoked_at", sa.Integer, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("name", name="uq_api_keys_name"),
    )
    op.create_index("ix_api_keys_prefix", "api_keys", ["prefix"])
    op.create_table(
        "stream_slots",
        sa.Column("slot", sa.String, nullable=False),
        sa.Column("key_id", sa.String, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.ForeignKeyConstraint(
            ["key_id"],
            ["api_keys.id"],
            name="fk_stream_slots_key_id_api_keys",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("slot", name="pk_stream_slots"),
    )
    op.create_index("ix_stream_slots_key_id", "stream_slots", ["key_id"])


def downgrade() -> None:
    op.drop_index("ix_stream_slots_key_id", "stream_slots")
    op.drop_table("stream_slots")
    op.drop_index("ix_api_keys_prefix", "api_keys")
    op.drop_table("api_keys")
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("project")
    with op.batch_alter_table("responses") as batch:
        batch.drop_column("project")
