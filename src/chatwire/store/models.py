"""The database tables, as SQLAlchemy 2 declarative models.

``migrations/versions`` creates exactly these tables; a test compares the two. Secrets are
never stored in clear: ``api_tokens`` holds only the SHA-256 of a token, ``credentials``
and the key column of ``custom_models`` hold Fernet ciphertext (``store.crypto``).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeEngine

from chatwire.store.records import FIELD_NAME_LENGTH, MAX_FIELD_LENGTH

# Deterministic constraint names, so migrations (and SQLite batch mode) can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
USER_NAME_LENGTH = 100
TOKEN_HASH_LENGTH = 64  # sha256, hex


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp with time zone that always comes back aware, in UTC, on every backend
    (SQLite stores it without a zone and hands it back naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime: chatwire stores aware UTC timestamps only")
        return None if value is None else value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        stamp: datetime = value
        return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


def _created_at() -> Mapped[datetime]:
    return mapped_column(UTCDateTime, nullable=False, default=utcnow, server_default=func.now())


def _updated_at() -> Mapped[datetime]:
    return mapped_column(
        UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow, server_default=func.now()
    )


def _owner(*, primary_key: bool = False) -> Mapped[int]:
    return mapped_column(
        Integer,
        ForeignKey("users.id", ondelete="CASCADE"),
        nullable=False,
        primary_key=primary_key,
        index=not primary_key,
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


ROLE_LENGTH = 10


class User(Base):
    """``role``: "admin" (may use /api/admin) or "member"."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(USER_NAME_LENGTH), nullable=False, unique=True)
    created_at: Mapped[datetime] = _created_at()
    role: Mapped[str] = mapped_column(
        String(ROLE_LENGTH), nullable=False, default="member", server_default="member"
    )


class ApiToken(Base):
    """``name``: what its owner calls it ("ci-bot"), unique among the user's tokens; the
    limits' refusals name a token by it."""

    __tablename__ = "api_tokens"
    __table_args__ = (Index("ix_api_tokens_user_id_name", "user_id", "name", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = _owner()
    token_hash: Mapped[str] = mapped_column(
        String(TOKEN_HASH_LENGTH), nullable=False, unique=True, index=True
    )
    created_at: Mapped[datetime] = _created_at()
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    name: Mapped[str | None] = mapped_column(String(USER_NAME_LENGTH), nullable=True)


class PolicyRow(Base):
    """What a token, a user or the operator's default allows (``records.Policy``): the row
    of one token (``token_id``), of one user (``user_id``), or the default (``is_default``
    true; NULL elsewhere, so the unique constraint allows one default). ``models``: a JSON
    list of patterns, NULL for any model; a NULL limit is no limit."""

    __tablename__ = "policies"
    __table_args__ = (
        CheckConstraint(
            "(CASE WHEN token_id IS NULL THEN 0 ELSE 1 END)"
            " + (CASE WHEN user_id IS NULL THEN 0 ELSE 1 END)"
            " + (CASE WHEN is_default IS NULL THEN 0 ELSE 1 END) = 1",
            name="one_subject",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("api_tokens.id", ondelete="CASCADE"), nullable=True, unique=True
    )
    user_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=True, unique=True
    )
    is_default: Mapped[bool | None] = mapped_column(Boolean, nullable=True, unique=True)
    models: Mapped[str | None] = mapped_column(Text, nullable=True)
    rpm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    tpm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    parallel: Mapped[int | None] = mapped_column(Integer, nullable=True)
    budget: Mapped[Decimal | None] = mapped_column(Numeric(14, 6), nullable=True)
    budget_period: Mapped[str] = mapped_column(
        String(10), nullable=False, default="month", server_default="month"
    )
    updated_at: Mapped[datetime] = _updated_at()


class ProfileRow(Base):
    """A user's profile settings, one row per user, created on the first update. Its
    credentials (keys, endpoints, deployment ids) are rows of ``credentials``."""

    __tablename__ = "profiles"

    user_id: Mapped[int] = _owner(primary_key=True)
    use_azure_openai: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default=false()
    )
    updated_at: Mapped[datetime] = _updated_at()


class CredentialRow(Base):
    """One stored credential of a user: a field named as in chatbot-ui's profile (which
    fields exist is the store's configuration, not the schema), its value as Fernet
    ciphertext, secret or not."""

    __tablename__ = "credentials"

    user_id: Mapped[int] = _owner(primary_key=True)
    field: Mapped[str] = mapped_column(String(FIELD_NAME_LENGTH), primary_key=True)
    # Fernet ciphertext is about 4/3 of the plaintext plus ~100 bytes: sized as Text.
    value: Mapped[str] = mapped_column(Text, nullable=False)
    updated_at: Mapped[datetime] = _updated_at()


class CustomModelRow(Base):
    __tablename__ = "custom_models"
    __table_args__ = (UniqueConstraint("user_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = _owner()
    name: Mapped[str] = mapped_column(String(USER_NAME_LENGTH), nullable=False)
    model_id: Mapped[str] = mapped_column(String(MAX_FIELD_LENGTH), nullable=False)
    base_url: Mapped[str] = mapped_column(String(MAX_FIELD_LENGTH), nullable=False)
    api_key: Mapped[str] = mapped_column(Text, nullable=False)  # ciphertext
    context_length: Mapped[int] = mapped_column(
        Integer, nullable=False, default=4096, server_default="4096"
    )
    description: Mapped[str] = mapped_column(Text, nullable=False, default="", server_default="")
    created_at: Mapped[datetime] = _created_at()


RESPONSE_ID_LENGTH = 64


class ResponseRow(Base):
    """A reply of the Responses API kept for ``previous_response_id`` and its GET routes:
    the response object as sent (``body``, JSON) and every input item of its conversation
    (``input``, a JSON list), so a continuation needs this row alone. Rows older than the
    retention period are deleted (``CHATWIRE_RESPONSES_RETENTION_DAYS``)."""

    __tablename__ = "responses"

    id: Mapped[str] = mapped_column(String(RESPONSE_ID_LENGTH), primary_key=True)
    user_id: Mapped[int] = _owner()
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    input: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, nullable=False, default=utcnow, server_default=func.now(), index=True
    )


class ResponseItemRow(Base):
    """An output item of a stored response, by its id (chatwire's own, unique), for the
    ``item_reference`` inputs that name it instead of repeating it (the Vercel AI SDK sends
    its earlier replies so). Deleted with its response."""

    __tablename__ = "response_items"

    id: Mapped[str] = mapped_column(String(RESPONSE_ID_LENGTH), primary_key=True)
    response_id: Mapped[str] = mapped_column(
        String(RESPONSE_ID_LENGTH),
        ForeignKey("responses.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    )
    user_id: Mapped[int] = _owner()
    item: Mapped[str] = mapped_column(Text, nullable=False)


class WebSession(Base):
    """A browser signed in to chatwire's own pages: only the SHA-256 of its cookie is kept,
    and signing out deletes the row."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = _owner()
    token_hash: Mapped[str] = mapped_column(
        String(TOKEN_HASH_LENGTH), nullable=False, unique=True, index=True
    )
    created_at: Mapped[datetime] = _created_at()
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class WebChat(Base):
    """A conversation kept for the chat page: its messages as the page sends them (JSON)."""

    __tablename__ = "web_chats"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = _owner()
    title: Mapped[str] = mapped_column(String(USER_NAME_LENGTH * 2), nullable=False)
    model: Mapped[str] = mapped_column(String(MAX_FIELD_LENGTH), nullable=False)
    messages: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _updated_at()


# US dollars to 12 decimal places: exact for any price per million tokens given to 6 places.
DOLLAR_PLACES = 12
_PLACE = Decimal(1).scaleb(-DOLLAR_PLACES)


class Dollars(TypeDecorator[Decimal]):
    """An exact amount of US dollars: NUMERIC(24, 12) on PostgreSQL; on SQLite, whose
    numbers are floats or integers, an integer count of 10^-12 dollars, so that sums in
    SQL stay exact there too. Amounts are rounded (half to even) to 12 places."""

    impl = Numeric(24, DOLLAR_PLACES)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(24, DOLLAR_PLACES))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        exact = Decimal(value).quantize(_PLACE)
        return int(exact.scaleb(DOLLAR_PLACES)) if dialect.name == "sqlite" else exact

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return Decimal(int(value)).scaleb(-DOLLAR_PLACES)
        return Decimal(value)


# One row of the usage ledger: an integer id on SQLite (its only auto-incrementing kind).
LedgerId = BigInteger().with_variant(Integer(), "sqlite")
NAME_LENGTH = 200  # characters of a provider's or model's name kept in the ledger


class UsageRow(Base):
    """One chat (or embeddings request) that passed authentication: who, what, how it
    ended, the tokens it used and what they cost. Compact: no request bodies, no prices
    copied. ``cost`` is None when the model has no price (``priced`` false), never 0 for
    that; ``estimated``: chatwire counted the tokens, not the provider (no usage reported,
    or the reply cut before it). Each row is summed into ``usage_daily`` once (the rollup:
    ``usage_rollup.rolled_to``), and deleted once older than
    ``CHATWIRE_USAGE_RETENTION_DAYS``. On SQLite the ids are AUTOINCREMENT, never reused
    (the rollup's watermark relies on every new row's id being above every earlier one)."""

    __tablename__ = "usage"
    __table_args__ = (
        Index("ix_usage_user_id_at", "user_id", "at"),
        Index("ix_usage_token_id_at", "token_id", "at"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(LedgerId, primary_key=True, autoincrement=True)
    # When the request arrived.
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)
    request_id: Mapped[str] = mapped_column(String(64), nullable=False)
    # Not foreign keys: the accounts of a deleted user or token stay.
    user_id: Mapped[int] = mapped_column(Integer, nullable=False)
    token_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    dialect: Mapped[str] = mapped_column(String(24), nullable=False)
    provider: Mapped[str | None] = mapped_column(String(NAME_LENGTH), nullable=True)
    model: Mapped[str | None] = mapped_column(String(NAME_LENGTH), nullable=True)
    deployment: Mapped[str | None] = mapped_column(String(NAME_LENGTH), nullable=True)
    outcome: Mapped[str] = mapped_column(String(16), nullable=False)
    input_tokens: Mapped[int] = mapped_column(Integer, nullable=False)
    cached_input_tokens: Mapped[int] = mapped_column(Integer, nullable=False)
    cache_write_tokens: Mapped[int] = mapped_column(Integer, nullable=False)
    output_tokens: Mapped[int] = mapped_column(Integer, nullable=False)
    reasoning_tokens: Mapped[int] = mapped_column(Integer, nullable=False)
    estimated: Mapped[bool] = mapped_column(Boolean, nullable=False)
    cost: Mapped[Decimal | None] = mapped_column(Dollars, nullable=True)
    priced: Mapped[bool] = mapped_column(Boolean, nullable=False)
    first_byte_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    duration_ms: Mapped[int] = mapped_column(Integer, nullable=False)


class UsageDayRow(Base):
    """The daily rollups: the ledger's rows summed by UTC day, user, token, provider and
    model, one row per group (a rollup adds to it). They hold every row up to
    ``usage_rollup.rolled_to``, the ones still in ``usage`` and the ones deleted past the
    retention period alike. No NULLs, so the group is the primary key: token 0 stands for
    none (a browser session), '' for no provider or model. ``cost`` sums the priced
    requests; ``unpriced`` counts the others."""

    __tablename__ = "usage_daily"
    __table_args__ = (
        Index("ix_usage_daily_user_id_day", "user_id", "day"),
        Index("ix_usage_daily_token_id_day", "token_id", "day"),
    )

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    provider: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    model: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger, nullable=False)
    input_tokens: Mapped[int] = mapped_column(BigInteger, nullable=False)
    cached_input_tokens: Mapped[int] = mapped_column(BigInteger, nullable=False)
    cache_write_tokens: Mapped[int] = mapped_column(BigInteger, nullable=False)
    output_tokens: Mapped[int] = mapped_column(BigInteger, nullable=False)
    reasoning_tokens: Mapped[int] = mapped_column(BigInteger, nullable=False)
    cost: Mapped[Decimal] = mapped_column(Dollars, nullable=False)
    unpriced: Mapped[int] = mapped_column(BigInteger, nullable=False)


class UsageRollupRow(Base):
    """Where the rollup stands, one row (id 1): ``rolled_to``, the highest ledger id summed
    into ``usage_daily`` (every row of a lower or equal id is in it, every row of a higher
    one is not); ``retained_from``, the first UTC day whose rows are all kept (the days
    before it have passed the retention period: their rows are deleted once rolled, and a
    report counts such a day whole). See ``store.ledger``."""

    __tablename__ = "usage_rollup"
    __table_args__ = (CheckConstraint("id = 1", name="one_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    rolled_to: Mapped[int] = mapped_column(BigInteger, nullable=False)
    retained_from: Mapped[date | None] = mapped_column(Date, nullable=True)
