"""The team layer across a fleet: three processes behind HAProxy, one PostgreSQL, one Redis.

A token's limits hold for the fleet, not per process; a revoked token is refused everywhere
at once; the ledger has one row per chat with the counts the provider reported; a Redis
that goes away costs no 500 and, back, shares the limits again without a restart.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import select

from chatwire.cli import open_store
from chatwire.store.models import UsageRow
from tests.api.test_metrics import metric
from tests.fakes.fake_mistral import FakeMistral
from tests.fleet.conftest import FLEET, PROCESSES, Fleet
from tests.test_cli import Result

pytestmark = FLEET

# An authenticated route that does little else: the revocation is what is timed.
ONE_MODEL = "/v1/models/mistral/mistral-small-latest"
BODY = {
    "model": "mistral/mistral-small-latest",
    "messages": [{"role": "user", "content": "Hello there"}],
    "stream": True,
    "stream_options": {"include_usage": True},
    "max_tokens": 64,
}


async def command(fleet: Fleet, *args: str) -> Result:
    """A ``chatwire`` command, run as the operator would (in a thread: it runs its own loop)."""
    return await asyncio.to_thread(fleet.command.run, *args)


async def new_token(fleet: Fleet, *options: str) -> str:
    done = await command(fleet, "tokens", "create", "alice", *options)
    assert done.returncode == 0, done
    return done.stdout.strip()


async def token_id(fleet: Fleet, name: str) -> int:
    async with open_store(fleet.settings) as store:
        tokens = await store.list_tokens("alice")
    return next(t.id for t in tokens if t.name == name)


async def send(fleet: Fleet, token: str, count: int) -> list[httpx.Response]:
    """``count`` chats at once through the balancer, each read to its end."""
    async with httpx.AsyncClient(
        base_url=fleet.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as client:
        return list(
            await asyncio.gather(
                *(client.post("/v1/chat/completions", json=BODY) for _ in range(count))
            )
        )


async def ledger_rows(fleet: Fleet, token: int, expected: int) -> list[UsageRow]:
    """The token's ledger rows once ``expected`` of them are written (batches, off the hot
    path: within a second or so)."""
    async with open_store(fleet.settings) as store:
        engine = store.engine
        ends = time.monotonic() + 10
        while True:
            async with engine.connect() as conn:
                rows: list[Any] = list(
                    (await conn.execute(select(UsageRow).where(UsageRow.token_id == token))).all()
                )
            if len(rows) >= expected or time.monotonic() > ends:
                return rows
            await asyncio.sleep(0.1)


async def test_a_token_gets_exactly_its_requests_per_minute_across_the_fleet(
    fleet: Fleet, fake: FakeMistral
) -> None:
    token = await new_token(fleet, "--name", "ci-bot", "--rpm", "60")
    replies = await send(fleet, token, 90)
    statuses = Counter(r.status_code for r in replies)
    assert statuses == {200: 60, 429: 30}, statuses
    # Every process answered some: counted per process, each would have admitted all of its
    # own, 90 in all. Which process's requests came first is the load balancer's and the
    # machine's affair, so one may have admitted none.
    answered = Counter(r.headers["x-fleet-server"] for r in replies)
    assert len(answered) == PROCESSES, answered
    refused = [r for r in replies if r.status_code == 429]
    for reply in refused:
        assert "Token 'ci-bot' is at its 60 requests per minute; try again in" in reply.text
        assert 1 <= int(reply.headers["retry-after"]) <= 60
    # The upstream was asked exactly 60 times.
    assert len(fake.requests) == 60

    # The ledger: one row per chat, the refused ones too, with what the fake reported.
    rows = await ledger_rows(fleet, await token_id(fleet, "ci-bot"), 90)
    assert len(rows) == 90
    assert len({row.request_id for row in rows}) == 90
    assert {r.headers["x-request-id"] for r in replies} == {row.request_id for row in rows}
    by_outcome = Counter(row.outcome for row in rows)
    assert by_outcome == {"complete": 60, "refused": 30}
    reported = fake.usages  # every reply's usage, in the order the fake sent them
    complete = [row for row in rows if row.outcome == "complete"]
    assert sorted((row.input_tokens, row.output_tokens) for row in complete) == sorted(
        (u["prompt_tokens"], u["completion_tokens"]) for u in reported
    )
    assert not any(row.estimated for row in complete)
    # mistral-small-latest is priced: every complete chat has an exact cost.
    assert all(row.priced and row.cost is not None and row.cost > 0 for row in complete)
    assert all(
        row.input_tokens == row.output_tokens == 0 for row in rows if row.outcome == "refused"
    )


async def test_a_larger_limit_is_kept_from_allowances_exactly_across_the_fleet(
    fleet: Fleet, fake: FakeMistral
) -> None:
    # 640 requests a minute: each process may reserve up to 10 chats ahead (team.allowances)
    # and admit them with no round trip to Redis; the fleet still admits no more than 640,
    # and once the processes gave back what they held unused, exactly 640.
    token = await new_token(fleet, "--name", "big", "--rpm", "640")
    statuses: Counter[int] = Counter()
    for _ in range(4):
        statuses.update(r.status_code for r in await send(fleet, token, 150))
        assert statuses[200] <= 640
    assert statuses[200] + statuses[429] == 600
    # A refusal while another process held part of the room unused is the documented early
    # refusal: once every allowance is 1 s old, its unused part is given back, and the room
    # is there again. Waves until one gets none: every request of the minute was used.
    for _ in range(10):
        await asyncio.sleep(1.3)
        replies = await send(fleet, token, 60)
        statuses.update(r.status_code for r in replies)
        assert statuses[200] <= 640
        if not any(r.status_code == 200 for r in replies):
            break
    assert statuses[200] == 640, statuses
    assert len(fake.requests) == 640
    # The processes admitted chats from their allowances.
    from_allowances = 0
    for served in fleet.processes:
        async with httpx.AsyncClient(base_url=served.url) as client:
            text = (await client.get("/metrics")).text
        from_allowances += int(metric(text, "chatwire_limits_allowance_chats_total"))
    assert from_allowances > 300, from_allowances


async def test_a_revoked_token_is_refused_by_every_process_within_100_ms(fleet: Fleet) -> None:
    token = await new_token(fleet, "--name", "laptop")
    ports = [int(p.url.rsplit(":", 1)[1]) for p in fleet.processes]
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(headers=headers, timeout=10) as client:
        # Every process has the token in its cache (answered from memory from now on).
        for port in ports:
            for _ in range(2):
                resp = await client.get(f"http://127.0.0.1:{port}{ONE_MODEL}")
                assert resp.status_code == 200, resp.text
        ident = await token_id(fleet, "laptop")
        done = await command(fleet, "tokens", "revoke", str(ident))
        assert done.returncode == 0, done
        revoked = time.monotonic()

        async def refused_after(port: int) -> float:
            while True:
                resp = await client.get(f"http://127.0.0.1:{port}{ONE_MODEL}")
                if resp.status_code == 401:
                    return time.monotonic() - revoked
                assert resp.status_code == 200
                assert time.monotonic() - revoked < 2, "still answered 2 s after the revoke"

        took = await asyncio.gather(*(refused_after(port) for port in ports))
    assert max(took) < 0.1, took


async def test_redis_going_away_costs_no_500_and_limits_come_back_without_a_restart(
    fleet: Fleet,
) -> None:
    limited = await new_token(fleet, "--name", "limited", "--rpm", "1000")
    assert {r.status_code for r in await send(fleet, limited, 6)} == {200}
    await fleet.redis.stop()
    # CHATWIRE_REDIS_FAILURE=open (the default): each process counts in its own memory and
    # keeps serving; never a 500, never a hang past the Redis timeout.
    started = time.monotonic()
    during = await send(fleet, limited, 12)
    assert {r.status_code for r in during} == {200}, [r.text for r in during]
    assert time.monotonic() - started < 10
    await fleet.redis.start()
    # Back: the processes find it again on their own and the limits are the fleet's again.
    ends = time.monotonic() + 15
    while True:
        five = await new_token(
            fleet, "--name", f"five-{int(time.monotonic() * 1000)}", "--rpm", "5"
        )
        statuses = Counter(r.status_code for r in await send(fleet, five, 12))
        if statuses == {200: 5, 429: 7} or time.monotonic() > ends:
            break
        await asyncio.sleep(0.5)
    assert statuses == {200: 5, 429: 7}


async def test_a_budget_is_not_overshot_across_the_fleet(fleet: Fleet) -> None:
    # Each chat reserves its estimate (the body's bytes / 4 in, max_tokens 64 out) at the
    # model's price, more than it costs: the fleet stops before the budget, never past it.
    budget = Decimal("0.0002")
    token = await new_token(
        fleet, "--name", "budgeted", "--budget", str(budget), "--budget-period", "day"
    )
    replies = await send(fleet, token, 60)
    statuses = Counter(r.status_code for r in replies)
    assert statuses[200] > 0, statuses
    assert statuses[429] > 0, statuses
    assert set(statuses) == {200, 429}
    quota = [r.json() for r in replies if r.status_code == 429]
    assert {q["error"]["code"] for q in quota} == {"insufficient_quota"}
    rows = await ledger_rows(fleet, await token_id(fleet, "budgeted"), 60)
    spent = sum((row.cost for row in rows if row.cost is not None), Decimal(0))
    assert 0 < spent <= budget, spent
