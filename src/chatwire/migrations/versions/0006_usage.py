"""The usage ledger: one row per chat (usage) and the daily rollups of old rows (usage_daily).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As store.models: an integer id on SQLite, exact dollars (10^-12 units on SQLite).
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
DOLLARS = sa.Numeric(24, 12).with_variant(sa.BigInteger(), "sqlite")


def _tokens(kind: sa.types.TypeEngine[int]) -> list[sa.Column[int]]:
    return [
        sa.Column(name, kind, nullable=False)
        for name in (
            "input_tokens",
            "cached_input_tokens",
            "cache_write_tokens",
            "output_tokens",
            "reasoning_tokens",
        )
    ]


def upgrade() -> None:
    op.create_table(
        "usage",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=True),
        sa.Column("dialect", sa.String(length=24), nullable=False),
        sa.Column("provider", sa.String(length=200), nullable=True),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("deployment", sa.String(length=200), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        *_tokens(sa.Integer()),
        sa.Column("estimated", sa.Boolean(), nullable=False),
        sa.Column("cost", DOLLARS, nullable=True),
        sa.Column("priced", sa.Boolean(), nullable=False),
        sa.Column("first_byte_ms", sa.Integer(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_usage"),
    )
    op.create_index("ix_usage_at", "usage", ["at"])
    op.create_index("ix_usage_user_id_at", "usage", ["user_id", "at"])
    op.create_index("ix_usage_token_id_at", "usage", ["token_id", "at"])
    op.create_table(
        "usage_daily",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=True),
        sa.Column("provider", sa.String(length=200), nullable=True),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("requests", sa.Integer(), nullable=False),
        *_tokens(sa.BigInteger()),
        sa.Column("cost", DOLLARS, nullable=False),
        sa.Column("unpriced", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_usage_daily"),
    )
    op.create_index("ix_usage_daily_day", "usage_daily", ["day"])
    op.create_index("ix_usage_daily_user_id_day", "usage_daily", ["user_id", "day"])
    op.create_index("ix_usage_daily_token_id_day", "usage_daily", ["token_id", "day"])


def downgrade() -> None:
    for name in ("ix_usage_daily_token_id_day", "ix_usage_daily_user_id_day", "ix_usage_daily_day"):
        op.drop_index(name, table_name="usage_daily")
    op.drop_table("usage_daily")
    for name in ("ix_usage_token_id_at", "ix_usage_user_id_at", "ix_usage_at"):
        op.drop_index(name, table_name="usage")
    op.drop_table("usage")
