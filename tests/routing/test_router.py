"""The router's order by strategy, unit-level: weights honoured over 1,000 draws within
statistical bounds, priority, least busy, lowest latency, and cooldowns skipped."""

from __future__ import annotations

import math
import random
import time
from collections import Counter

from chatwire.routing.groups import Deployment, Group
from chatwire.routing.router import Router


def _group(strategy: str, *weights: float) -> Group:
    deployments = tuple(
        Deployment(f"d{i}", "mistral", f"m{i}", weight=weight, priority=len(weights) - i)
        for i, weight in enumerate(weights)
    )
    return Group("g", strategy, deployments)  # type: ignore[arg-type]


def _firsts(router: Router, group: Group, draws: int) -> Counter[str]:
    return Counter(router.order(group)[0].name for _ in range(draws))


def test_weights_are_honoured_over_1000_draws() -> None:
    weights = (1.0, 2.0, 7.0)
    group = _group("weighted", *weights)
    draws = 1000
    for seed in range(5):
        firsts = _firsts(Router({"g": group}, 30, rng=random.Random(seed)), group, draws)
        for i, weight in enumerate(weights):
            share = weight / sum(weights)
            spread = math.sqrt(draws * share * (1 - share))
            # Within 4.5 standard deviations: a fair draw fails this about once in 150,000.
            assert abs(firsts[f"d{i}"] - draws * share) < 4.5 * spread, (seed, firsts)


def test_a_weight_of_zero_is_only_a_failover() -> None:
    group = _group("weighted", 0.0, 1.0)
    router = Router({"g": group}, 30, rng=random.Random(1))
    orders = {tuple(d.name for d in router.order(group)) for _ in range(200)}
    assert orders == {("d1", "d0")}


def test_weighted_orders_every_deployment_once() -> None:
    group = _group("weighted", 1.0, 1.0, 1.0)
    router = Router({"g": group}, 30, rng=random.Random(2))
    for _ in range(100):
        assert sorted(d.name for d in router.order(group)) == ["d0", "d1", "d2"]


def test_priority_orders_by_priority_then_as_listed() -> None:
    deployments = (
        Deployment("late", "mistral", "a", priority=2),
        Deployment("early", "mistral", "b", priority=0),
        Deployment("tie", "mistral", "c", priority=2),
    )
    group = Group("g", "priority", deployments)
    assert [d.name for d in Router({"g": group}, 30).order(group)] == ["early", "late", "tie"]


def test_least_busy_goes_to_the_fewest_in_flight() -> None:
    group = _group("least-busy", 1, 1, 1)
    router = Router({"g": group}, 30)
    order = router.order(group, busy={"d0": 4, "d1": 0, "d2": 2})
    assert [d.name for d in order] == ["d1", "d2", "d0"]


async def test_least_busy_counts_chats_in_flight_in_process() -> None:
    group = _group("least-busy", 1, 1)
    router = Router({"g": group}, 30)
    first = (await router.plan(group))[0].name
    await router.started(group, first)
    assert (await router.plan(group))[0].name != first
    await router.finished(group, first)
    assert router._busy == Counter()


def test_latency_prefers_the_fastest_and_measures_the_unmeasured_first() -> None:
    group = _group("latency", 1, 1, 1)
    router = Router({"g": group}, 30)
    router.answered("g", "d0", 0.5)
    router.answered("g", "d1", 0.1)
    assert [d.name for d in router.order(group)] == ["d2", "d1", "d0"]
    router.answered("g", "d2", 0.3)
    assert [d.name for d in router.order(group)] == ["d1", "d2", "d0"]


def test_latency_is_decayed_toward_recent_figures() -> None:
    group = _group("latency", 1)
    router = Router({"g": group}, 30)
    router.answered("g", "d0", 1.0)
    for _ in range(20):
        router.answered("g", "d0", 0.1)
    assert abs(router.latency[("g", "d0")] - 0.1) < 0.01


async def test_a_cooling_deployment_is_skipped_and_all_cooling_tries_the_soonest() -> None:
    group = _group("priority", 1, 1)  # d1 first: the lower priority figure
    router = Router({"g": group}, 30)
    await router.cool("g", "d1", None)
    assert [d.name for d in await router.plan(group)] == ["d0"]
    await router.cool("g", "d0", 5)  # ends before d1's 30 s
    assert [d.name for d in await router.plan(group)] == ["d0"]
    assert router.cooldowns == Counter({("g", "d1"): 1, ("g", "d0"): 1})


async def test_a_retry_after_is_kept_to_an_hour_at_most() -> None:
    group = _group("priority", 1)
    router = Router({"g": group}, 30)
    await router.cool("g", "d0", 10**9)
    assert router._cool[("g", "d0")] - time.time() <= 3600.5


async def test_redis_not_answering_leaves_routing_on_the_process_own_figures() -> None:
    from chatwire.team.redis_counters import redis_client
    from tests.test_serve import free_port

    # The client the server makes (no retries), on a port nothing listens on.
    client = redis_client(f"redis://127.0.0.1:{free_port()}/0", 0.2)
    group = _group("least-busy", 1, 1)
    router = Router({"g": group}, 30, redis=client)
    try:
        await router.cool("g", "d0", None)  # kept here although Redis refused it
        await router.started(group, "d1")
        assert [d.name for d in await router.plan(group)] == ["d1"]
        await router.finished(group, "d1")
        assert router.redis_errors == 4
    finally:
        await client.aclose()


async def test_the_shared_cooldowns_are_read_again_every_quarter_second(
    redis_prefix: str,
) -> None:
    import asyncio

    import redis.asyncio

    from chatwire.routing import router as module
    from tests.routing.conftest import SHARED_REDIS

    client = redis.asyncio.Redis.from_url(SHARED_REDIS)
    group = _group("priority", 1, 1)  # d1 first
    one = Router({"g": group}, 30, redis=client, prefix=redis_prefix)
    other = Router({"g": group}, 30, redis=client, prefix=redis_prefix)
    try:
        assert [d.name for d in await other.plan(group)] == ["d1", "d0"]  # read now
        await one.cool("g", "d1", None)
        assert [d.name for d in await one.plan(group)] == ["d0"]
        # The other's read is fresh: the cooldown shows once it is SHARED_FOR old.
        assert [d.name for d in await other.plan(group)] == ["d1", "d0"]
        await asyncio.sleep(module.SHARED_FOR + 0.05)
        assert [d.name for d in await other.plan(group)] == ["d0"]
        fresh = Router({"g": group}, 30, redis=client, prefix=redis_prefix)
        assert [d.name for d in await fresh.plan(group)] == ["d0"]  # nothing read yet: now
    finally:
        await client.aclose()
