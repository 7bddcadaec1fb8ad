"""The usage ledger's reports and the spend the budget counters start from: each one
statement over the daily rollups and the rows not yet in them (``ledger_rollups`` says why
every row is counted once)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Date,
    Select,
    func,
    literal,
    or_,
    select,
    text,
    type_coerce,
    union_all,
)

from chatwire.store.ledger_rollups import (
    DAY,
    ROLLED_TO,
    SUMS,
    TOKENS,
    Tables,
    start_of_day,
    sum_columns,
)
from chatwire.store.models import Dollars, UsageDayRow, UsageRollupRow, UsageRow

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


class Reports(Tables):
    """Reading the ledger: reports by group, and spend since a time."""

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
            floor = int(await connection.scalar(ROLLED_TO) or 0)
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

        day_of_since = start_of_day(since)
        first = day_of_since if day_of_since == since else day_of_since + DAY
        last = None if until is None else start_of_day(until)
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
            query = select(*sum_columns(table, less))
        else:
            key = self._rows_key(by) if table is UsageRow else _group(table, by)
            query = select(key.label("key"), *sum_columns(table, less)).group_by(key)
        if user_id is not None:
            query = query.where(table.user_id == user_id)
        if token_id is not None:
            query = query.where(table.token_id == token_id)
        return query

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


def _until(now: datetime, start: datetime, end: datetime) -> timedelta:
    """How much of [start, end) is before ``now`` (when rows may have been written)."""
    return max(timedelta(), min(end, now) - start)


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
