"""Roles, token names and policies: users.role (the existing user of the lowest id becomes
the admin), api_tokens.name (unique per user), and the policies table (one row per token,
per user, and the operator's default).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_users = sa.table("users", sa.column("id"), sa.column("role"))


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column("role", sa.String(length=10), server_default="member", nullable=False)
        )
    first = sa.select(sa.func.min(_users.c.id)).scalar_subquery()
    op.execute(sa.update(_users).where(_users.c.id == first).values(role="admin"))
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("name", sa.String(length=100), nullable=True))
    op.create_index("ix_api_tokens_user_id_name", "api_tokens", ["user_id", "name"], unique=True)
    op.create_table(
        "policies",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("is_default", sa.Boolean(), nullable=True),
        sa.Column("models", sa.Text(), nullable=True),
        sa.Column("rpm", sa.Integer(), nullable=True),
        sa.Column("tpm", sa.Integer(), nullable=True),
        sa.Column("parallel", sa.Integer(), nullable=True),
        sa.Column("budget", sa.Numeric(precision=14, scale=6), nullable=True),
        sa.Column("budget_period", sa.String(length=10), server_default="month", nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "(CASE WHEN token_id IS NULL THEN 0 ELSE 1 END)"
            " + (CASE WHEN user_id IS NULL THEN 0 ELSE 1 END)"
            " + (CASE WHEN is_default IS NULL THEN 0 ELSE 1 END) = 1",
            name="ck_policies_one_subject",
        ),
        sa.ForeignKeyConstraint(
            ["token_id"],
            ["api_tokens.id"],
            name="fk_policies_token_id_api_tokens",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_policies_user_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_policies"),
        sa.UniqueConstraint("token_id", name="uq_policies_token_id"),
        sa.UniqueConstraint("user_id", name="uq_policies_user_id"),
        sa.UniqueConstraint("is_default", name="uq_policies_is_default"),
    )


def downgrade() -> None:
    op.drop_table("policies")
    op.drop_index("ix_api_tokens_user_id_name", table_name="api_tokens")
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("name")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("role")
