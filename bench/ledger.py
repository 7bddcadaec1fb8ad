"""The usage ledger at scale on PostgreSQL: the batch writer's insert rate, and the report
queries' times at 10 million rows, with their plans.

    .venv/bin/python bench/ledger.py                       # 10 M rows, a database of its own
    .venv/bin/python bench/ledger.py --rows 1000000 --keep

It creates the database ``chatwire_ledger_bench`` (dropped at the end unless ``--keep``),
migrates it, and then:

1. writes ``--through-writer`` rows (1 M) through ``store.ledger.Ledger`` as the server does
   (``add`` per chat, one multi-row INSERT per batch of 500), timed (wall and CPU);
2. fills the table up to ``--rows`` with ``INSERT ... SELECT generate_series`` (the same
   shape: 1,000 users with 3 tokens each, 5 providers, 20 models, ids and times rising
   together over 60 days);
3. writes a fifth as many rows again through the writer, on the full table, timed;
4. runs each report query 5 times (after one warm-up) and prints the median, and the plan
   of each (``EXPLAIN (ANALYZE, BUFFERS)``) into ``--plans`` (ledger-plans.txt).
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import create_async_engine

from chatwire.store.db import make_engine, upgrade
from chatwire.store.ledger import Ledger

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

        user = 1 + 7 % USERS
        queries = {
            "one user, 30 days, by day": ("day", now - timedelta(days=30), user),
            "one user, 30 days, by model": ("model", now - timedelta(days=30), user),
            "one user, 30 days, by token": ("token", now - timedelta(days=30), user),
            "admin, 7 days, by model": ("model", now - timedelta(days=7), None),
            "admin, 7 days, by user": ("user", now - timedelta(days=7), None),
            "admin, 7 days, by day": ("day", now - timedelta(days=7), None),
        }
        plans: list[str] = []
        print("\n| query | groups | median ms (5 runs) |\n| --- | --- | --- |")
        for name, (by, since, user_id) in queries.items():
            await ledger.report(by, since, user_id=user_id)  # type: ignore[arg-type]
            times = []
            for _ in range(5):
                began = time.perf_counter()
                lines = await ledger.report(by, since, user_id=user_id)  # type: ignore[arg-type]
                times.append((time.perf_counter() - began) * 1000)
            print(f"| {name} | {len(lines)} | {statistics.median(times):,.1f} |")
            plans.append(f"## {name}\n" + await explain(engine, ledger, by, since, user_id))
        month = datetime(now.year, now.month, 1, tzinfo=UTC)
        times = []
        for _ in range(6):
            began = time.perf_counter()
            await ledger.spent(month, user_id=user)
            times.append((time.perf_counter() - began) * 1000)
        print(f"| spent(user, this month) | 1 | {statistics.median(times[1:]):,.1f} |")
        args.plans.write_text("\n\n".join(plans))
        print(f"\nplans: {args.plans}")
        await engine.dispose()
    finally:
        if not args.keep:
            async with admin.connect() as connection:
                await connection.execute(text(f'DROP DATABASE IF EXISTS "{NAME}" WITH (FORCE)'))
        await admin.dispose()


async def explain(
    engine: Any, ledger: Ledger, by: str, since: datetime, user_id: int | None
) -> str:
    """The plan of the report's query of the recent rows (the one that grows)."""
    from chatwire.store.ledger import _priced_cost, _sum_query, _unpriced
    from chatwire.store.models import UsageRow

    key = ledger._rows_key(by)  # type: ignore[arg-type]
    query = (
        _sum_query(UsageRow, key, _priced_cost(), _unpriced())
        .where(UsageRow.at >= since, UsageRow.at < datetime.now(UTC))
        .group_by(key)
    )
    if user_id is not None:
        query = query.where(UsageRow.user_id == user_id)
    sql = str(query.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    async with engine.connect() as connection:
        result = await connection.execute(text(f"EXPLAIN (ANALYZE, BUFFERS) {sql}"))
        return "\n".join(line for (line,) in result)


if __name__ == "__main__":
    asyncio.run(main())
