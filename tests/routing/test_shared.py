"""Two chatwire instances sharing a Redis prefix: a cooldown one of them set is honoured by
the other, and chats in flight on one count for the other's least-busy choice."""

from __future__ import annotations

import asyncio

from tests.fakes.fake_mistral import FakeMistral
from tests.routing.conftest import SHARED_REDIS, RoutedFactory, group
from tests.routing.doors import ask

SECOND = "second=mistral/mistral-small-latest"


def _asked(fake: FakeMistral, model: str) -> int:
    return sum(1 for request in fake.requests if (request.json or {}).get("model") == model)


async def test_a_cooldown_set_by_one_instance_is_honoured_by_the_other(
    routed: RoutedFactory, fake: FakeMistral, redis_prefix: str
) -> None:
    routes = group("g", "first=mistral/fake-429", SECOND)
    shared = {"redis_url": SHARED_REDIS, "redis_prefix": redis_prefix}
    one = await routed(routes, **shared)
    other = await routed(routes, **shared)
    alone = await routed(routes, redis_url=SHARED_REDIS, redis_prefix=redis_prefix + "x:")
    resp = await ask(one, "chat", "g", False)
    assert resp.headers["x-chatwire-deployment"] == "second"
    assert _asked(fake, "fake-429") == 1  # the 429's Retry-After (7 s) is the cooldown
    resp = await ask(other, "chat", "g", True)
    assert resp.headers["x-chatwire-deployment"] == "second"
    assert _asked(fake, "fake-429") == 1  # skipped: the other instance's cooldown
    # An instance that does not share the prefix knows nothing of it, and asks again.
    await ask(alone, "chat", "g", False)
    assert _asked(fake, "fake-429") == 2


async def test_least_busy_counts_the_other_instances_chats(
    routed: RoutedFactory, fake: FakeMistral, redis_prefix: str
) -> None:
    routes = group("g", "a=mistral/fake-slow", "b=mistral/fake-slow", strategy="least-busy")
    shared = {"redis_url": SHARED_REDIS, "redis_prefix": redis_prefix}
    one = await routed(routes, **shared)
    other = await routed(routes, **shared)
    body = {"model": "g", "messages": [{"role": "user", "content": "a b c d e f"}], "stream": True}
    async with one.client.stream(
        "POST", "/v1/chat/completions", json=body, headers=one.auth
    ) as held:
        assert held.headers["x-chatwire-deployment"] == "a"  # both idle: a, listed first
        resp = await ask(other, "chat", "g", False)
        assert resp.headers["x-chatwire-deployment"] == "b"  # a is busy on the other one
        await held.aread()
    await asyncio.sleep(0.1)
    resp = await ask(other, "chat", "g", False)
    assert resp.headers["x-chatwire-deployment"] == "a"  # the held chat ended: a again
