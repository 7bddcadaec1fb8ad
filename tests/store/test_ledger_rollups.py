"""The daily rollups against a brute-force sum of the ledger's rows, on SQLite and
PostgreSQL: reports over many ranges (days the range cuts, whole days, a range across the
retention boundary), rows written late into a day already rolled, rollers at once with
writers, a roll that waits for an INSERT in flight, and retention after the rollup. Every
figure is exact."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from chatwire.store import ledger_rollups as ledger_module
from chatwire.store.db import make_engine
from chatwire.store.ledger import BY, By, Ledger, Line
from chatwire.store.models import UsageDayRow, UsageRollupRow, UsageRow
from tests.store.test_ledger import row

MIDNIGHT = datetime(2026, 11, 20, tzinfo=UTC)  # the first day of the rows
DAY = timedelta(days=1)
USERS = (1, 2, 3)
MODELS = (("openai", "gpt-4o"), ("mistral", "unpriced-model"), (None, None), ("ollama", "x"))


def make_rows(count: int, seed: int, first: datetime = MIDNIGHT, days: int = 10) -> list[Any]:
    """``count`` rows over ``days`` days from ``first``: users with two tokens each and
    browser sessions (no token), priced and unpriced models, a row without a provider,
    times at random, some at midnight exactly and at its last microsecond."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        day = first + DAY * rng.randrange(days)
        at = day + timedelta(microseconds=rng.randrange(86_400 * 10**6))
        if i % 17 == 0:
            at = day
        elif i % 19 == 0:
            at = day + DAY - timedelta(microseconds=1)
        user = rng.choice(USERS)
        provider, model = rng.choice(MODELS)
        unpriced = model == "unpriced-model"
        rows.append(
            row(
                at,
                request_id=f"s{seed}r{i}",
                user_id=user,
                token_id=rng.choice((None, 10 * user, 10 * user + 1)),
                provider=provider,
                model=model,
                input_tokens=rng.randrange(5000),
                cached_input_tokens=rng.randrange(100),
                cache_write_tokens=rng.randrange(50),
                output_tokens=rng.randrange(3000),
                reasoning_tokens=rng.randrange(500),
                cost=None if unpriced else Decimal(rng.randrange(10**10)).scaleb(-12),
                priced=not unpriced,
            )
        )
    return rows


def expected(
    rows: Iterable[dict[str, Any]],
    by: By | None,
    since: datetime,
    until: datetime | None,
    *,
    user_id: int | None = None,
    token_id: int | None = None,
    retained_from: date | None = None,
) -> list[Line]:
    """The report, summed row by row: a row counts when its time is in the range, or, for
    a day past retention, when any of its day is."""
    if until is not None and until <= since:
        return []
    groups: dict[Any, list[Any]] = {}
    for r in rows:
        if user_id is not None and r["user_id"] != user_id:
            continue
        if token_id is not None and r["token_id"] != token_id:
            continue
        at = r["at"]
        if retained_from is not None and at.date() < retained_from:
            start = datetime(at.year, at.month, at.day, tzinfo=UTC)
            inside = (until is None or start < until) and start + DAY > since
        else:
            inside = since <= at and (until is None or at < until)
        if not inside:
            continue
        keys = {
            "day": at.date().isoformat(),
            "model": f"{r['provider'] or ''}/{r['model'] or ''}",
            "provider": r["provider"] or "",
            "token": r["token_id"],
            "user": r["user_id"],
            None: None,
        }
        sums = groups.setdefault(keys[by], [0] * 6 + [Decimal(0), 0])
        sums[0] += 1
        for i, name in enumerate(ledger_module.TOKENS):
            sums[1 + i] += r[name]
        if r["cost"] is None:
            sums[7] += 1
        else:
            sums[6] += r["cost"].quantize(Decimal("1E-12"))  # as stored: to 12 places
    lines = [Line(key, *sums) for key, sums in groups.items()]
    return sorted(lines, key=lambda line: (0, "") if line.key is None else (1, line.key))


async def write(engine: AsyncEngine, rows: Sequence[dict[str, Any]]) -> None:
    ledger = Ledger(engine, interval=3600, batch=10**6)
    for r in rows:
        ledger.add(r)
    await ledger.close()


async def mark(engine: AsyncEngine) -> tuple[int, date | None]:
    async with engine.connect() as connection:
        found = (
            await connection.execute(select(UsageRollupRow.rolled_to, UsageRollupRow.retained_from))
        ).one()
    return int(found[0]), found[1]


async def rolled_requests(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(select(func.sum(UsageDayRow.requests))) or 0)


async def kept(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(UsageRow)) or 0)


def ranges() -> list[tuple[datetime, datetime]]:
    """Ranges of every shape over the rows' 10 days and around them."""
    noon = timedelta(hours=12)
    spans = [
        (MIDNIGHT, MIDNIGHT + 10 * DAY),  # every whole day
        (MIDNIGHT - 5 * DAY, MIDNIGHT + 20 * DAY),  # and days with no row
        (MIDNIGHT + 2 * DAY, MIDNIGHT + 3 * DAY),  # one whole day
        (MIDNIGHT + 2 * DAY + noon, MIDNIGHT + 9 * DAY + noon),  # 7 days from noon
        (MIDNIGHT + 2 * DAY + noon, MIDNIGHT + 3 * DAY + noon),  # two cut days
        (MIDNIGHT + 4 * DAY + timedelta(hours=3), MIDNIGHT + 4 * DAY + timedelta(hours=20)),
        (MIDNIGHT + 3 * DAY, MIDNIGHT + 3 * DAY + timedelta(minutes=1)),  # a minute at 0:00
        (MIDNIGHT + 3 * DAY - timedelta(microseconds=1), MIDNIGHT + 3 * DAY),  # the last µs
        (MIDNIGHT + 1 * DAY, MIDNIGHT + 6 * DAY + noon),  # whole days then a cut one
        (MIDNIGHT + 1 * DAY + noon, MIDNIGHT + 6 * DAY),  # a cut day then whole ones
        (MIDNIGHT + 9 * DAY + timedelta(hours=5), MIDNIGHT + 12 * DAY),  # the last day cut
        (MIDNIGHT - DAY + noon, MIDNIGHT + DAY + noon),
        # Cut days read from their rows or as whole days less the rest of the day.
        (MIDNIGHT + DAY + timedelta(hours=20), MIDNIGHT + 5 * DAY + timedelta(hours=20)),
        (MIDNIGHT + DAY + timedelta(hours=4), MIDNIGHT + 5 * DAY + timedelta(hours=4)),
        (MIDNIGHT + 6 * DAY + timedelta(hours=1), MIDNIGHT + 6 * DAY + timedelta(hours=2)),
        (MIDNIGHT + 6 * DAY + timedelta(hours=1), MIDNIGHT + 6 * DAY + timedelta(hours=23)),
    ]
    return spans


async def assert_reports(
    ledger: Ledger,
    rows: list[dict[str, Any]],
    spans: Iterable[tuple[datetime, datetime]],
    retained_from: date | None = None,
) -> int:
    """Every report over ``spans`` equals the brute-force sum; returns how many were
    compared."""
    compared = 0
    for since, until in spans:
        asks: list[tuple[By, dict[str, int]]] = [(by, {}) for by in BY]
        asks += [("model", {"user_id": 2}), ("day", {"token_id": 21}), ("token", {"user_id": 3})]
        for by, only in asks:
            got = await ledger.report(by, since, until, **only)
            want = expected(rows, by, since, until, retained_from=retained_from, **only)
            assert got == want, (by, since, until, only)
            compared += 1
    return compared


async def assert_spent(
    ledger: Ledger, rows: list[dict[str, Any]], retained_from: date | None = None
) -> None:
    for since in (
        MIDNIGHT - DAY,
        MIDNIGHT + 3 * DAY,
        MIDNIGHT + 3 * DAY + timedelta(hours=7),
        MIDNIGHT + 9 * DAY + timedelta(hours=23),
    ):
        for subject in ({"user_id": 2}, {"token_id": 11}, {"token_id": 30}):
            want = expected(rows, None, since, None, retained_from=retained_from, **subject)
            assert await ledger.spent(since, **subject) == (want[0].cost if want else 0)


async def test_reports_equal_the_rows_rolled_or_not(engine: AsyncEngine) -> None:
    ledger = Ledger(engine)
    rows = make_rows(300, seed=1)
    await write(engine, rows[:200])
    assert await ledger.rollup() == 200
    assert await mark(engine) == (200, None)
    # 100 more, not rolled yet: among them rows of every day, rolled ones included.
    await write(engine, rows[200:])
    assert await assert_reports(ledger, rows, ranges()) == 16 * 8
    await assert_spent(ledger, rows)
    assert await ledger.rollup() == 100
    assert await rolled_requests(engine) == 300
    await assert_reports(ledger, rows, ranges())
    await assert_spent(ledger, rows)
    # The totals, exactly.
    whole = await ledger.report("user", MIDNIGHT, MIDNIGHT + 10 * DAY)
    assert sum(line.requests for line in whole) == 300
    assert Line.total(whole) == expected(rows, None, MIDNIGHT, MIDNIGHT + 10 * DAY)[0]
    assert await ledger.rollup() == 0  # nothing more to add


async def test_a_roll_adds_a_few_ids_at_a_time(engine: AsyncEngine) -> None:
    ledger = Ledger(engine)
    rows = make_rows(120, seed=2)
    await write(engine, rows)
    assert await ledger.rollup(step=7) == 120
    assert await mark(engine) == (120, None)
    await assert_reports(ledger, rows, ranges()[:4])


async def test_late_rows_after_their_day_was_rolled(engine: AsyncEngine) -> None:
    ledger = Ledger(engine)
    day = MIDNIGHT + 2 * DAY
    rows = [row(day + timedelta(hours=h), request_id=f"on{h}") for h in (1, 9, 17)]
    await write(engine, rows)
    assert await ledger.rollup() == 3
    whole = (day, day + DAY)
    assert [(line.key, line.requests) for line in await ledger.report("day", *whole)] == [
        ("2026-11-22", 3)
    ]
    # Rows written late (a process's buffer after an outage), of the day already rolled.
    late = [row(day + timedelta(hours=h), request_id=f"late{h}") for h in (2, 23)]
    await write(engine, late)
    for since, until in (
        whole,
        (day - DAY, day + 3 * DAY),
        (day + timedelta(hours=1.5), day + DAY),
    ):
        got = await ledger.report("day", since, until)
        assert got == expected(rows + late, "day", since, until)
    assert (await ledger.report("day", *whole))[0].requests == 5
    assert (await ledger.report("day", day + timedelta(hours=1.5), day + DAY))[0].requests == 4
    assert (await ledger.report("day", *whole))[0].cost == Decimal("0.000123456789") * 5
    assert await ledger.rollup() == 2
    assert await rolled_requests(engine) == 5  # each once
    assert (await ledger.report("day", *whole))[0].requests == 5
    assert await ledger.spent(day, user_id=1) == Decimal("0.000123456789") * 5


async def test_rollers_at_once_with_writers(database_url: str) -> None:
    engines = [make_engine(database_url) for _ in range(4)]
    rows = make_rows(600, seed=3)
    failed = 0

    async def writer() -> None:
        for start in range(0, len(rows), 20):  # one transaction per 20 rows, as batches go
            await write(engines[0], rows[start : start + 20])
            await asyncio.sleep(0)

    async def roller(engine: AsyncEngine) -> int:
        nonlocal failed
        rolled = 0
        for _ in range(15):
            try:
                rolled += await Ledger(engine).rollup(step=13)
            except OperationalError:  # SQLite: the database locked past the busy timeout
                failed += 1
            await asyncio.sleep(0.01)
        return rolled

    try:
        rollers = asyncio.gather(*(roller(e) for e in engines))
        await writer()
        rolled = await rollers
        ledger = Ledger(engines[1])
        rolled_last = await ledger.rollup()
        if not failed:  # (a roller that failed returned nothing of what it had rolled)
            assert sum(rolled) + rolled_last == 600  # each row summed by one roller
        assert await rolled_requests(engines[0]) == 600
        assert await mark(engines[0]) == (600, None)
        await assert_reports(ledger, rows, ranges()[:5])
        if engines[0].dialect.name == "postgresql":
            assert failed == 0
    finally:
        for e in engines:
            await e.dispose()


async def test_a_roll_waits_for_an_insert_in_flight(engine: AsyncEngine) -> None:
    ledger = Ledger(engine)
    day = MIDNIGHT + DAY
    await write(engine, [row(day + timedelta(hours=1), request_id="first")])
    async with engine.connect() as open_one:
        # An INSERT whose transaction is still open when the roll starts (on PostgreSQL,
        # another one, of a higher id, commits meanwhile).
        await open_one.execute(insert(UsageRow).values(row(day + timedelta(hours=2))))
        postgres = engine.dialect.name == "postgresql"
        if postgres:
            await write(engine, [row(day + timedelta(hours=3), request_id="after")])
        rolling = asyncio.create_task(ledger.rollup())
        await asyncio.sleep(0.5)
        assert not rolling.done()  # waiting for the open transaction
        await open_one.commit()
    rolled = await rolling
    # PostgreSQL waited for it and summed all three; SQLite settled before it, on one.
    assert rolled == (3 if postgres else 1)
    await ledger.rollup()
    assert await rolled_requests(engine) == (3 if postgres else 2)
    got = await ledger.report("day", day, day + DAY)
    assert [(line.key, line.requests) for line in got] == [("2026-11-21", 3 if postgres else 2)]


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_roll_gives_up_behind_a_long_insert(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ledger_module, "LOCK_WAIT", "200ms")
    ledger = Ledger(engine)
    day = MIDNIGHT + DAY
    await write(engine, [row(day, request_id="first")])
    async with engine.connect() as open_one:
        await open_one.execute(insert(UsageRow).values(row(day + timedelta(hours=2))))
        assert await ledger.rollup() == 0  # skipped: the next roll sums them
        assert await mark(engine) == (0, None)
        await open_one.commit()
    assert await ledger.rollup() == 2
    assert await mark(engine) == (2, None)


async def test_retention_after_the_rollup(engine: AsyncEngine) -> None:
    ledger = Ledger(engine)
    rows = make_rows(300, seed=4)
    await write(engine, rows[:250])
    now = MIDNIGHT + 15 * DAY + timedelta(hours=6)
    # Keep 10 days: the rows of the days before 2026-11-25 go (the 50 not rolled yet too:
    # the roll sums them first).
    await write(engine, rows[250:])
    cutoff = date(2026, 11, 25)
    gone = [r for r in rows if r["at"].date() < cutoff]
    assert await ledger.roll(10, batch=9, now=now) == len(gone) == 167
    assert await mark(engine) == (300, cutoff)
    assert await kept(engine) == 300 - 167
    assert await rolled_requests(engine) == 300
    spans = ranges()
    assert await assert_reports(ledger, rows, spans, retained_from=cutoff) == len(spans) * 8
    await assert_spent(ledger, rows, retained_from=cutoff)
    # A day past retention counts whole even where the range cuts it.
    cut = (MIDNIGHT + 2 * DAY + timedelta(hours=12), MIDNIGHT + 3 * DAY)
    day_of = [r for r in rows if r["at"].date() == date(2026, 11, 22)]
    assert (await ledger.report("day", *cut))[0].requests == len(day_of) == 36
    # A late row of a day past retention: counted (whole day) before the next roll, once.
    late = [row(MIDNIGHT + DAY + timedelta(hours=3), request_id="late", user_id=2, token_id=21)]
    await write(engine, late)
    everything = rows + late
    await assert_reports(ledger, everything, spans[:6], retained_from=cutoff)
    assert await ledger.roll(10, now=now) == 1
    assert await kept(engine) == 300 - 167
    assert await rolled_requests(engine) == 301
    await assert_reports(ledger, everything, spans, retained_from=cutoff)
    await assert_spent(ledger, everything, retained_from=cutoff)
    # A longer period later moves the boundary back for no one: those rows are gone.
    assert await ledger.roll(30, now=now) == 0
    assert await mark(engine) == (301, cutoff)
    # A shorter one moves it on.
    assert await ledger.roll(5, now=now) == 300 - 167  # every row left is of 2026-11-29 or before
    assert await kept(engine) == 0
    assert (await mark(engine))[1] == date(2026, 11, 30)
    await assert_reports(ledger, everything, spans, retained_from=date(2026, 11, 30))


async def test_no_retention_rolls_and_keeps_every_row(engine: AsyncEngine) -> None:
    ledger = Ledger(engine)
    rows = make_rows(50, seed=5)
    await write(engine, rows)
    assert await ledger.roll(0, now=MIDNIGHT + 400 * DAY) == 0
    assert await mark(engine) == (50, None)
    assert await kept(engine) == 50
    assert await rolled_requests(engine) == 50
