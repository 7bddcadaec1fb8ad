"""The usage ledger at scale on PostgreSQL: the batch writer's insert rate, the rollup job's
cost, and the report queries' times at 10 million rows, read from the rows alone (as before
the rollups) and with the daily rollups, with their plans.

    nice -n 10 .venv/bin/python bench/ledger.py            # 10 M rows, a database of its own
    .venv/bin/python bench/ledger.py --rows 1000000 --keep

It creates the database ``chatwire_ledger_bench`` (dropped at the end unless ``--keep``),
migrates it, and then:

1. writes ``--through-writer`` rows (1 M) through ``store.ledger.Ledger`` as the server does
   (``add`` per chat, one multi-row INSERT per batch of 500), timed (wall and CPU);
2. fills the table up to ``--rows`` with ``INSERT ... SELECT generate_series`` (the same
   shape: 1,000 users with 3 tokens each, 5 providers, 20 models, ids and times rising
   together over 60 days);
3. writes a fifth as many rows again through the writer, on the full table, timed;
4. times each report over the rows alone, as the ledger read them before the rollups (one
   scan of the range: the baseline), ``--runs`` times after one warm-up, the median;
5. times the first rollup of every row (``Ledger.rollup``; then ``VACUUM ANALYZE
   usage_daily``, as autovacuum would), then each report through ``Ledger.report``,
   checked equal to the baseline's figures, group by group;
6. writes an hour's rows (7,000, a seventh of them late: times three days back, in days
   already rolled), times the reports again (those rows read from ``usage``), then the
   hourly roll that adds them (the wait for the writers, ``LOCK TABLE``, timed apart), and
   checks the reports against the rows once more;
7. times retention over the 10 oldest days (``roll(50)``: their rows deleted, 5,000 a
   transaction), and prints the plans (``EXPLAIN (ANALYZE, BUFFERS)``) of the admin's
   reports before and after into ``--plans`` (ledger-plans.txt).
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import create_async_engine

from chatwire.store.db import make_engine, upgrade
from chatwire.store.ledger import Ledger, Line
from chatwire.store.ledger_reports import _key, _order, _sum_query
from chatwire.store.ledger_rollups import priced_cost, unpriced_flag
from chatwire.store.models import UsageRow

T = TypeVar("T")

NAME = "chatwire_ledger_bench"
USERS, TOKENS_PER_USER, DAYS = 1000, 3, 60
PROVIDERS = ["openai", "anthropic", "google", "mistral", "ollama"]
MODELS = [f"{p}-model-{i}" for p in PROVIDERS for i in range(4)]


def row(i: int, at: datetime) -> dict[str, Any]:
    user = 1 + i % USERS
    model = MODELS[i % len(MODELS)]
    return {
        "at": at,
        "request_id": f"req_{i:024x}",
        "user_id": user,
        "token_id": user * TOKENS_PER_USER + i % TOKENS_PER_USER,
        "dialect": "chat",
        "provider": model.split("-", 1)[0],
        "model": model,
        "deployment": None,
        "outcome": "complete",
        "input_tokens": 200 + i % 3000,
        "cached_input_tokens": i % 100,
        "cache_write_tokens": 0,
        "output_tokens": 50 + i % 800,
        "reasoning_tokens": i % 40,
        "estimated": False,
        "cost": Decimal(i % 9000) / Decimal(1_000_000),
        "priced": True,
        "first_byte_ms": 100 + i % 900,
        "duration_ms": 500 + i % 9000,
    }


async def through_writer(ledger: Ledger, start: int, count: int, at: datetime) -> str:
    """Rows/s of ``count`` chats' rows through the batch writer, as the server adds them
    (the time to make each row's dict included), and this process's CPU per row."""
    began, cpu = time.perf_counter(), time.process_time()
    for i in range(start, start + count):
        ledger.add(row(i, at))
        if ledger.waiting >= ledger.batch:
            await ledger.flush()
    await ledger.flush()
    wall, cpu = time.perf_counter() - began, time.process_time() - cpu
    return f"{count / wall:,.0f} rows/s, {cpu / count * 1e6:.0f} µs of CPU per row here"


FILL = """
INSERT INTO usage (at, request_id, user_id, token_id, dialect, provider, model, deployment,
  outcome, input_tokens, cached_input_tokens, cache_write_tokens, output_tokens,
  reasoning_tokens, estimated, cost, priced, first_byte_ms, duration_ms)
SELECT
  CAST(:start_at AS timestamptz) + (g - CAST(:first AS bigint)) * CAST(:step AS bigint)
    * interval '1 microsecond',
  'req_' || lpad(to_hex(g), 24, '0'),
  1 + g % CAST(:users AS int),
  (1 + g % CAST(:users AS int)) * CAST(:per_user AS int) + g % CAST(:per_user AS int),
  'chat',
  (ARRAY[{providers}])[1 + (g % CAST(:models AS int)) / 4],
  (ARRAY[{models}])[1 + g % CAST(:models AS int)],
  NULL, 'complete',
  200 + g % 3000, g % 100, 0, 50 + g % 800, g % 40, false,
  (g % 9000) / 1000000.0, true, 100 + g % 900, 500 + g % 9000
FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS g
"""


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--postgres", default="postgresql+asyncpg://postgres@127.0.0.1:5432")
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--through-writer", type=int, default=1_000_000)
    parser.add_argument("--plans", type=Path, default=Path("ledger-plans.txt"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    admin = create_async_engine(f"{args.postgres}/postgres", isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f'DROP DATABASE IF EXISTS "{NAME}" WITH (FORCE)'))
        await connection.execute(text(f'CREATE DATABASE "{NAME}"'))
    url = f"{args.postgres}/{NAME}"
    try:
        await asyncio.to_thread(upgrade, url)
        engine = make_engine(url, timeout=600)
        ledger = Ledger(engine)
        now = datetime.now(UTC)
        first_at = now - timedelta(days=DAYS)
        step = DAYS * 86400 * 1_000_000 // args.rows  # microseconds between two rows
        print(f"PostgreSQL bench of the usage ledger, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
        print(f"machine: {platform.node()}, {platform.processor() or platform.machine()}")
        async with engine.connect() as connection:
            print("server:", await connection.scalar(text("SELECT version()")))
        early = await through_writer(
            ledger, 0, args.through_writer, first_at + timedelta(microseconds=step)
        )
        print(f"batch writer, the first {args.through_writer:,} rows: {early}")
        began = time.perf_counter()
        fill = FILL.format(
            providers=",".join(f"'{p}'" for p in PROVIDERS),
            models=",".join(f"'{m}'" for m in MODELS),
        )
        chunk = 1_000_000
        for first in range(args.through_writer, args.rows, chunk):
            last = min(first + chunk, args.rows) - 1
            async with engine.begin() as connection:
                await connection.execute(
                    text(fill),
                    {
                        "start_at": first_at + timedelta(microseconds=step * first),
                        "first": first,
                        "last": last,
                        "step": step,
                        "users": USERS,
                        "per_user": TOKENS_PER_USER,
                        "models": len(MODELS),
                    },
                )
            print(f"  filled to {last + 1:,} rows ({time.perf_counter() - began:.0f} s)")
        async with engine.connect() as connection:
            conn = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE usage"))
            size = await conn.scalar(text("SELECT pg_size_pretty(pg_total_relation_size('usage'))"))
            table = await conn.scalar(text("SELECT pg_size_pretty(pg_relation_size('usage'))"))
            total = await conn.scalar(text("SELECT count(*) FROM usage"))
        print(f"rows: {total:,}; table {table}, with its indexes {size}")
        more = args.through_writer // 5
        late = await through_writer(ledger, args.rows, more, now)
        print(f"batch writer, {more:,} more rows on the full table: {late}")

        end = datetime.now(UTC) + timedelta(hours=2)  # every report's end: rows to come too
        user = 1 + 7 % USERS
        queries = {
            "one user, 30 days, by day": ("day", now - timedelta(days=30), user),
            "one user, 30 days, by model": ("model", now - timedelta(days=30), user),
            "one user, 30 days, by token": ("token", now - timedelta(days=30), user),
            "admin, 7 days, by model": ("model", now - timedelta(days=7), None),
            "admin, 7 days, by user": ("user", now - timedelta(days=7), None),
            "admin, 7 days, by day": ("day", now - timedelta(days=7), None),
            "admin, 30 days, by model": ("model", now - timedelta(days=30), None),
            "admin, 30 days, by user": ("user", now - timedelta(days=30), None),
            "admin, 30 days, by day": ("day", now - timedelta(days=30), None),
        }
        month = datetime(now.year, now.month, 1, tzinfo=UTC)
        plans: list[str] = []

        print(f"\nreports from the rows alone (no rollup yet), median of {args.runs}:")
        baseline: dict[str, list[Line]] = {}
        before: dict[str, float] = {}
        for name, (by, since, user_id) in queries.items():
            before[name], baseline[name] = await timed(
                args.runs, partial(raw_report, engine, ledger, by, since, end, user_id)
            )
            print(f"  {name}: {before[name]:,.1f} ms")
            if user_id is None and by != "user":
                plans.append(
                    f"## before: {name}\n" + await explain_raw(engine, ledger, by, since, end)
                )

        began, cpu = time.perf_counter(), time.process_time()
        rolled = await ledger.rollup()
        wall, cpu = time.perf_counter() - began, time.process_time() - cpu
        async with engine.connect() as connection:
            conn = await connection.execution_options(isolation_level="AUTOCOMMIT")
            # The first rollup updated each group's row several times: as autovacuum would.
            await conn.execute(text("VACUUM ANALYZE usage_daily"))
            groups = await connection.scalar(text("SELECT count(*) FROM usage_daily"))
            size = await connection.scalar(
                text("SELECT pg_size_pretty(pg_total_relation_size('usage_daily'))")
            )
        print(
            f"\nfirst rollup: {rolled:,} rows in {wall:,.1f} s ({rolled / wall:,.0f} rows/s; "
            f"{cpu:.1f} s of this process's CPU); usage_daily {groups:,} rows, {size}"
        )

        after = await report_all(args.runs, ledger, queries, end, baseline, "rolled")
        spent_ms, _ = await timed(args.runs, partial(ledger.spent, month, user_id=user))
        print(f"  spent(user, this month): {spent_ms:,.1f} ms")

        # An hour's rows (about 167,000 a day), a seventh of them late: times 3 days back.
        hour = 7000
        started = args.rows + more
        late_at = now - timedelta(days=3)
        for i in range(started, started + hour):
            ledger.add(row(i, late_at if i % 7 == 0 else end - timedelta(hours=2)))
        await ledger.flush()
        truth = {
            name: await raw_report(engine, ledger, by, since, end, user_id)
            for name, (by, since, user_id) in queries.items()
        }
        unrolled = await report_all(args.runs, ledger, queries, end, truth, "an hour unrolled")
        began = time.perf_counter()
        await ledger._settled()
        settle = time.perf_counter() - began
        began, cpu = time.perf_counter(), time.process_time()
        rolled = await ledger.rollup()
        wall, cpu = time.perf_counter() - began, time.process_time() - cpu
        print(
            f"\nthe hourly roll: {rolled:,} rows in {wall * 1000:,.0f} ms "
            f"(the wait for the writers, LOCK TABLE to max(id): {settle * 1000:,.1f} ms; "
            f"{cpu * 1000:.0f} ms of this process's CPU)"
        )
        await report_all(1, ledger, queries, end, truth, "rolled again")

        print("\n| query | rows alone (before) | with the rollups | an hour unrolled |")
        print("| --- | --- | --- | --- |")
        for name in queries:
            times = (before[name], after[name], unrolled[name])
            print(f"| {name} | " + " | ".join(f"{ms:,.1f} ms" for ms in times) + " |")
        for name, (by, since, user_id) in queries.items():
            if user_id is None and by != "user":
                plans.append(f"## after: {name}\n" + await explain(engine, ledger, by, since, end))

        began = time.perf_counter()
        deleted = await ledger.roll(50)
        wall = time.perf_counter() - began
        print(
            f"\nretention over the 10 oldest days, roll(50): {deleted:,} rows deleted in "
            f"{wall:,.1f} s ({deleted / max(wall, 1e-9):,.0f} rows/s)"
        )
        total = await raw_report(engine, ledger, "model", now - timedelta(days=30), end, None)
        assert await ledger.report("model", now - timedelta(days=30), end) == total
        args.plans.write_text("\n\n".join(plans))
        print(f"\nplans: {args.plans}")
        await engine.dispose()
    finally:
        if not args.keep:
            async with admin.connect() as connection:
                await connection.execute(text(f'DROP DATABASE IF EXISTS "{NAME}" WITH (FORCE)'))
        await admin.dispose()


async def timed(runs: int, call: Callable[[], Awaitable[T]]) -> tuple[float, T]:
    """The median ms of ``runs`` calls after one warm-up, and the last call's result."""
    found = await call()
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        found = await call()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times), found


async def report_all(
    runs: int,
    ledger: Ledger,
    queries: dict[str, tuple[str, datetime, int | None]],
    end: datetime,
    truth: dict[str, list[Line]],
    label: str,
) -> dict[str, float]:
    """Each report through the ledger, timed, and checked group by group against the sums
    of the rows alone."""
    print(f"\nreports, {label}, median of {runs}:")
    times = {}
    for name, (by, since, user_id) in queries.items():
        ask = partial(ledger.report, by, since, end, user_id=user_id)  # type: ignore[arg-type]
        times[name], lines = await timed(runs, ask)
        if lines != truth[name]:
            raise SystemExit(f"{name}: the report differs from the rows' sums")
        print(f"  {name}: {times[name]:,.1f} ms, {len(lines)} groups, equal to the rows' sums")
    return times


def raw_query(
    ledger: Ledger, by: str, since: datetime, until: datetime, user_id: int | None
) -> Any:
    """The sums of the rows of a range alone: the report's query before the rollups (one
    scan of the range)."""
    key = ledger._rows_key(by)  # type: ignore[arg-type]
    query = (
        _sum_query(UsageRow, key, priced_cost(), unpriced_flag())
        .where(UsageRow.at >= since, UsageRow.at < until)
        .group_by(key)
    )
    if user_id is not None:
        query = query.where(UsageRow.user_id == user_id)
    return query


async def raw_report(
    engine: Any, ledger: Ledger, by: str, since: datetime, until: datetime, user_id: int | None
) -> list[Line]:
    async with engine.connect() as connection:
        found = await connection.execute(raw_query(ledger, by, since, until, user_id))
        lines = []
        for key, *sums in found:
            counts = [int(value or 0) for value in sums[:6]]
            lines.append(
                Line(
                    _key(by, key),  # type: ignore[arg-type]
                    counts[0],
                    counts[1],
                    counts[2],
                    counts[3],
                    counts[4],
                    counts[5],
                    Decimal(sums[6] or 0),
                    int(sums[7] or 0),
                )
            )
    return sorted(lines, key=lambda line: _order(line.key))


async def plan(engine: Any, query: Any) -> str:
    sql = str(query.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    async with engine.connect() as connection:
        result = await connection.execute(text(f"EXPLAIN (ANALYZE, BUFFERS) {sql}"))
        return "\n".join(line for (line,) in result)


async def explain_raw(
    engine: Any, ledger: Ledger, by: str, since: datetime, until: datetime
) -> str:
    return await plan(engine, raw_query(ledger, by, since, until, None))


async def explain(engine: Any, ledger: Ledger, by: str, since: datetime, until: datetime) -> str:
    """The plan of the report's one statement (with the watermark it reads first)."""
    async with engine.connect() as connection:
        floor = int(await connection.scalar(text("SELECT rolled_to FROM usage_rollup")) or 0)
    return await plan(engine, ledger._statement(by, since, until, floor))  # type: ignore[arg-type]


if __name__ == "__main__":
    asyncio.run(main())
