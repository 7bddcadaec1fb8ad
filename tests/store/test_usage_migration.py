"""Migration 0007 on both backends: the rollups of deleted rows carry over (several rows of
one group summed into one, no token and no provider kept apart), the days they hold stay
past retention, the rows still in ``usage`` are counted as before and rolled by the first
roll, their times (SQLite) rewritten in SQLAlchemy's format; the downgrade gives 0006's
rollups back, those of the deleted rows only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from chatwire.store.db import alembic_config, make_engine, upgrade
from chatwire.store.ledger import Ledger
from tests.store.test_credentials_migration import migrate
from tests.store.test_ledger import row
from tests.store.test_migrations import _differences

COST = Decimal("0.000123456789")  # the rows' cost, as stored (12 places)


@pytest.fixture
async def old_engine(empty_database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a database migrated to 0006 only."""
    engine = make_engine(empty_database_url)
    try:
        await asyncio.to_thread(command.upgrade, alembic_config(empty_database_url), "0006")
        yield engine
    finally:
        await engine.dispose()


async def old_daily(
    engine: AsyncEngine, day: str, token: int | None, provider: str | None, requests: int, cost: int
) -> None:
    """A rollup row as 0006's roll wrote it (cost in 10^-9 dollars here)."""
    dollars = Decimal(cost).scaleb(-9)
    stored: object = int(dollars.scaleb(12)) if engine.dialect.name == "sqlite" else dollars
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO usage_daily (day, user_id, token_id, provider, model, requests,"
                " input_tokens, cached_input_tokens, cache_write_tokens, output_tokens,"
                " reasoning_tokens, cost, unpriced)"
                " VALUES (:day, 1, :token, :provider, :model, :requests, :requests * 100, 0, 0,"
                " :requests * 50, 0, :cost, 0)"
            ),
            {
                "day": date.fromisoformat(day),
                "token": token,
                "provider": provider,
                "model": None if provider is None else "gpt-4o",
                "requests": requests,
                "cost": stored,
            },
        )


async def old_rows(engine: AsyncEngine) -> None:
    """Rows as 0006's writer wrote them: on SQLite, with the driver's times ('+00:00', no
    fraction at a whole second)."""
    ledger = Ledger(engine)
    if engine.dialect.name == "sqlite":
        values = ledger._values

        def driver_times(found: Mapping[str, Any]) -> tuple[Any, ...]:
            converted = list(values(found))
            converted[0] = str(found["at"])  # the driver's own: '2026-11-20 00:00:00+00:00'
            return tuple(converted)

        ledger._values = driver_times
    for at in (
        datetime(2026, 11, 20, tzinfo=UTC),  # midnight exactly
        datetime(2026, 11, 20, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 11, 21, 12, tzinfo=UTC),
    ):
        ledger.add(row(at))
    ledger.add(row(datetime(2026, 11, 21, 13, tzinfo=UTC), token_id=None))
    await ledger.close()


async def test_rollups_and_rows_carry_over(
    old_engine: AsyncEngine, empty_database_url: str
) -> None:
    await old_daily(old_engine, "2026-08-01", None, None, 2, 1000)
    await old_daily(old_engine, "2026-08-01", None, None, 3, 500)  # a second roll's
    await old_daily(old_engine, "2026-08-02", 10, "openai", 4, 7)
    await old_rows(old_engine)
    if old_engine.dialect.name == "sqlite":
        async with old_engine.connect() as connection:
            stored = list(await connection.scalars(text("SELECT at FROM usage ORDER BY id")))
        assert stored[0] == "2026-11-20 00:00:00+00:00"

    await migrate(old_engine, upgrade, empty_database_url)
    async with old_engine.connect() as connection:
        assert await connection.run_sync(_differences) == []
        daily = (
            await connection.execute(
                text(
                    "SELECT day, token_id, provider, model, requests, input_tokens"
                    " FROM usage_daily ORDER BY day"
                )
            )
        ).all()
        mark = (await connection.execute(text("SELECT * FROM usage_rollup"))).all()
        times = list(await connection.scalars(text("SELECT at FROM usage ORDER BY id")))
    assert [tuple(found[1:]) for found in daily] == [
        (0, "", "", 5, 500),
        (10, "openai", "gpt-4o", 4, 400),
    ]
    assert [str(found[0]) for found in daily] == ["2026-08-01", "2026-08-02"]
    assert [(found[0], found[1], str(found[2])) for found in mark] == [(1, 0, "2026-08-03")]
    if old_engine.dialect.name == "sqlite":
        assert times[:2] == ["2026-11-20 00:00:00.000000", "2026-11-20 23:59:59.999999"]

    ledger = Ledger(old_engine)
    since, until = datetime(2026, 7, 31, 12, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)

    async def figures() -> list[tuple[object, int, Decimal]]:
        lines = await ledger.report("token", since, until)
        return [(line.key, line.requests, line.cost) for line in lines]

    want = [
        (None, 5 + 1, Decimal("0.0000015") + COST),
        (10, 4 + 3, Decimal("0.000000007") + 3 * COST),
    ]
    assert await figures() == want
    # The rows by their exact times: midnight is the day's first moment.
    day = await ledger.report(
        "day", datetime(2026, 11, 20, tzinfo=UTC), datetime(2026, 11, 20, 1, tzinfo=UTC)
    )
    assert [(line.key, line.requests) for line in day] == [("2026-11-20", 1)]
    assert await ledger.roll(0) == 0
    assert await figures() == want
    assert await ledger.spent(datetime(2026, 8, 1, 18, tzinfo=UTC), user_id=1) == (
        Decimal("0.000001507") + 4 * COST
    )

    # Down again: 0006's rollups are the deleted rows' only (the rolled rows kept are not).
    await migrate(old_engine, command.downgrade, alembic_config(empty_database_url), "0006")
    async with old_engine.connect() as connection:
        back = (
            await connection.execute(
                text("SELECT day, token_id, provider, requests FROM usage_daily ORDER BY day")
            )
        ).all()
        kept = await connection.scalar(text("SELECT count(*) FROM usage"))
    assert [(str(found[0]), *found[1:]) for found in back] == [
        ("2026-08-01", None, None, 5),
        ("2026-08-02", 10, "openai", 4),
    ]
    assert kept == 4
    assert "usage_rollup" not in await _tables(old_engine)
    # And up once more: the same figures, from the rows alone until the next roll.
    await migrate(old_engine, upgrade, empty_database_url)
    assert await figures() == want


async def _tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        return set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))
