"""Stored replies of the Responses API: responses (id, user_id, status, body, input,
created_at), deleted with their user and once older than the retention period, and their
output items by id, response_items (id, response_id, user_id, item), deleted with them.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "responses",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("input", sa.Text(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_responses_user_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_responses"),
    )
    op.create_index("ix_responses_user_id", "responses", ["user_id"])
    op.create_index("ix_responses_created_at", "responses", ["created_at"])
    op.create_table(
        "response_items",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("response_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("item", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["response_id"],
            ["responses.id"],
            name="fk_response_items_response_id_responses",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_response_items_user_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_response_items"),
    )
    op.create_index("ix_response_items_response_id", "response_items", ["response_id"])
    op.create_index("ix_response_items_user_id", "response_items", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_response_items_user_id", table_name="response_items")
    op.drop_index("ix_response_items_response_id", table_name="response_items")
    op.drop_table("response_items")
    op.drop_index("ix_responses_created_at", table_name="responses")
    op.drop_index("ix_responses_user_id", table_name="responses")
    op.drop_table("responses")
