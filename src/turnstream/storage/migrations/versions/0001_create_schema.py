"""Create the schema: responses, conversations, their items, locks and owners.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

JSONDocument = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "responses",
        sa.Column("id", sa.String, nullable=False),
        sa.Column("created_at", sa.Integer, nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("background", sa.Boolean, nullable=False),
        sa.Column("previous_response_id", sa.String, nullable=True),
        sa.Column("conversation_id", sa.String, nullable=True),
        sa.Column("response", JSONDocument, nullable=False),
        sa.Column("owner", sa.String, nullable=True),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_responses"),
    )
    op.create_index("ix_responses_status", "responses", ["status"])

    op.create_table(
        "response_input_items",
        sa.Column("response_id", sa.String, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("item_id", sa.String, nullable=False),
        sa.Column("item", JSONDocument, nullable=False),
        sa.ForeignKeyConstraint(
            ["response_id"],
            ["responses.id"],
            name="fk_response_input_items_response_id_responses",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("response_id", "position", name="pk_response_input_items"),
    )
    op.create_index(
        "ix_response_input_items_response_id_item_id",
        "response_input_items",
        ["response_id", "item_id"],
    )

    op.create_table(
        "conversations",
        sa.Column("id", sa.String, nullable=False),
        sa.Column("created_at", sa.Integer, nullable=False),
        sa.Column("metadata", JSONDocument, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_conversations"),
    )

    op.create_table(
        "conversation_items",
        sa.Column("seq", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("conversation_id", sa.String, nullable=False),
        sa.Column("item_id", sa.String, nullable=False),
        sa.Column("item", JSONDocument, nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name="fk_conversation_items_conversation_id_conversations",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("seq", name="pk_conversation_items"),
        sa.UniqueConstraint(
            "conversation_id", "item_id", name="uq_conversation_items_conversation_id_item_id"
        ),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_conversation_items_conversation_id_seq",
        "conversation_items",
        ["conversation_id", "seq"],
    )

    op.create_table(
        "conversation_locks",
        sa.Column("conversation_id", sa.String, nullable=False),
        sa.Column("holder", sa.String, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name="fk_conversation_locks_conversation_id_conversations",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("conversation_id", name="pk_conversation_locks"),
    )

    op.create_table(
        "store_owners",
        sa.Column("owner", sa.String, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("owner", name="pk_store_owners"),
    )


def downgrade() -> None:
    op.drop_table("store_owners")
    op.drop_table("conversation_locks")
    op.drop_index("ix_conversation_items_conversation_id_seq", "conversation_items")
    op.drop_table("conversation_items")
    op.drop_table("conversations")
    op.drop_index("ix_response_input_items_response_id_item_id", "response_input_items")
    op.drop_table("response_input_items")
    op.drop_index("ix_responses_status", "responses")
    op.drop_table("responses")
