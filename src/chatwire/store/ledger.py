"""The usage ledger's store: rows written off the hot path, in batches; daily rollups of every
row, and retention; the reports and the spend the budget counters start from.

Writing. A chat's row goes into an in-memory buffer (``add``: a list append, never a wait);
one task writes the buffer out in one multi-row INSERT every ``interval`` seconds (250 ms),
or as soon as ``batch`` rows wait. The buffer is bounded (``limit`` rows): past it a row is
dropped, counted (``dropped``) and logged once per second at most, so a database that stops
answering never holds a chat, nor the process's memory. A failed write is logged and its
rows put back (within the bound) for the next try. ``close`` (graceful shutdown) writes
what is left. A process killed outright (SIGKILL, a crash) loses the rows still in its
buffer: at most the chats that ended in the last interval (about 250 ms) before it died,
plus, while the database is unreachable, those waiting for it.

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

import asyncio
import contextlib
import logging
import operator
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Date,
    Select,
    case,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    type_coerce,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from chatwire.store.models import Dollars, UsageDayRow, UsageRollupRow, UsageRow

log = logging.getLogger("chatwire.ledger")

INTERVAL = 0.25
BATCH = 500
LIMIT = 100_000
# Parameters per SQLite statement: the limit of SQLite before 3.32 (32,766 since).
SQLITE_PARAMETERS = 999
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
By = Literal["day", "model", "provider", "token", "user"]
BY: tuple[By, ...] = ("day", "model", "provider", "token", "user")


_ROLLED_TO = select(UsageRollupRow.rolled_to).where(UsageRollupRow.id == MARK)


@dataclass(frozen=True, slots=True)
class Line:
    """One group of a report: its key (a day "YYYY-MM-DD", "provider/model", a provider, a
    token id, a user id; None where there is none: a browser session's token) and sums."""

    key: str | int | None
    requests: int
    input_tokens: int
    cached_input_tokens: int
    cache_write_tokens: int
    output_tokens: int
    reasoning_tokens: int
    cost: Decimal
    unpriced: int

    @classmethod
    def total(cls, lines: Sequence[Line]) -> Line:
        return cls(
            None,
            sum(line.requests for line in lines),
            sum(line.input_tokens for line in lines),
            sum(line.cached_input_tokens for line in lines),
            sum(line.cache_write_tokens for line in lines),
            sum(line.output_tokens for line in lines),
            sum(line.reasoning_tokens for line in lines),
            sum((line.cost for line in lines), Decimal(0)),
            sum(line.unpriced for line in lines),
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "requests": self.requests,
            "input_tokens": self.input_tokens,
            "cached_input_tokens": self.cached_input_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "output_tokens": self.output_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "cost": str(self.cost),
            "unpriced_requests": self.unpriced,
        }


class Ledger:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        interval: float = INTERVAL,
        batch: int = BATCH,
        limit: int = LIMIT,
    ) -> None:
        self._engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        self._insert_sql, self._values = _driver_insert(engine)
        self._sqlite_statements: dict[int, str] = {}
        self._sqlite_rows = max(1, SQLITE_PARAMETERS // max(1, self._insert_sql.count("?")))
        self.interval = interval
        self.batch = batch
        self.limit = limit
        self._rows: list[dict[str, Any]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        # Rows written, and rows dropped (the buffer full, or added after close).
        self.written = 0
        self.dropped = 0
        self._dropped_logged = 0.0

    # Writing.

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="chatwire ledger writer")

    def add(self, row: dict[str, Any]) -> None:
        """Queue one row (the columns of ``UsageRow``, ``id`` left out); never waits."""
        rows = self._rows
        if self._closed or len(rows) >= self.limit:
            self._drop(1)
            return
        rows.append(row)
        if len(rows) >= self.batch:
            self._wake.set()

    @property
    def waiting(self) -> int:
        return len(self._rows)

    def _drop(self, count: int) -> None:
        self.dropped += count
        now = time.monotonic()
        if now - self._dropped_logged >= 1.0:
            self._dropped_logged = now
            log.warning(
                "usage ledger: %d rows dropped so far (%d waiting, the buffer holds %d; "
                "is the database answering?)",
                self.dropped,
                len(self._rows),
                self.limit,
            )

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self._wake.wait()
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        """Write every waiting row now; on failure they wait for the next try."""
        while self._rows:
            rows, self._rows = self._rows, []
            try:
                await self._insert(rows)
            except asyncio.CancelledError:
                # Stopped while writing (a shutdown): the rows wait for the last flush.
                self._rows[:0] = rows
                raise
            except (DataError, IntegrityError):
                # A row the database refuses (a value it cannot store) must not hold up the
                # others for ever: each is written alone, and the refused ones are dropped.
                self.written += await self._one_by_one(rows)
                continue
            except Exception:
                log.warning("usage ledger: writing %d rows failed", len(rows), exc_info=True)
                room = self.limit - len(self._rows)
                kept = rows[:room] if room > 0 else []
                self._rows[:0] = kept
                if len(kept) < len(rows):
                    self._drop(len(rows) - len(kept))
                return
            self.written += len(rows)

    async def _one_by_one(self, rows: Sequence[Mapping[str, Any]]) -> int:
        written = 0
        for row in rows:
            try:
                await self._insert([row])
            except (DataError, IntegrityError) as exc:
                log.warning("usage ledger: dropped a row the database refused: %s", exc.orig)
                self._drop(1)
            else:
                written += 1
        return written

    async def _insert(self, rows: Sequence[Mapping[str, Any]]) -> None:
        # One INSERT compiled by SQLAlchemy for this engine; the rows' values converted by the
        # columns' own bind processors. Measured under callgrind at 1,000 chats/s, SQLAlchemy's
        # per-row parameter handling ("insertmanyvalues" with RETURNING) cost 213,000
        # instructions per chat, more than a tenth of a whole chat. On PostgreSQL the rows go
        # in the driver's executemany (asyncpg pipelines them, in the event loop's thread).
        # On SQLite, executemany steps the statement once per row in aiosqlite's thread,
        # taking the GIL back from the busy event loop each time: the rows go instead as
        # multi-row INSERTs of up to 999 parameters each (at 2,000 chats/s with 32 connections,
        # 504 -> 443 CPU µs per chat, against 392 with no writes at all).
        values = self._values
        async with self._engine.begin() as connection:
            if self._postgres:
                await connection.exec_driver_sql(self._insert_sql, [values(row) for row in rows])
                return
            step = self._sqlite_rows
            for start in range(0, len(rows), step):
                part = rows[start : start + step]
                flat = [value for row in part for value in values(row)]
                await connection.exec_driver_sql(self._sqlite_insert(len(part)), tuple(flat))

    def _sqlite_insert(self, count: int) -> str:
        """The INSERT of ``count`` rows (made once per count)."""
        statement = self._sqlite_statements.get(count)
        if statement is None:
            head, _, group = self._insert_sql.partition(" VALUES ")
            statement = head + " VALUES " + ", ".join([group] * count)
            self._sqlite_statements[count] = statement
        return statement

    async def close(self) -> None:
        """Stop the writer and write what is left (graceful shutdown)."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    # Rollups and retention.

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
                old = await connection.scalar(_ROLLED_TO)
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
        sums = select(*group, *_sums(UsageRow)).where(UsageRow.id > low, UsageRow.id <= high)
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
        cutoff = _start_of_day((now or datetime.now(UTC)) - timedelta(days=days))
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
            rolled = int(await connection.scalar(_ROLLED_TO) or 0)
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

    # Reading.

    async def report(
        self,
        by: By,
        since: datetime,
        until: datetime | None = None,
        user_id: int | None = None,
        token_id: int | None = None,
    ) -> list[Line]:
        """Sums by ``by`` of the chats from ``since`` to ``until`` (now), of one user or
        token when given; the groups in key order."""
        found = await self._read(by, since, until or datetime.now(UTC), user_id, token_id)
        lines = [
            Line(
                _key(by, key),
                int(requests or 0),
                int(input_tokens or 0),
                int(cached or 0),
                int(written or 0),
                int(output or 0),
                int(reasoning or 0),
                Decimal(cost or 0),
                int(unpriced or 0),
            )
            for (
                key,
                requests,
                input_tokens,
                cached,
                written,
                output,
                reasoning,
                cost,
                unpriced,
            ) in (found)
        ]
        return sorted(lines, key=lambda line: _order(line.key))

    async def spent(
        self, since: datetime, user_id: int | None = None, token_id: int | None = None
    ) -> Decimal:
        """The cost of a user's or a token's chats since ``since`` (with no end; a day past
        retention counted whole, as budget periods start on whole days)."""
        if (user_id is None) == (token_id is None):
            raise ValueError("spent() takes a user_id or a token_id")
        found = await self._read(None, since, None, user_id, token_id)
        return Decimal(found[0][6] or 0) if found else Decimal(0)

    async def _read(
        self,
        by: By | None,
        since: datetime,
        until: datetime | None,
        user_id: int | None,
        token_id: int | None,
    ) -> list[Any]:
        """The rows of the one statement that answers a report (by None: one row of totals,
        no key), read in one snapshot."""
        async with self._engine.connect() as connection:
            if self._postgres:
                # A plan for these very values, every time: the statement is prepared (and
                # cached) once per shape of range, and from its sixth run on a connection
                # PostgreSQL may keep a generic plan, which, knowing neither the watermark
                # nor the days, reads the whole days' rows through the times' index: 1.3 s
                # instead of 0.15 s for an admin's 30 days at 10 M rows (bench/ledger.py).
                await connection.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
            # Only for the planner: a bound under the watermark the statement reads itself,
            # so that PostgreSQL reaches the unrolled rows through the primary key.
            floor = int(await connection.scalar(_ROLLED_TO) or 0)
            query = self._statement(by, since, until, floor, user_id, token_id)
            return [] if query is None else list(await connection.execute(query))

    def _statement(
        self,
        by: By | None,
        since: datetime,
        until: datetime | None,
        floor: int,
        user_id: int | None = None,
        token_id: int | None = None,
    ) -> Select[Any] | None:
        """A report's one statement: its parts' sums added up by key (None: an empty range)."""
        parts = self._parts(by, since, until, floor, user_id, token_id)
        if not parts:
            return None
        both = union_all(*parts).subquery()
        # The cost as dollars on SQLite too (a sum of 10^-12 units there).
        sums: list[ColumnElement[Any]] = [
            type_coerce(func.sum(both.c[name]), Dollars())
            if name == "cost"
            else func.sum(both.c[name])
            for name in SUMS
        ]
        if by is None:
            return select(*sums)
        # A group whose rows were all taken away again (a day less the rest of it) has none.
        return select(both.c.key, *sums).group_by(both.c.key).having(sums[0] != 0)

    def _parts(
        self,
        by: By | None,
        since: datetime,
        until: datetime | None,
        floor: int,
        user_id: int | None,
        token_id: int | None,
    ) -> list[Select[Any]]:
        """The parts of a report's statement, each row counted once (the module's notes
        say why): for the whole UTC days of the range, their rollups and the rows above
        the watermark; for a day the range cuts, its rows in the range, or, when the day is
        past retention, the whole day as the whole days."""
        since = since.astimezone(UTC)
        until = None if until is None else until.astimezone(UTC)
        if until is not None and until <= since:
            return []
        rolled = select(func.coalesce(func.max(UsageRollupRow.rolled_to), 0)).scalar_subquery()
        retained = select(func.max(UsageRollupRow.retained_from)).scalar_subquery()

        def rollups(first: date, end: date | None) -> Select[Any]:
            query = self._part(UsageDayRow, by, user_id, token_id).where(UsageDayRow.day >= first)
            return query if end is None else query.where(UsageDayRow.day < end)

        def rows(
            start: datetime, end: datetime | None, *, unrolled: bool, less: bool = False
        ) -> Select[Any]:
            query = self._part(UsageRow, by, user_id, token_id, less)
            query = query.where(UsageRow.at >= start)
            if end is not None:
                query = query.where(UsageRow.at < end)
            if unrolled and self._postgres:
                query = query.where(UsageRow.id > floor, UsageRow.id > rolled)
            elif unrolled:
                # SQLite's planner, with no statistics, would rather take the range of the
                # times' index: the ids above the watermark go first, looked up one by one.
                above = select(UsageRow.id).where(UsageRow.id > floor, UsageRow.id > rolled)
                query = query.where(UsageRow.id.in_(above))
            return query

        day_of_since = _start_of_day(since)
        first = day_of_since if day_of_since == since else day_of_since + DAY
        last = None if until is None else _start_of_day(until)
        parts: list[Select[Any]] = []
        cut: list[tuple[datetime, datetime, datetime]] = []  # (day, start, end)
        if last is None or first < last:
            parts.append(rollups(first.date(), None if last is None else last.date()))
            parts.append(rows(first, last, unrolled=True))
        if since < first:
            cut.append((day_of_since, since, first if until is None else min(first, until)))
        if until is not None and last is not None and first <= last < until:
            cut.append((last, last, until))
        now = datetime.now(UTC)
        for day, start, end in cut:
            past = literal(day.date(), Date) < retained
            kept = or_(retained.is_(None), retained <= literal(day.date(), Date))
            whole = [rollups(day.date(), (day + DAY).date()), rows(day, day + DAY, unrolled=True)]
            rest = [(low, high) for low, high in ((day, start), (end, day + DAY)) if low < high]
            # Either the rows of the range (a day past retention: the whole day), or, when
            # the rest of the day holds fewer (by its time until now; a range's end is
            # mostly now, after which there are none), the whole day less those rows. The
            # same figures either way, exactly.
            if sum((_until(now, low, high) for low, high in rest), timedelta()) < _until(
                now, start, end
            ):
                parts += whole
                parts += [
                    rows(low, high, unrolled=False, less=True).where(kept) for low, high in rest
                ]
            else:
                parts += [part.where(past) for part in whole]
                parts.append(rows(start, end, unrolled=False).where(kept))
        return parts

    def _part(
        self,
        table: Any,
        by: By | None,
        user_id: int | None,
        token_id: int | None,
        less: bool = False,
    ) -> Select[Any]:
        """One part's sums of a table (the ledger's rows or the rollups), grouped ``by``,
        of one user or token when given; ``less``: to be taken away (negated)."""
        if by is None:
            query = select(*_sums(table, less))
        else:
            key = self._rows_key(by) if table is UsageRow else _group(table, by)
            query = select(key.label("key"), *_sums(table, less)).group_by(key)
        if user_id is not None:
            query = query.where(table.user_id == user_id)
        if token_id is not None:
            query = query.where(table.token_id == token_id)
        return query

    def _row_day(self) -> ColumnElement[Any]:
        """A ledger row's UTC day."""
        if self._postgres:
            return func.date(func.timezone("UTC", UsageRow.at))
        return func.date(UsageRow.at)  # SQLite keeps the UTC time as text

    def _rows_key(self, by: By) -> ColumnElement[Any]:
        return self._row_day() if by == "day" else _group(UsageRow, by)


def _group(table: Any, by: By) -> ColumnElement[Any]:
    """What a report groups a table's rows by (a rollup's day as it is; its token 0 is
    none, as a row's NULL)."""
    rollup = table is UsageDayRow
    if by == "model":
        if rollup:
            return table.provider + "/" + table.model  # type: ignore[no-any-return]
        return func.coalesce(table.provider, "") + "/" + func.coalesce(table.model, "")
    if by == "provider":
        return table.provider if rollup else func.coalesce(table.provider, "")
    if by == "token":
        return func.nullif(table.token_id, 0) if rollup else table.token_id
    if by == "user":
        return table.user_id  # type: ignore[no-any-return]
    return table.day  # type: ignore[no-any-return]


def _priced_cost() -> ColumnElement[Any]:
    return func.coalesce(UsageRow.cost, 0)


def _unpriced() -> ColumnElement[Any]:
    return case((UsageRow.cost.is_(None), 1), else_=0)


def _until(now: datetime, start: datetime, end: datetime) -> timedelta:
    """How much of [start, end) is before ``now`` (when rows may have been written)."""
    return max(timedelta(), min(end, now) - start)


def _sums(table: Any, less: bool = False) -> list[ColumnElement[Any]]:
    """The sums of a part, labelled as ``SUMS``: of the ledger's rows (each a request) or of
    rollup rows; negated with ``less``."""
    requests: ColumnElement[Any]
    if table is UsageRow:
        requests, cost, unpriced = func.count(), func.sum(_priced_cost()), func.sum(_unpriced())
    else:
        requests = func.sum(table.requests)
        cost, unpriced = func.sum(table.cost), func.sum(table.unpriced)
    tokens = [func.sum(getattr(table, name)) for name in TOKENS]
    return [
        (-column if less else column).label(name)
        for column, name in zip([requests, *tokens, cost, unpriced], SUMS, strict=True)
    ]


def _sum_query(table: Any, key: Any, cost: Any, unpriced: Any) -> Select[Any]:
    """The sums of one table by ``key`` (the shape of a report over the ledger's rows alone,
    as ``bench/ledger.py`` times it against the rollups)."""
    requests = func.count() if table is UsageRow else func.sum(table.requests)
    return select(
        key,
        requests,
        *(func.sum(getattr(table, name)) for name in TOKENS),
        func.sum(cost),
        func.sum(unpriced),
    )


def _start_of_day(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    return datetime(moment.year, moment.month, moment.day, tzinfo=UTC)


def _key(by: By, value: Any) -> str | int | None:
    if by == "day":
        return value.isoformat() if isinstance(value, date) else str(value)
    if by in ("token", "user"):
        return None if value is None else int(value)
    return str(value)


def _order(key: Any) -> tuple[int, Any]:
    return (0, "") if key is None else (1, key)


UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def moment(text: str, now: datetime | None = None) -> datetime:
    """A time as a report's bounds take it: a span back from now ("90m", "12h", "7d",
    "2w"), or an ISO date or date and time (UTC when it names no zone)."""
    now = now or datetime.now(UTC)
    text = text.strip()
    try:
        if len(text) > 1 and text[-1] in UNITS and text[:-1].isascii() and text[:-1].isdigit():
            return now - timedelta(seconds=int(text[:-1]) * UNITS[text[-1]])
        found = datetime.fromisoformat(text)
        return found.replace(tzinfo=UTC) if found.tzinfo is None else found.astimezone(UTC)
    except (ValueError, OverflowError):
        raise ValueError(
            f"'{text[:40]}' is not a time: give a span back from now (90m, 12h, 7d, 2w) "
            "or an ISO date (2026-11-01) or date and time (2026-11-01T12:00:00Z)"
        ) from None


def _driver_insert(
    engine: AsyncEngine,
) -> tuple[str, Callable[[Mapping[str, Any]], tuple[Any, ...]]]:
    """The ledger's INSERT in the engine's own SQL and parameter style, and what turns a row
    (``UsageRow``'s columns by name) into its parameters, in the statement's order, through
    each column type's bind processor for this dialect, the very one SQLAlchemy's own
    statements use (a UTC timestamp as SQLite stores it, dollars as 10^-12 units there,
    booleans as integers). The dialect's, not the generic type's: on SQLite the generic
    one left the timestamp to the driver, which wrote it in another format ("+00:00", no
    fraction at a whole second), out of order with the times SQLAlchemy compares it with,
    and turned the dollars into a float on the way."""
    table = UsageRow.__table__
    names = [column.name for column in table.columns if column.name != "id"]
    compiled = insert(UsageRow).compile(dialect=engine.dialect, column_keys=names)
    order = list(compiled.positiontup or names)
    pick = operator.itemgetter(*order)
    convert = [
        (index, processor)
        for index, name in enumerate(order)
        if (
            processor := table.c[name]
            .type.dialect_impl(engine.dialect)
            .bind_processor(engine.dialect)
        )
        is not None
    ]

    def values(row: Mapping[str, Any]) -> tuple[Any, ...]:
        found = list(pick(row))
        for index, processor in convert:
            found[index] = processor(found[index])
        return tuple(found)

    return str(compiled), values
