"""Daily rollups of every usage row: usage_daily becomes one row per group (day, user, token,
provider, model; no NULLs: token 0 for none, '' for no provider or model), its rows of
several rolls summed into one; usage_rollup keeps the watermark (rolled_to: 0, no row in
usage rolled yet) and the first day within retention (the day after the last one that
usage_daily holds: the days it holds were past retention); on SQLite, usage's ids become
AUTOINCREMENT (never reused), as the watermark needs, and its times are rewritten in the
one format that SQLAlchemy compares them in.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As store.models: exact dollars (10^-12 units on SQLite).
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
DOLLARS = sa.Numeric(24, 12).with_variant(sa.BigInteger(), "sqlite")
TOKENS = (
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
)
SUMS = ("requests", *TOKENS, "cost", "unpriced")
GROUP = ("day", "user_id", "token_id", "provider", "model")
INDEXES = {
    "ix_usage_daily_user_id_day": ["user_id", "day"],
    "ix_usage_daily_token_id_day": ["token_id", "day"],
}


def _daily(name: str) -> sa.TableClause:
    return sa.table(name, *(sa.column(column) for column in (*GROUP, *SUMS)))


def _sums(table: sa.TableClause | sa.Subquery) -> list[sa.ColumnElement[Any]]:
    return [sa.func.sum(table.c[name]).label(name) for name in SUMS]


def _copy(source: sa.TableClause, target: sa.TableClause) -> None:
    op.execute(
        target.insert().from_select(
            [*GROUP, *SUMS], sa.select(*(source.c[name] for name in (*GROUP, *SUMS)))
        )
    )


def _usage_autoincrement(on: bool) -> None:
    if op.get_bind().dialect.name == "sqlite":
        # A copy of the table, its rows and indexes (SQLite cannot alter a column).
        with op.batch_alter_table(
            "usage", recreate="always", table_kwargs={"sqlite_autoincrement": on}
        ):
            pass


def _usage_times() -> None:
    """SQLite: the times the ledger's writer stored in the driver's format ('2026-11-23
    00:00:00+00:00', '2026-11-23 01:02:03.000005+00:00') rewritten in SQLAlchemy's
    ('2026-11-23 00:00:00.000000'), the one its statements compare them with: as text, a
    row at a whole second sorted before that very time."""
    if op.get_bind().dialect.name != "sqlite":
        return
    usage = sa.table("usage", sa.column("at", sa.Text()))
    op.execute(
        sa.update(usage)
        .where(usage.c.at.like("%+00:00"))
        .values(
            at=sa.case(
                (
                    sa.func.length(usage.c.at) == 25,
                    sa.func.substr(usage.c.at, 1, 19).concat(".000000"),
                ),
                else_=sa.func.substr(usage.c.at, 1, 26),
            )
        )
    )


def upgrade() -> None:
    _usage_autoincrement(True)
    _usage_times()
    old = _daily("usage_daily")
    last = op.get_bind().scalar(sa.select(sa.func.max(old.c.day)))
    grouped = (
        old.c.day,
        old.c.user_id,
        sa.func.coalesce(old.c.token_id, 0),
        sa.func.coalesce(old.c.provider, ""),
        sa.func.coalesce(old.c.model, ""),
    )
    # The old rows summed by group, aside; the table made anew with its primary key.
    aside = _daily("usage_daily_carried")
    op.create_table("usage_daily_carried", *_columns(primary_key=False))
    op.execute(
        aside.insert().from_select(
            [*GROUP, *SUMS],
            sa.select(*grouped, *_sums(old)).group_by(*grouped),
        )
    )
    for name in ("ix_usage_daily_token_id_day", "ix_usage_daily_user_id_day", "ix_usage_daily_day"):
        op.drop_index(name, table_name="usage_daily")
    op.drop_table("usage_daily")
    _create_daily(primary_key=True)
    _copy(aside, _daily("usage_daily"))
    op.drop_table("usage_daily_carried")
    rollup = op.create_table(
        "usage_rollup",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("rolled_to", sa.BigInteger(), nullable=False),
        sa.Column("retained_from", sa.Date(), nullable=True),
        sa.CheckConstraint("id = 1", name="ck_usage_rollup_one_row"),
        sa.PrimaryKeyConstraint("id", name="pk_usage_rollup"),
    )
    if isinstance(last, str):  # SQLite's text
        last = date.fromisoformat(last)
    op.bulk_insert(
        rollup,
        [{"id": 1, "rolled_to": 0, "retained_from": None if last is None else last + timedelta(1)}],
    )


def _columns(*, primary_key: bool) -> list[Any]:
    keys = [
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=200), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
    ]
    sums = [sa.Column(name, sa.BigInteger(), nullable=False) for name in ("requests", *TOKENS)]
    rest = [
        sa.Column("cost", DOLLARS, nullable=False),
        sa.Column("unpriced", sa.BigInteger(), nullable=False),
    ]
    columns: list[Any] = [*keys, *sums, *rest]
    if primary_key:
        columns.append(sa.PrimaryKeyConstraint(*GROUP, name="pk_usage_daily"))
    return columns


def _create_daily(*, primary_key: bool) -> None:
    op.create_table("usage_daily", *_columns(primary_key=primary_key))
    for name, columns in INDEXES.items():
        op.create_index(name, "usage_daily", columns)


def downgrade() -> None:
    # Back to the sums of the deleted rows only: the rollups less the rows still in usage
    # that they hold (ids up to the watermark), the groups left with no request dropped.
    bind = op.get_bind()
    rolled = bind.scalar(sa.text("SELECT rolled_to FROM usage_rollup WHERE id = 1")) or 0
    usage = sa.table(
        "usage",
        sa.column("id"),
        sa.column("at"),
        *(sa.column(name) for name in ("user_id", "token_id", "provider", "model", "cost")),
        *(sa.column(name) for name in TOKENS),
    )
    if bind.dialect.name == "postgresql":
        day = sa.func.date(sa.func.timezone("UTC", usage.c.at))
    else:
        day = sa.func.date(usage.c.at)
    kept = sa.select(
        day.label("day"),
        usage.c.user_id,
        sa.func.coalesce(usage.c.token_id, 0).label("token_id"),
        sa.func.coalesce(usage.c.provider, "").label("provider"),
        sa.func.coalesce(usage.c.model, "").label("model"),
        sa.literal(-1).label("requests"),
        *(-usage.c[name] for name in TOKENS),
        (-sa.func.coalesce(usage.c.cost, 0)).label("cost"),
        (-sa.case((usage.c.cost.is_(None), 1), else_=0)).label("unpriced"),
    ).where(usage.c.id <= rolled)
    new = _daily("usage_daily")
    both = sa.union_all(sa.select(*(new.c[name] for name in (*GROUP, *SUMS))), kept).subquery()
    group = [both.c[name] for name in GROUP]
    op.create_table("usage_daily_carried", *_columns(primary_key=False))
    aside = _daily("usage_daily_carried")
    op.execute(
        aside.insert().from_select(
            [*GROUP, *SUMS],
            sa.select(*group, *_sums(both))
            .group_by(*group)
            .having(sa.func.sum(both.c.requests) != 0),
        )
    )
    op.drop_table("usage_rollup")
    for name in INDEXES:
        op.drop_index(name, table_name="usage_daily")
    op.drop_table("usage_daily")
    op.create_table(
        "usage_daily",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=True),
        sa.Column("provider", sa.String(length=200), nullable=True),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("requests", sa.Integer(), nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in TOKENS),
        sa.Column("cost", DOLLARS, nullable=False),
        sa.Column("unpriced", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_usage_daily"),
    )
    op.create_index("ix_usage_daily_day", "usage_daily", ["day"])
    for name, columns in INDEXES.items():
        op.create_index(name, "usage_daily", columns)
    old = _daily("usage_daily")
    op.execute(
        old.insert().from_select(
            [*GROUP, *SUMS],
            sa.select(
                aside.c.day,
                aside.c.user_id,
                sa.func.nullif(aside.c.token_id, 0),
                sa.func.nullif(aside.c.provider, ""),
                sa.func.nullif(aside.c.model, ""),
                *(aside.c[name] for name in SUMS),
            ),
        )
    )
    op.drop_table("usage_daily_carried")
    _usage_autoincrement(False)
