"""Allowances (``team.allowances``): chats admitted from a process's share reserved ahead in
Redis, checked against what Redis holds, with two processes' ``Limits`` on one real Redis
(under a key prefix of the test's own)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
import redis.asyncio

from chatwire.errors import LimitExceeded, QuotaExceeded
from chatwire.team import allowances
from chatwire.team.allowances import Allowance
from chatwire.team.counters import Check, Hold, MemoryCounters
from chatwire.team.limits import Limits
from chatwire.team.prices import Price
from chatwire.team.redis_counters import RedisCounters, redis_client

PRICE = Price(since=datetime(2025, 1, 1).date(), input=Decimal(1), output=Decimal(2))


@pytest.fixture
async def fleet(redis_url: str, prefix: str) -> AsyncIterator[Callable[[], Limits]]:
    """Makes ``Limits`` as processes have them: each with its own client, on one Redis."""
    made: list[tuple[Limits, Any]] = []

    def make() -> Limits:
        client = redis_client(redis_url, 5.0)
        limits = Limits(MemoryCounters(), RedisCounters(client, prefix), lease_seconds=600)
        made.append((limits, client))
        return limits

    yield make
    for limits, client in made:
        await limits.close()
        await client.aclose()


@pytest.fixture
async def peek(redis_url: str, prefix: str) -> AsyncIterator[Any]:
    client = redis.asyncio.Redis.from_url(redis_url)
    client.key = lambda name: prefix + name  # type: ignore[attr-defined]
    yield client
    await client.aclose()


def token_check(kind: Any, limit: int, key: str, **more: Any) -> Check:
    return Check(kind, limit, key, "Token 'ci-bot'", "token", 1, **more)


async def try_admit(limits: Limits, checks: list[Check], tokens: int = 0) -> Hold | None:
    try:
        return await limits.admit(checks, tokens, 0, PRICE, "mistral/x")
    except (LimitExceeded, QuotaExceeded):
        return None


async def granted(limits: Limits) -> None:
    """Wait until the allowance asked for in the background is there."""
    assert limits.allowances is not None
    for _ in range(200):
        if limits.allowances.current and not limits.allowances.asking:
            return
        await asyncio.sleep(0.005)
    raise AssertionError("no allowance was granted")


async def test_two_processes_never_admit_past_an_rpm_and_reach_it_exactly(
    fleet: Callable[[], Limits], peek: Any
) -> None:
    checks = [token_check("rpm", 640, "t:1:rpm")]
    a, b = fleet(), fleet()
    admitted = 0
    for _ in range(8):  # waves of 200 concurrent chats, 100 on each process
        which = [limits for limits in (a, b) for _ in range(100)]
        holds = await asyncio.gather(*(try_admit(limits, checks) for limits in which))
        admitted += sum(h is not None for h in holds)
        for limits, h in zip(which, holds, strict=True):
            if h is not None:
                await limits.settle(h, 0, Decimal(0))
        # What Redis counts never falls below what was admitted (nor past the limit).
        assert admitted <= 640
        assert await peek.zcard(peek.key("t:1:rpm")) >= admitted
        await asyncio.sleep(0.02)
    assert a.allowances is not None
    assert b.allowances is not None
    assert a.allowances.granted + b.allowances.granted > 0  # the chats were mostly local
    # Both processes give back what they did not use: Redis then counts exactly the
    # admitted chats, and the rest of the minute's room is there for anyone.
    await a.close()
    await b.close()
    assert await peek.zcard(peek.key("t:1:rpm")) == admitted
    c = fleet()
    more = 0
    while await try_admit(c, checks) is not None:
        more += 1
        assert more <= 640
    assert admitted + more == 640


async def test_a_request_from_an_allowance_counts_from_its_own_time(
    fleet: Callable[[], Limits], peek: Any
) -> None:
    checks = [token_check("rpm", 6400, "t:1:rpm")]
    limits = fleet()
    first = await try_admit(limits, checks)
    assert first is not None
    assert first.backend is limits.redis
    await granted(limits)
    await asyncio.sleep(0.3)
    before = int(time.time() * 1000)
    second = await try_admit(limits, checks)
    assert second is not None
    assert isinstance(second.backend, Allowance)
    await limits.close()
    scores = dict(await peek.zrange(peek.key("t:1:rpm"), 0, -1, withscores=True))
    # The first chat's entry, and the second's moved from the allowance's time to its own;
    # the allowance's unused entries are gone.
    assert len(scores) == 2
    assert scores[second.id.encode()] >= before
    assert scores[first.id.encode()] < before - 250


async def test_tokens_and_costs_settle_to_the_real_ones_exactly(
    fleet: Callable[[], Limits], peek: Any
) -> None:
    checks = [
        token_check("tpm", 64 * 64 * 1000, "t:1:tpm"),
        token_check("budget", 10**12, "t:1:usd", period="total"),
    ]
    limits = fleet()
    holds: list[Hold] = []
    for _ in range(30):
        h = await try_admit(limits, checks, tokens=1000)
        assert h is not None
        holds.append(h)
        if len(holds) == 1:
            await granted(limits)
    assert sum(isinstance(h.backend, Allowance) for h in holds) >= 20
    # Each chat really used 7 tokens and cost $0.000013.
    for h in holds:
        await limits.settle(h, 7, Decimal("0.000013"))
    await limits.close()
    assert int(await peek.get(peek.key("t:1:tpm:sum"))) == 30 * 7
    members = await peek.zrange(peek.key("t:1:tpm"), 0, -1)
    # One entry per chat, of its real tokens: no reservation is left.
    assert len(members) == 30
    assert all(m.endswith(b":7") for m in members), members
    assert int(await peek.get(peek.key("t:1:usd:total"))) == 30 * 13


async def test_places_held_across_processes_never_pass_the_limit_and_all_free(
    fleet: Callable[[], Limits], peek: Any
) -> None:
    checks = [token_check("parallel", 640, "t:1:par")]
    a, b = fleet(), fleet()
    running: list[tuple[Limits, Hold]] = []
    for _ in range(6):
        for limits in (a, b):
            for _ in range(60):
                h = await try_admit(limits, checks)
                if h is not None:
                    running.append((limits, h))
        assert len(running) <= 640
        assert await peek.zcard(peek.key("t:1:par")) >= len(running)
        # Half of the chats end.
        for limits, h in running[::2]:
            await limits.settle(h, 0, Decimal(0))
        running = running[1::2]
        await asyncio.sleep(allowances.FLUSH_S * 3)
    for limits, h in running:
        await limits.settle(h, 0, Decimal(0))
    await a.close()
    await b.close()
    assert await peek.zcard(peek.key("t:1:par")) == 0


async def test_small_limits_get_no_allowance(fleet: Callable[[], Limits]) -> None:
    checks = [token_check("rpm", 60, "t:1:rpm")]
    limits = fleet()
    for _ in range(20):
        h = await try_admit(limits, checks)
        assert h is not None
        assert h.backend is limits.redis
    assert limits.allowances is not None
    assert limits.allowances.granted == 0


async def test_a_changed_limit_is_not_served_from_an_allowance_of_the_old_one(
    fleet: Callable[[], Limits],
) -> None:
    limits = fleet()
    generous = [token_check("rpm", 6400, "t:1:rpm")]
    assert await try_admit(limits, generous) is not None
    await granted(limits)
    h = await try_admit(limits, generous)
    assert h is not None
    assert isinstance(h.backend, Allowance)
    # The token's policy is now 2 requests a minute: its next chat asks Redis, which holds
    # the two already admitted (and the allowance's reservation), and is refused.
    strict = [token_check("rpm", 2, "t:1:rpm")]
    assert await try_admit(limits, strict) is None


async def test_a_shutdown_waits_at_most_close_within_for_a_stalled_redis(
    own_redis: Any,
) -> None:
    client = redis_client(own_redis.url, 5.0)
    limits = Limits(MemoryCounters(), RedisCounters(client, "t:"), lease_seconds=600)
    try:
        checks = [token_check("rpm", 6400, "t:1:rpm")]
        assert await try_admit(limits, checks) is not None
        await granted(limits)
        assert await try_admit(limits, checks) is not None  # from the allowance
        # Redis stops answering (its client's calls would each wait 5 s).
        own_redis.pause()
        started = time.monotonic()
        await limits.close()
        assert time.monotonic() - started < allowances.CLOSE_WITHIN + 1
        own_redis.resume()
    finally:
        await client.aclose()
