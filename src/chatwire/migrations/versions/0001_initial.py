"""Initial schema: users, api_tokens, profiles, custom_models.

Revision ID: 0001
Revises:
Create Date: 2025-11-25
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.schema import SchemaItem

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of records.PROFILE_TEXT_FIELDS as of this revision, in chatbot-ui's order,
# with whether the column holds ciphertext (the *_api_key ones).
PROFILE_COLUMNS: tuple[tuple[str, bool], ...] = (
    ("openai_api_key", True),
    ("openai_organization_id", False),
    ("anthropic_api_key", True),
    ("google_gemini_api_key", True),
    ("mistral_api_key", True),
    ("groq_api_key", True),
    ("perplexity_api_key", True),
    ("openrouter_api_key", True),
    ("azure_openai_api_key", True),
    ("azure_openai_endpoint", False),
    ("azure_openai_35_turbo_id", False),
    ("azure_openai_45_turbo_id", False),
    ("azure_openai_45_vision_id", False),
    ("azure_openai_embeddings_id", False),
)


def _created_at() -> sa.Column[datetime]:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
    )


def _owner(table: str) -> list[SchemaItem]:
    return [
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=f"fk_{table}_user_id_users", ondelete="CASCADE"
        ),
    ]


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("name", name="uq_users_name"),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        *_owner("api_tokens"),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        _created_at(),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_tokens"),
    )
    op.create_index("ix_api_tokens_user_id", "api_tokens", ["user_id"])
    op.create_index("ix_api_tokens_token_hash", "api_tokens", ["token_hash"], unique=True)

    op.create_table(
        "profiles",
        *_owner("profiles"),
        *(
            sa.Column(name, sa.Text() if secret else sa.String(length=1000), nullable=True)
            for name, secret in PROFILE_COLUMNS
        ),
        sa.Column("use_azure_openai", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("user_id", name="pk_profiles"),
    )

    op.create_table(
        "custom_models",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        *_owner("custom_models"),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("model_id", sa.String(length=1000), nullable=False),
        sa.Column("base_url", sa.String(length=1000), nullable=False),
        sa.Column("api_key", sa.Text(), nullable=False),
        sa.Column("context_length", sa.Integer(), server_default="4096", nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name="pk_custom_models"),
        sa.UniqueConstraint("user_id", "name", name="uq_custom_models_user_id_name"),
    )
    op.create_index("ix_custom_models_user_id", "custom_models", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_custom_models_user_id", table_name="custom_models")
    op.drop_table("custom_models")
    op.drop_table("profiles")
    op.drop_index("ix_api_tokens_token_hash", table_name="api_tokens")
    op.drop_index("ix_api_tokens_user_id", table_name="api_tokens")
    op.drop_table("api_tokens")
    op.drop_table("users")
