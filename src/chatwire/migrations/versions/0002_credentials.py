"""Credentials become rows: credentials (user_id, field, value), every value Fernet ciphertext.

The profile columns of 0001 move to one row per stored value, so a provider's new field
needs no migration. The *_api_key columns already hold ciphertext and are copied as they
are; the settings kept in clear (organization id, Azure endpoint and deployment ids) are
encrypted on the way, which needs the secret key: ``chatwire.store.db.upgrade(url, keybox)``
passes it (``chatwire db upgrade`` and ``chatwire serve`` do). The downgrade copies the
fields 0001 knew back into their columns (decrypting the settings); rows of any other
field are dropped with the table.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from alembic import context, op

if TYPE_CHECKING:
    from chatwire.store.crypto import KeyBox

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of 0001's PROFILE_COLUMNS: each column, and whether it holds ciphertext.
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
ENCRYPTED = dict(PROFILE_COLUMNS)

# Untyped columns: values pass through as each driver gives them (timestamps included).
_profiles = sa.table(
    "profiles",
    sa.column("user_id"),
    sa.column("updated_at"),
    *(sa.column(name) for name, _ in PROFILE_COLUMNS),
)
_credentials = sa.table(
    "credentials",
    sa.column("user_id"),
    sa.column("field"),
    sa.column("value"),
    sa.column("updated_at"),
)


def _keybox(direction: str) -> KeyBox:
    keybox: KeyBox | None = context.config.attributes.get("keybox")
    if keybox is None:
        raise RuntimeError(
            f"migration 0002 ({direction}) re-encodes stored profile settings and needs the "
            "secret key: run it with chatwire db upgrade, or chatwire.store.db.upgrade(url, "
            "keybox). Nothing was changed."
        )
    return keybox


def upgrade() -> None:
    connection = op.get_bind()
    # Everything that can fail (no key) happens before the schema changes: SQLite's DDL is
    # not transactional.
    old = connection.execute(sa.select(_profiles)).mappings().all()
    clear = any(row[name] for row in old for name, encrypted in PROFILE_COLUMNS if not encrypted)
    keybox = _keybox("upgrade") if clear else None
    rows: list[dict[str, Any]] = []
    for row in old:
        for name, encrypted in PROFILE_COLUMNS:
            value = row[name]
            if not value:  # None, or an empty string: both read as "not set"
                continue
            if not encrypted:
                assert keybox is not None
                value = keybox.encrypt(value)
            rows.append(
                {
                    "user_id": row["user_id"],
                    "field": name,
                    "value": value,
                    "updated_at": row["updated_at"],
                }
            )

    op.create_table(
        "credentials",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("field", sa.String(length=100), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_credentials_user_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "field", name="pk_credentials"),
    )
    if rows:
        connection.execute(sa.insert(_credentials), rows)
    with op.batch_alter_table("profiles") as batch:
        for name, _ in PROFILE_COLUMNS:
            batch.drop_column(name)


def downgrade() -> None:
    connection = op.get_bind()
    found = (
        connection.execute(sa.select(_credentials).where(_credentials.c.field.in_(list(ENCRYPTED))))
        .mappings()
        .all()
    )
    keybox = _keybox("downgrade") if any(not ENCRYPTED[row["field"]] for row in found) else None
    columns: dict[Any, dict[str, Any]] = {}
    for row in found:
        value = row["value"]
        if not ENCRYPTED[row["field"]]:
            assert keybox is not None
            value = keybox.decrypt(value)
        columns.setdefault(row["user_id"], {})[row["field"]] = value
    have_profile = set(connection.execute(sa.select(_profiles.c.user_id)).scalars())

    with op.batch_alter_table("profiles") as batch:
        for name, encrypted in PROFILE_COLUMNS:
            batch.add_column(
                sa.Column(name, sa.Text() if encrypted else sa.String(length=1000), nullable=True)
            )
    for user_id, values in columns.items():
        if user_id in have_profile:
            connection.execute(
                sa.update(_profiles).where(_profiles.c.user_id == user_id).values(**values)
            )
        else:  # credentials written without a profile row: 0001 kept them only in one
            connection.execute(sa.insert(_profiles).values(user_id=user_id, **values))
    op.drop_table("credentials")
