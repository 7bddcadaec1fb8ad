"""The usage ledger's store: rows written off the hot path, in batches; daily rollups of old
rows; the reports and the spend the budget counters start from.

Writing. A chat's row goes into an in-memory buffer (``add``: a list append, never a wait);
one task writes the buffer out in one multi-row INSERT every ``interval`` seconds (250 ms),
or as soon as ``batch`` rows wait. The buffer is bounded (``limit`` rows): past it a row is
dropped, counted (``dropped``) and logged once per second at most, so a database that stops
answering never holds a chat, nor the process's memory. A failed write is logged and its
rows put back (within the bound) for the next try. ``close`` (graceful shutdown) writes
what is left. A process killed outright (SIGKILL, a crash) loses the rows still in its
buffer: at most the chats that ended in the last interval (about 250 ms) before it died,
plus, while the database is unreachable, those waiting for it.

Retention. ``roll`` moves the rows older than a number of whole UTC days into
``usage_daily`` (sums by day, user, token, provider and model) and deletes them, batch by
batch, each batch in one transaction: the rows are deleted with ``RETURNING`` and their sums
written in the same transaction, so each row is counted once however many processes roll at
the same time (a second process's DELETE finds the rows gone and adds nothing).

Reading. ``report`` and ``spent`` add the rollups to the rows: a row lives in exactly one of
the two tables. Before the retention boundary a report counts whole UTC days (the rollups
keep no finer time).
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

from sqlalchemy import ColumnElement, Select, case, delete, func, insert, select
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from chatwire.store.models import UsageDayRow, UsageRow

log = logging.getLogger("chatwire.ledger")

INTERVAL = 0.25
BATCH = 500
LIMIT = 100_000
# Parameters per SQLite statement: the limit of SQLite before 3.32 (32,766 since).
SQLITE_PARAMETERS = 999
ROLL_BATCH = 5000
TOKENS = (
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
)
By = Literal["day", "model", "provider", "token", "user"]
BY: tuple[By, ...] = ("day", "model", "provider", "token", "user")


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

    # Retention.

    async def roll(self, days: float, batch: int = ROLL_BATCH, now: datetime | None = None) -> int:
        """Move the rows of the UTC days that ended ``days`` or more ago into the daily
        rollups; returns how many rows went."""
        cutoff = _start_of_day((now or datetime.now(UTC)) - timedelta(days=days))
        moved = 0
        while True:
            async with self._engine.begin() as connection:
                oldest = (
                    select(UsageRow.id)
                    .where(UsageRow.at < cutoff)
                    .order_by(UsageRow.id)
                    .limit(batch)
                    .scalar_subquery()
                )
                gone = await connection.execute(
                    delete(UsageRow)
                    .where(UsageRow.id.in_(oldest))
                    .returning(
                        UsageRow.at,
                        UsageRow.user_id,
                        UsageRow.token_id,
                        UsageRow.provider,
                        UsageRow.model,
                        UsageRow.cost,
                        *(getattr(UsageRow, name) for name in TOKENS),
                    )
                )
                rows = gone.all()
                sums = _sums(rows)
                if sums:
                    await connection.execute(insert(UsageDayRow).values(sums))
            moved += len(rows)
            if len(rows) < batch:
                return moved

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
        until = until or datetime.now(UTC)
        rows_key = self._rows_key(by)
        days_key = _group(UsageDayRow, by)
        rows = (
            _sum_query(UsageRow, rows_key, _priced_cost(), _unpriced())
            .where(UsageRow.at >= since, UsageRow.at < until)
            .group_by(rows_key)
        )
        days = (
            _sum_query(UsageDayRow, days_key, UsageDayRow.cost, UsageDayRow.unpriced)
            .where(*_day_range(since, until))
            .group_by(days_key)
        )
        for column, value in (("user_id", user_id), ("token_id", token_id)):
            if value is not None:
                rows = rows.where(getattr(UsageRow, column) == value)
                days = days.where(getattr(UsageDayRow, column) == value)
        merged: dict[Any, list[Any]] = {}
        async with self._engine.connect() as connection:
            for query in (days, rows):
                for found in await connection.execute(query):
                    key = _key(by, found[0])
                    # requests, the five token counts, cost, unpriced requests
                    sums = merged.setdefault(key, [0] * 6 + [Decimal(0), 0])
                    for i in range(6):
                        sums[i] += int(found[i + 1] or 0)
                    sums[6] += Decimal(found[7] or 0)
                    sums[7] += int(found[8] or 0)
        return [
            Line(key, *sums)
            for key, sums in sorted(merged.items(), key=lambda item: _order(item[0]))
        ]

    async def spent(
        self, since: datetime, user_id: int | None = None, token_id: int | None = None
    ) -> Decimal:
        """The cost of a user's or a token's chats since ``since`` (rollups and rows; the
        rollups by whole UTC days, as budget periods start)."""
        if (user_id is None) == (token_id is None):
            raise ValueError("spent() takes a user_id or a token_id")
        rows = select(func.sum(UsageRow.cost)).where(UsageRow.at >= since)
        days = select(func.sum(UsageDayRow.cost)).where(UsageDayRow.day >= since.date())
        if user_id is not None:
            rows = rows.where(UsageRow.user_id == user_id)
            days = days.where(UsageDayRow.user_id == user_id)
        else:
            rows = rows.where(UsageRow.token_id == token_id)
            days = days.where(UsageDayRow.token_id == token_id)
        async with self._engine.connect() as connection:
            total = Decimal(0)
            for query in (rows, days):
                value = await connection.scalar(query)
                total += Decimal(value or 0)
        return total

    def _rows_key(self, by: By) -> ColumnElement[Any]:
        if by != "day":
            return _group(UsageRow, by)
        if self._postgres:
            return func.date(func.timezone("UTC", UsageRow.at))
        return func.date(UsageRow.at)  # SQLite keeps the UTC time as text


def _group(table: Any, by: By) -> ColumnElement[Any]:
    """What a report groups a table's rows by (a rollup's day as it is)."""
    if by == "model":
        return func.coalesce(table.provider, "") + "/" + func.coalesce(table.model, "")
    if by == "provider":
        return func.coalesce(table.provider, "")
    if by == "token":
        return table.token_id  # type: ignore[no-any-return]
    if by == "user":
        return table.user_id  # type: ignore[no-any-return]
    return table.day  # type: ignore[no-any-return]


def _priced_cost() -> ColumnElement[Any]:
    return func.coalesce(UsageRow.cost, 0)


def _unpriced() -> ColumnElement[Any]:
    return case((UsageRow.cost.is_(None), 1), else_=0)


def _sum_query(table: Any, key: Any, cost: Any, unpriced: Any) -> Select[Any]:
    requests = func.count() if table is UsageRow else func.sum(table.requests)
    return select(
        key,
        requests,
        *(func.sum(getattr(table, name)) for name in TOKENS),
        func.sum(cost),
        func.sum(unpriced),
    )


def _day_range(since: datetime, until: datetime) -> list[ColumnElement[bool]]:
    last = until.astimezone(UTC)
    # A day counts when any of it is in the range.
    end = last.date() if last == _start_of_day(last) else last.date() + timedelta(days=1)
    return [UsageDayRow.day >= since.astimezone(UTC).date(), UsageDayRow.day < end]


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


def _sums(rows: Sequence[Any]) -> list[dict[str, Any]]:
    """The rollup rows of deleted ledger rows."""
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        at, user_id, token_id, provider, model, cost, *tokens = row
        key = (at.astimezone(UTC).date(), user_id, token_id, provider, model)
        group = groups.get(key)
        if group is None:
            group = groups[key] = {
                "day": key[0],
                "user_id": user_id,
                "token_id": token_id,
                "provider": provider,
                "model": model,
                "requests": 0,
                "cost": Decimal(0),
                "unpriced": 0,
                **dict.fromkeys(TOKENS, 0),
            }
        group["requests"] += 1
        for name, count in zip(TOKENS, tokens, strict=True):
            group[name] += count
        if cost is None:
            group["unpriced"] += 1
        else:
            group["cost"] += cost
    return list(groups.values())


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
