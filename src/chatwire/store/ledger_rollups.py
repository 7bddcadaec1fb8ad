"""The usage ledger's daily rollups of every row, and its retention.

Rollups. Every row is summed, once, into ``usage_daily`` (by UTC day, user, token,
provider and model: one row per group, added to), soon after it is written, and kept in
``usage`` for its retention period; reports over whole days read the rollups, a few rows a
day per user and model, instead of every chat. What is summed is told by one number, the
watermark ``usage_rollup.rolled_to``: every row of an id up to it is in the rollups, every
row above it is not. Why this is exact:

- The watermark moves in the transaction that adds the rows of ids (old, new] to the
  rollups, and only by it; that transaction starts with ``UPDATE usage_rollup SET
  rolled_to = new WHERE rolled_to = old``, so two processes rolling at once cannot both
  add the same rows: the second one's UPDATE waits for the first (PostgreSQL's row lock,
  SQLite's single writer), then matches no row, and it reads the new watermark again.
- A row must not appear below the watermark after the range was summed: ids are taken in
  order (a PostgreSQL sequence, cached one value at a time, as ``BIGSERIAL`` is; SQLite's
  AUTOINCREMENT, never reused), but on PostgreSQL an INSERT with a lower id may commit
  after one with a higher id is visible. So the new watermark is never above the
  *settled* id: read as ``max(id)`` right after ``LOCK TABLE usage IN SHARE MODE``, which
  waits until every transaction that inserts (ROW EXCLUSIVE) has ended and holds back new
  ones until it commits, a moment later. Every id below it then belongs to a committed row
  or to none ever, and any later INSERT takes a higher one. SQLite needs no lock: its one
  writer takes ids above every committed one and commits before another may write. The
  lock waits 2 s at most (``lock_timeout``): behind a VACUUM, the roll is skipped until
  the next. The rows' writer is off the chats' path, so holding it back costs a chat
  nothing.
- Late rows (a buffer written after an outage, whatever its times) get ids above the
  watermark: they are counted from ``usage`` until the next roll adds them to the day
  they belong to. A roll never misses a day: it goes by ids, not days, the current day
  included.
- A report is one statement, so one snapshot: the watermark, the rollups and the rows are
  read as of one moment. For each whole UTC day of its range it adds the day's rollups to
  the day's rows above the watermark (through the primary key: the rows of the last hour
  or so); a day the range cuts (``since=7d`` starts mid-day; ``until`` is now) is read
  from its rows, by their exact times, whatever the watermark, or, when the rest of the
  day is the smaller part (until now: today's rest is empty), as a whole day less the
  rows of its rest, by their exact times. Each row is counted once: in exactly one part,
  or in one and taken away in another.

Retention. ``roll`` (hourly, from every process) rolls, then marks the UTC days that ended
``days`` ago or more as past retention (``usage_rollup.retained_from``, which only rises),
then deletes their rows at or below the watermark, in batches of 5,000: rows already
summed, so a deletion changes no report and needs no lock (two processes deleting the same
rows delete them once). A late row of such a day waits for the next roll, then goes. A
report counts a day past retention whole, even the day the range cuts, as it always did
(its rows are gone, its rollups are by day): that day's rollups and rows above the
watermark, as a whole day's. ``spent`` is a report with no end (budget periods start on
whole days). The migration (0007) carried the rollups of the deleted rows over, one row per
group, and marked the days up to the last of them as past retention; every row still in
``usage`` was then above the watermark (0), to be summed by the first roll.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, case, delete, func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from chatwire.store.models import UsageDayRow, UsageRollupRow, UsageRow

log = logging.getLogger("chatwire.ledger")

ROLL_BATCH = 5000  # rows deleted per transaction past retention
ROLL_STEP = 50_000  # ledger ids summed into the rollups per transaction
LOCK_WAIT = "2s"  # PostgreSQL: the longest the rollup waits for the writers
MARK = 1  # the id of usage_rollup's one row
DAY = timedelta(days=1)
TOKENS = (
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
)
SUMS = ("requests", *TOKENS, "cost", "unpriced")

ROLLED_TO = select(UsageRollupRow.rolled_to).where(UsageRollupRow.id == MARK)


class Tables:
    """The ledger's tables on one engine, as the rollups and the reports read them."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._postgres = engine.dialect.name == "postgresql"

    def _row_day(self) -> ColumnElement[Any]:
        """A ledger row's UTC day."""
        if self._postgres:
            return func.date(func.timezone("UTC", UsageRow.at))
        return func.date(UsageRow.at)  # SQLite keeps the UTC time as text


class Rollups(Tables):
    """The rollups and retention (the module's notes say why they are exact)."""

    async def roll(self, days: float, batch: int = ROLL_BATCH, now: datetime | None = None) -> int:
        """The hourly job: sum the rows written since the last roll into the daily rollups
        (``rollup``); then, with a retention period of ``days`` (0 keeps every row), delete
        the rolled rows of the UTC days that ended ``days`` or more ago, ``batch`` rows per
        transaction. Returns how many rows were deleted."""
        await self.rollup()
        if not days:
            return 0
        return await self.retire(days, batch, now)

    async def rollup(self, step: int = ROLL_STEP) -> int:
        """Add the rows above the watermark to ``usage_daily`` and raise the watermark, at
        most ``step`` ids per transaction; returns how many rows were summed. Safe from any
        number of processes at once (see the module's notes)."""
        settled = await self._settled()
        rolled = 0
        while settled is not None:
            async with self._engine.begin() as connection:
                old = await connection.scalar(ROLLED_TO)
                if old is None or old >= settled:
                    break
                new = min(settled, old + step)
                # The watermark moves first: this UPDATE is the claim on the ids (old, new]
                # (a second process's waits for it, then matches no row and reads again).
                claimed = await connection.execute(
                    update(UsageRollupRow)
                    .where(UsageRollupRow.id == MARK, UsageRollupRow.rolled_to == old)
                    .values(rolled_to=new)
                )
                if claimed.rowcount != 1:
                    continue
                await connection.execute(self._rollup_insert(old, new))
                rows = await connection.scalar(
                    select(func.count()).where(UsageRow.id > old, UsageRow.id <= new)
                )
            rolled += int(rows or 0)
        return rolled

    async def _settled(self) -> int | None:
        """The highest ledger id that no row still being written can have: every row of an
        id up to it is committed (or never will be). None when PostgreSQL could not wait
        out the writers in time (the next roll tries again)."""
        try:
            async with self._engine.begin() as connection:
                if self._postgres:
                    # SHARE waits for the transactions that insert (ROW EXCLUSIVE) and holds
                    # new ones back until this one commits, right after the max is read.
                    await connection.execute(text(f"SET LOCAL lock_timeout = '{LOCK_WAIT}'"))
                    await connection.execute(
                        text(f"LOCK TABLE {UsageRow.__tablename__} IN SHARE MODE")
                    )
                return int(await connection.scalar(select(func.max(UsageRow.id))) or 0)
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) != "55P03":  # lock_not_available
                raise
            log.info("usage ledger: the rollup waited %s for the writers; next time", LOCK_WAIT)
            return None

    def _rollup_insert(self, low: int, high: int) -> Any:
        """INSERT ... SELECT of the sums of the rows of ids (low, high] by day and group,
        each added to its group's rollup row where there is one (ON CONFLICT DO UPDATE)."""
        group = (
            self._row_day(),
            UsageRow.user_id,
            func.coalesce(UsageRow.token_id, 0),
            func.coalesce(UsageRow.provider, ""),
            func.coalesce(UsageRow.model, ""),
        )
        sums = select(*group, *sum_columns(UsageRow)).where(UsageRow.id > low, UsageRow.id <= high)
        names = ["day", "user_id", "token_id", "provider", "model", *SUMS]
        upsert = postgresql.insert if self._postgres else sqlite.insert
        statement = upsert(UsageDayRow).from_select(names, sums.group_by(*group))
        return statement.on_conflict_do_update(
            index_elements=names[:5],
            set_={
                name: getattr(UsageDayRow, name) + getattr(statement.excluded, name)
                for name in SUMS
            },
        )

    async def retire(
        self, days: float, batch: int = ROLL_BATCH, now: datetime | None = None
    ) -> int:
        """Delete the rolled rows of the UTC days that ended ``days`` or more ago, after
        marking those days as past retention (``retained_from``); returns how many rows
        went. Idempotent: every process may do it at once."""
        cutoff = start_of_day((now or datetime.now(UTC)) - timedelta(days=days))
        mark = UsageRollupRow
        async with self._engine.begin() as connection:
            await connection.execute(
                update(mark)
                .where(
                    mark.id == MARK,
                    or_(mark.retained_from.is_(None), mark.retained_from < cutoff.date()),
                )
                .values(retained_from=cutoff.date())
            )
        async with self._engine.connect() as connection:
            rolled = int(await connection.scalar(ROLLED_TO) or 0)
        deleted = 0
        while True:
            async with self._engine.begin() as connection:
                oldest = (
                    select(UsageRow.id)
                    .where(UsageRow.at < cutoff, UsageRow.id <= rolled)
                    .order_by(UsageRow.id)
                    .limit(batch)
                    .scalar_subquery()
                )
                gone = await connection.execute(delete(UsageRow).where(UsageRow.id.in_(oldest)))
            deleted += gone.rowcount
            if gone.rowcount < batch:
                return deleted


def priced_cost() -> ColumnElement[Any]:
    return func.coalesce(UsageRow.cost, 0)


def unpriced_flag() -> ColumnElement[Any]:
    return case((UsageRow.cost.is_(None), 1), else_=0)


def sum_columns(table: Any, less: bool = False) -> list[ColumnElement[Any]]:
    """The sums of a part, labelled as ``SUMS``: of the ledger's rows (each a request) or of
    rollup rows; negated with ``less``."""
    requests: ColumnElement[Any]
    if table is UsageRow:
        requests, cost, unpriced = func.count(), func.sum(priced_cost()), func.sum(unpriced_flag())
    else:
        requests = func.sum(table.requests)
        cost, unpriced = func.sum(table.cost), func.sum(table.unpriced)
    tokens = [func.sum(getattr(table, name)) for name in TOKENS]
    return [
        (-column if less else column).label(name)
        for column, name in zip([requests, *tokens, cost, unpriced], SUMS, strict=True)
    ]


def start_of_day(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    return datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
