"""The usage ledger's store on SQLite and PostgreSQL: batched writes, the flush on close, the
bounded buffer, rollups with retention (exactly once, however many processes roll), the
reports and the spend, exact to the 12th decimal of a dollar."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from chatwire.store.db import make_engine
from chatwire.store.ledger import BY, Ledger, moment
from chatwire.store.models import UsageDayRow, UsageRow

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def row(at: datetime, **values: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "at": at,
        "request_id": "req_1",
        "user_id": 1,
        "token_id": 10,
        "dialect": "chat",
        "provider": "openai",
        "model": "gpt-4o",
        "deployment": None,
        "outcome": "complete",
        "input_tokens": 100,
        "cached_input_tokens": 10,
        "cache_write_tokens": 0,
        "output_tokens": 50,
        "reasoning_tokens": 5,
        "estimated": False,
        "cost": Decimal("0.000123456789012"),
        "priced": True,
        "first_byte_ms": 12,
        "duration_ms": 40,
    }
    base.update(values)
    return base


async def count(engine: AsyncEngine, table: Any = UsageRow) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(table)) or 0)


async def test_rows_wait_for_the_interval_then_go_in_one_batch(engine: AsyncEngine) -> None:
    ledger = Ledger(engine, interval=0.2, batch=1000)
    ledger.start()
    try:
        for i in range(300):
            ledger.add(row(NOW, request_id=f"r{i}", input_tokens=i))
        assert await count(engine) == 0  # nothing written on the chats' way
        for _ in range(100):
            await asyncio.sleep(0.05)
            if await count(engine) == 300:
                break
        assert await count(engine) == 300
        assert ledger.written == 300
        # Every row whole, whichever of the INSERTs (several on SQLite) it went in.
        async with engine.connect() as connection:
            stored = (
                await connection.execute(select(UsageRow.request_id, UsageRow.input_tokens))
            ).all()
        assert sorted(stored) == sorted((f"r{i}", i) for i in range(300))
    finally:
        await ledger.close()


async def test_a_full_batch_goes_at_once(engine: AsyncEngine) -> None:
    ledger = Ledger(engine, interval=60, batch=50)
    ledger.start()
    try:
        for i in range(50):
            ledger.add(row(NOW, request_id=f"r{i}"))
        for _ in range(100):
            await asyncio.sleep(0.02)
            if await count(engine) == 50:
                break
        assert await count(engine) == 50
    finally:
        await ledger.close()


async def test_close_writes_what_is_left(engine: AsyncEngine) -> None:
    ledger = Ledger(engine, interval=3600, batch=10_000)
    ledger.start()
    for i in range(2500):  # three statements' worth
        ledger.add(row(NOW, request_id=f"r{i}"))
    await ledger.close()
    assert await count(engine) == 2500
    ledger.add(row(NOW))  # after close: dropped, counted
    assert ledger.dropped == 1


async def test_a_full_buffer_drops_and_counts_never_waits(database_url: str) -> None:
    # A database that does not answer: every write fails, rows wait up to the bound.
    engine = make_engine(database_url)
    ledger = Ledger(engine, interval=3600, batch=10_000, limit=100)
    try:
        for i in range(150):
            ledger.add(row(NOW, request_id=f"r{i}"))
        assert ledger.waiting == 100
        assert ledger.dropped == 50
        await ledger.flush()
        assert await count(engine) == 100
    finally:
        await ledger.close()
        await engine.dispose()


async def test_a_failed_write_keeps_its_rows_for_the_next(engine: AsyncEngine) -> None:
    ledger = Ledger(engine, interval=3600)
    ledger.add(row(NOW, outcome="x" * 100))  # too long for the column on PostgreSQL
    ledger.add(row(NOW))
    if engine.dialect.name == "postgresql":
        await ledger.flush()
        assert ledger.waiting == 2
        assert await count(engine) == 0
        ledger._rows = ledger._rows[1:]
    await ledger.flush()
    assert ledger.waiting == 0
    await ledger.close()


async def test_costs_stay_exact(engine: AsyncEngine) -> None:
    ledger = Ledger(engine)
    costs = [Decimal("0.000000000001"), Decimal("1234.5678901234565"), Decimal("0.1")]
    for cost in costs:
        ledger.add(row(NOW, cost=cost))
    ledger.add(row(NOW, cost=None, priced=False))
    await ledger.close()
    async with engine.connect() as connection:
        stored = list(await connection.scalars(select(UsageRow.cost).order_by(UsageRow.id)))
    # Rounded half to even at the 12th place.
    assert stored == [Decimal("1E-12"), Decimal("1234.567890123456"), Decimal("0.1"), None]
    spent = await Ledger(engine).spent(NOW - timedelta(hours=1), user_id=1)
    assert spent == Decimal("1234.667890123457")


async def seed(engine: AsyncEngine) -> None:
    """Rows over 40 days: each day one chat of user 1 (token 10), one of user 2 (no token,
    an unpriced model) every other day."""
    ledger = Ledger(engine)
    for day in range(40):
        at = NOW - timedelta(days=day)
        ledger.add(row(at, request_id=f"a{day}"))
        if day % 2 == 0:
            ledger.add(
                row(
                    at,
                    request_id=f"b{day}",
                    user_id=2,
                    token_id=None,
                    provider="mistral",
                    model="unpriced-model",
                    cost=None,
                    priced=False,
                )
            )
    await ledger.close()


async def test_rollups_keep_every_report_the_same(engine: AsyncEngine) -> None:
    await seed(engine)
    ledger = Ledger(engine)
    since = datetime(2026, 10, 1, tzinfo=UTC)
    before = {by: await ledger.report(by, since, NOW + timedelta(seconds=1)) for by in BY_ALL}
    moved = await ledger.roll(10, now=NOW)
    # The whole days before the one 10 days back (2026-11-22): from 2026-11-21 back.
    assert moved == 29 + 14
    assert await count(engine) == 40 + 20 - moved
    # Every row rolled, the kept ones too: one rollup row per day and group.
    assert await count(engine, UsageDayRow) == 40 + 20
    after = {by: await ledger.report(by, since, NOW + timedelta(seconds=1)) for by in BY_ALL}
    assert after == before
    model = {line.key: line for line in after["model"]}
    assert model["openai/gpt-4o"].requests == 40
    assert model["openai/gpt-4o"].cost == Decimal("0.000123456789") * 40
    assert model["mistral/unpriced-model"].unpriced == 20
    assert model["mistral/unpriced-model"].cost == 0
    tokens = {line.key: line.requests for line in after["token"]}
    assert tokens == {None: 20, 10: 40}
    days = [line.key for line in after["day"]]
    assert days[0] == "2026-10-24"
    assert days[-1] == "2026-12-02"
    assert len(days) == 40
    # Rolling again moves nothing more.
    assert await ledger.roll(10, now=NOW) == 0


BY_ALL = BY


async def test_rolling_from_many_processes_counts_each_row_once(database_url: str) -> None:
    engines = [make_engine(database_url) for _ in range(4)]
    try:
        await seed(engines[0])
        moved = await asyncio.gather(
            *(Ledger(e).roll(10, batch=7, now=NOW) for e in engines), return_exceptions=True
        )
        # SQLite lets one writer at a time: a loser may fail, to try again next time.
        done = [m for m in moved if isinstance(m, int)]
        assert sum(done) <= 43
        await Ledger(engines[0]).roll(10, now=NOW)
        async with engines[0].connect() as connection:
            requests = await connection.scalar(select(func.sum(UsageDayRow.requests)))
        assert requests == 60  # every row once: the 43 deleted and the 17 kept
        assert await count(engines[0]) == 17
    finally:
        for e in engines:
            await e.dispose()


async def test_reports_of_one_user_or_token_and_spent(engine: AsyncEngine) -> None:
    await seed(engine)
    ledger = Ledger(engine)
    await ledger.roll(10, now=NOW)
    since = NOW - timedelta(days=30)
    mine = await ledger.report("model", since, NOW + timedelta(seconds=1), user_id=2)
    assert [line.key for line in mine] == ["mistral/unpriced-model"]
    assert mine[0].requests == 16  # days 0, 2, ..., 30: whole days before the boundary
    token = await ledger.report("day", since, NOW + timedelta(seconds=1), token_id=10)
    assert sum(line.requests for line in token) == 31
    month = datetime(2026, 12, 1, tzinfo=UTC)
    assert await ledger.spent(month, token_id=10) == Decimal("0.000123456789") * 2
    all_time = datetime(2026, 1, 1, tzinfo=UTC)
    assert await ledger.spent(all_time, user_id=1) == Decimal("0.000123456789") * 40
    assert await ledger.spent(all_time, user_id=2) == 0


def test_moments() -> None:
    assert moment("7d", NOW) == NOW - timedelta(days=7)
    assert moment("90m", NOW) == NOW - timedelta(minutes=90)
    assert moment("2026-11-01", NOW) == datetime(2026, 11, 1, tzinfo=UTC)
    assert moment("2026-11-01T12:00:00+01:00", NOW) == datetime(2026, 11, 1, 11, tzinfo=UTC)
    assert date(2026, 11, 1) == moment("2026-11-01").date()
    for wrong in ("yesterday", "99999999999999d", "0001-01-01T00:00:00+01:00", "²d"):
        with pytest.raises(ValueError, match="is not a time"):
            moment(wrong, NOW)
