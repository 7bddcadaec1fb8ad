"""The counters' semantics, the same in memory and in Redis (a real one, under a key prefix
of the test's own): the times are given, so the windows are exact to the millisecond."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from chatwire.errors import LimitExceeded, ModelUnpriced, QuotaExceeded, TooManyStreams
from chatwire.store.records import Policy, UserRecord
from chatwire.team.counters import (
    WINDOW_MS,
    Check,
    Counters,
    Hold,
    MemoryCounters,
    Refusal,
    estimate_tokens,
    micros,
    period_end,
    period_start,
)
from chatwire.team.limits import Limits, refused
from chatwire.team.prices import Price
from chatwire.team.redis_counters import RedisCounters, redis_client

T0 = 1_800_000_000_000  # ms
LEASE = 5_000


@pytest.fixture(params=["memory", "redis"])
async def counters(
    request: pytest.FixtureRequest, redis_url: str, prefix: str
) -> AsyncIterator[Counters]:
    if request.param == "memory":
        yield MemoryCounters()
        return
    client = redis_client(redis_url, 5.0)
    try:
        yield RedisCounters(client, prefix)
    finally:
        await client.aclose()


_n = 0


def hold(counters: Counters, checks: list[Check], tokens: int = 0, cost: int = 0) -> Hold:
    global _n
    _n += 1
    return Hold(f"h{_n}", checks, tokens, cost, counters)


def check(kind: Any, limit: int, key: str = "t:1:x", **more: Any) -> Check:
    return Check(kind, limit, key, "Token 'ci-bot'", "token", 1, **more)


async def admit(counters: Counters, h: Hold, now: int, seeds: dict[int, int] | None = None) -> Any:
    return await counters.admit(h, now, LEASE, seeds or {})


async def test_rpm_is_an_exact_sliding_window(counters: Counters) -> None:
    rpm = [check("rpm", 3)]
    for ms in (0, 10_000, 20_000):
        assert await admit(counters, hold(counters, rpm), T0 + ms) is None
    refusal = await admit(counters, hold(counters, rpm), T0 + 30_000)
    assert refusal == Refusal(0, 30_000)  # the first frees at T0 + 60 s
    # A refused request takes no place: at exactly 60 s after the first, one frees.
    assert await admit(counters, hold(counters, rpm), T0 + WINDOW_MS - 1) == Refusal(0, 1)
    assert await admit(counters, hold(counters, rpm), T0 + WINDOW_MS) is None
    assert await admit(counters, hold(counters, rpm), T0 + WINDOW_MS + 1) == Refusal(0, 9_999)


async def test_tpm_reserves_then_settles_the_real_count(counters: Counters) -> None:
    tpm = [check("tpm", 1000)]
    first = hold(counters, tpm, tokens=600)
    assert await admit(counters, first, T0) is None
    second = hold(counters, tpm, tokens=500)
    refusal = await admit(counters, second, T0 + 1000)
    assert isinstance(refusal, Refusal)
    assert refusal.retry_ms == WINDOW_MS - 1000
    # The first used 100 tokens, not 600: counted now, in place of its reservation.
    await counters.settle(first, T0 + 2000, 100, 0)
    assert await admit(counters, second, T0 + 3000) is None  # 100 + 500
    third = hold(counters, tpm, tokens=450)
    refusal = await admit(counters, third, T0 + 4000)
    assert isinstance(refusal, Refusal)
    # 600 after the first's real 100 leaves at T0 + 62 s: 500 + 450 fit.
    assert refusal.retry_ms == 2000 + WINDOW_MS - 4000
    assert await admit(counters, third, T0 + 2000 + WINDOW_MS) is None


async def test_tpm_admits_a_chat_larger_than_the_limit_into_an_empty_window(
    counters: Counters,
) -> None:
    tpm = [check("tpm", 100)]
    assert await admit(counters, hold(counters, tpm, tokens=5000), T0) is None
    refusal = await admit(counters, hold(counters, tpm, tokens=1), T0 + 1)
    assert refusal == Refusal(0, WINDOW_MS - 1)


async def test_parallel_leases_end_by_themselves(counters: Counters) -> None:
    par = [check("parallel", 2)]
    a, b = hold(counters, par), hold(counters, par)
    assert await admit(counters, a, T0) is None
    assert await admit(counters, b, T0 + 100) is None
    assert await admit(counters, hold(counters, par), T0 + 200) == Refusal(0, 1000)
    await counters.settle(a, T0 + 300, 0, 0)
    c = hold(counters, par)
    assert await admit(counters, c, T0 + 300) is None
    # b and c never end (their process was killed): their leases do.
    assert isinstance(await admit(counters, hold(counters, par), T0 + 100 + LEASE - 1), Refusal)
    assert await admit(counters, hold(counters, par), T0 + 100 + LEASE) is None


async def test_budget_starts_from_its_seed_reserves_and_settles(counters: Counters) -> None:
    budget = [check("budget", 1000, key="t:1:usd:month:2027-01-01")]
    first = hold(counters, budget, cost=400)
    # No count yet in this period: asks for the ledger's figure first.
    assert await admit(counters, first, T0) == [0]
    assert await admit(counters, first, T0, {0: 300}) is None  # 300 + 400
    second = hold(counters, budget, cost=400)
    assert await admit(counters, second, T0 + 1) == Refusal(0, 0)
    await counters.settle(first, T0 + 2, 0, 100)  # 300 + 100
    assert await admit(counters, second, T0 + 3) is None  # 800
    # The seed counts once: a later one is ignored.
    assert isinstance(await admit(counters, hold(counters, budget, cost=201), T0 + 4), Refusal)
    assert await admit(counters, hold(counters, budget, cost=200), T0 + 5, {0: 0}) is None


async def test_all_checks_pass_or_none_is_counted(counters: Counters) -> None:
    both = [check("rpm", 10, key="t:1:rpm"), check("rpm", 1, key="u:1:rpm")]
    assert await admit(counters, hold(counters, both), T0) is None
    assert await admit(counters, hold(counters, both), T0 + 1) == Refusal(1, WINDOW_MS - 1)
    # The token's counter took nothing from the refused request.
    alone = [check("rpm", 2, key="t:1:rpm")]
    assert await admit(counters, hold(counters, alone), T0 + 2) is None
    assert await admit(counters, hold(counters, alone), T0 + 3) == Refusal(0, WINDOW_MS - 3)


async def test_concurrent_admissions_never_overshoot(counters: Counters) -> None:
    checks = [check("rpm", 50, key="t:9:rpm"), check("budget", 10_000, key="t:9:usd:total")]
    holds = [hold(counters, checks, cost=300) for _ in range(200)]
    results = await asyncio.gather(*(admit(counters, h, T0, {1: 0}) for h in holds))
    assert sum(result is None for result in results) == 33  # 33 * 300 <= 10_000


def test_periods_are_utc_calendar_ones() -> None:
    at = datetime(2026, 12, 2, 6, 30, tzinfo=UTC)  # a Wednesday
    assert period_start("day", at) == datetime(2026, 12, 2, tzinfo=UTC)
    assert period_start("week", at) == datetime(2026, 11, 30, tzinfo=UTC)
    assert period_start("month", at) == datetime(2026, 12, 1, tzinfo=UTC)
    assert period_start("total", at) is None
    assert period_end("month", datetime(2026, 12, 1, tzinfo=UTC)) == datetime(
        2027, 1, 1, tzinfo=UTC
    )
    assert period_end("week", datetime(2026, 11, 30, tzinfo=UTC)) == datetime(
        2026, 12, 7, tzinfo=UTC
    )


def test_amounts_are_exact_micro_dollars_rounded_up() -> None:
    assert micros(Decimal("0.0000001")) == 1
    assert micros(Decimal("1.5")) == 1_500_000
    assert micros(Decimal(0)) == 0
    assert estimate_tokens(401, None) == 101 + 4096
    assert estimate_tokens(8, 10) == 12


def alice(**policies: Policy | None) -> UserRecord:
    return UserRecord(id=7, name="alice", token_id=70, token_name="ci-bot", **policies)  # type: ignore[arg-type]


PRICE = Price(since=datetime(2025, 1, 1).date(), input=Decimal(1000), output=Decimal(2000))


async def test_the_messages_name_the_limit_and_when_it_frees() -> None:
    limits = Limits(MemoryCounters())
    user = alice(token_policy=Policy(rpm=1), policy=Policy(tpm=100, budget=Decimal("0.5")))
    checks = limits.checks(user)
    assert checks is not None
    assert [c.kind for c in checks] == ["rpm", "tpm", "budget"]
    await limits.admit(checks, 10, 10, PRICE, "mistral/x")
    with pytest.raises(LimitExceeded) as caught:
        await limits.admit(checks, 10, 10, PRICE, "mistral/x")
    assert (
        caught.value.message == "Token 'ci-bot' is at its 1 requests per minute; try again in 60 s."
    )
    assert caught.value.headers() == [(b"retry-after", b"60")]
    limits = Limits(MemoryCounters())
    user = alice(policy=Policy(tpm=100))
    checks = limits.checks(user)
    assert checks is not None
    await limits.admit(checks, 50, 40, None, "mistral/x")
    with pytest.raises(LimitExceeded) as caught:
        await limits.admit(checks, 10, 10, None, "mistral/x")
    assert caught.value.message.startswith("User 'alice' is at its 100 tokens per minute")
    assert caught.value.message.endswith("try again in 60 s.")
    # A budget needs a price.
    user = alice(token_policy=Policy(budget=Decimal(1)))
    checks = limits.checks(user)
    assert checks is not None
    with pytest.raises(ModelUnpriced) as unpriced:
        await limits.admit(checks, 1, 1, None, "mistral/unpriced")
    assert "'mistral/unpriced'" in unpriced.value.message
    assert "CHATWIRE_PRICES_FILE" in unpriced.value.message
    # 1000 + 2000 tokens at $1000 and $2000 a million: $5; the budget is $1.
    with pytest.raises(QuotaExceeded) as quota:
        await limits.admit(checks, 1000, 2000, PRICE, "mistral/x")
    assert quota.value.message.startswith(
        "Token 'ci-bot' has reached its budget of $1.00 this month (this chat may cost up to $5"
    )
    assert "it starts again in" in quota.value.message
    assert int(quota.value.headers()[0][1]) > 0


def test_nothing_to_count_is_none() -> None:
    limits = Limits(MemoryCounters(), streams_per_user=512)
    assert limits.checks(alice()) is None
    assert limits.checks(alice(policy=Policy(models=("mistral/*",)))) is None
    # Without Redis the per-user chats are the process's own count (api.admission).
    assert limits.checks(alice(policy=Policy())) is None


def test_a_total_budget_never_starts_again() -> None:
    c = Check("budget", 100, "u:1:usd:total", "User 'alice'", "user", 1, "total")
    h = Hold("x", [c], 0, 500, MemoryCounters())
    error = refused(h, Refusal(0, 0), 0.0)
    assert isinstance(error, QuotaExceeded)
    assert error.headers() == []
    assert error.message == (
        "User 'alice' has reached its budget of $0.00 in total (this chat may cost up to $0.0005)."
    )
    streams = Check("streams", 4, "u:1:streams", "", "user", 1)
    assert isinstance(
        refused(Hold("y", [streams], 0, 0, MemoryCounters()), Refusal(0, 1000), 0), TooManyStreams
    )


async def test_closed_refuses_policies_but_not_the_per_user_cap_while_redis_is_down() -> None:
    from chatwire.errors import LimitsUnavailable
    from tests.test_serve import free_port

    client = redis_client(f"redis://127.0.0.1:{free_port()}/0", 0.2)
    limits = Limits(
        MemoryCounters(), RedisCounters(client, "x:"), failure="closed", streams_per_user=2
    )
    try:
        await limits.warm()  # refused: down from the start, one warning
        assert not limits.up
        assert limits.outages == 1
        plain = limits.checks(alice())
        assert plain is not None
        assert [c.kind for c in plain] == ["streams"]
        held = [await limits.admit(plain, 1, 1, None, "m/x") for _ in range(2)]
        with pytest.raises(TooManyStreams):
            await limits.admit(plain, 1, 1, None, "m/x")
        await limits.settle(held[0], None, None)
        await limits.admit(plain, 1, 1, None, "m/x")
        limited = limits.checks(alice(token_policy=Policy(rpm=5)))
        assert limited is not None
        with pytest.raises(LimitsUnavailable) as caught:
            await limits.admit(limited, 1, 1, None, "m/x")
        assert caught.value.status == 503
        assert caught.value.headers() == [(b"retry-after", b"1")]
    finally:
        await limits.close()
        await client.aclose()


async def test_the_per_user_chat_cap_is_shared_by_every_process_on_one_redis(
    redis_url: str, prefix: str
) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    from chatwire.core.config import Settings
    from chatwire.services import _team
    from chatwire.store.ledger import Ledger

    settings = Settings(redis_url=redis_url, redis_prefix=prefix, max_streams_per_user=1)
    ledger = Ledger(create_async_engine("sqlite+aiosqlite://"))
    (here, _), (there, _) = _team(settings, ledger), _team(settings, ledger)
    try:
        await here.warm()
        await there.warm()
        checks = here.checks(alice())
        assert checks is not None
        held = await here.admit(checks, 1, 1, None, "m/x")
        with pytest.raises(TooManyStreams):
            await there.admit(checks, 1, 1, None, "m/x")
        await here.settle(held, None, None)
        await there.settle(await there.admit(checks, 1, 1, None, "m/x"), None, None)
    finally:
        for limits in (here, there):
            await limits.close()
            assert limits.redis is not None
            await limits.redis.client.aclose()


async def test_a_place_held_when_redis_stopped_answering_frees_once_it_answers_again(
    prefix: str,
) -> None:
    """A chat that ends while Redis does not answer (a partition: Redis keeps its data) has
    its settlement made once Redis answers again, so its place frees then, not when its lease
    runs out (31 minutes by default)."""
    from tests.dbproxy import DatabaseProxy

    proxy = DatabaseProxy(target_port=6379)
    await proxy.start()
    client = redis_client(f"redis://127.0.0.1:{proxy.port}/0", 0.3)
    limits = Limits(MemoryCounters(), RedisCounters(client, prefix))
    one_at_once = limits.checks(alice(token_policy=Policy(parallel=1)))
    assert one_at_once is not None
    try:
        first = await limits.admit(one_at_once, 10, 10, None, "m/x")
        with pytest.raises(LimitExceeded):
            await limits.admit(one_at_once, 10, 10, None, "m/x")
        await proxy.stop()
        await limits.settle(first, 12, None)  # Redis refuses: the settlement waits
        assert not limits.up
        assert limits.waiting == 1
        await proxy.resume()
        async with asyncio.timeout(5):
            while limits.waiting or not limits.up:  # noqa: ASYNC110 (the probe's own pace)
                await asyncio.sleep(0.05)
        assert limits.replayed == 1
        # The place is free again, counted in Redis.
        second = await limits.admit(one_at_once, 10, 10, None, "m/x")
        assert second.backend is limits.redis
    finally:
        await limits.close()
        await client.aclose()
        await proxy.stop()


async def test_concurrent_calls_share_pipelines_and_survive_a_script_flush(
    own_redis: Any,
) -> None:
    """Chats' script calls that come while one is on its way go together once it is
    answered, each answered with its own result, in order; a Redis that lost its scripts
    (restarted, flushed) gets them again and the calls are made."""
    from chatwire.team.redis_counters import Calls

    client = redis_client(own_redis.url, 5.0)
    echo = client.register_script("redis.call('RPUSH', KEYS[1], ARGV[1]) return ARGV[1]")
    calls = Calls(client, (echo,))
    try:
        await calls.load()
        answers = await asyncio.gather(*(calls.call(echo.sha, ["seen"], [i]) for i in range(50)))
        assert answers == [str(i).encode() for i in range(50)]
        # Redis ran them in the order they were made.
        assert await client.lrange("seen", 0, -1) == [str(i).encode() for i in range(50)]
        await client.script_flush()
        again = await asyncio.gather(*(calls.call(echo.sha, ["more"], [i]) for i in range(10)))
        assert again == [str(i).encode() for i in range(10)]
        assert await client.llen("more") == 10
    finally:
        await client.aclose()
