"""The change bus's listener over a connection that stops answering without closing (half
open: a partition, a host gone without a reset), through a TCP proxy of the test's own in
front of the shared Redis: the listener notices within two PING intervals, and once the
connection answers again it clears every cache, then hears changes as before."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
import redis.asyncio

from chatwire.team import bus as bus_module
from chatwire.team.bus import Bus, listener
from tests.dbproxy import DatabaseProxy

REDIS_PORT = 6379


async def wait_for(check: Any, within: float) -> None:
    for _ in range(round(within / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not so within {within} s")


async def test_a_half_open_subscription_is_noticed_and_caches_cleared_when_it_answers(
    redis_url: str,
    prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(bus_module, "PING_EVERY", 0.3)
    monkeypatch.setattr(bus_module, "RECONNECT_EVERY", 0.05)
    proxy = DatabaseProxy(target_port=REDIS_PORT)
    await proxy.start()
    client = redis.asyncio.Redis.from_url(redis_url)
    bus = Bus(client, listener(f"redis://127.0.0.1:{proxy.port}/0", 1.0), prefix)
    heard: list[tuple[str, Any]] = []
    bus.bind(lambda kind, subject: heard.append((kind, subject)))
    bus.start()
    try:
        await asyncio.wait_for(bus.subscribed.wait(), 5)
        await bus.publish("token", 7)
        await wait_for(lambda: ("token", 7) in heard, 5)

        caplog.set_level(logging.WARNING, logger="chatwire.bus")
        proxy.stall()
        # No PONG comes back: within two intervals the subscription counts as lost.
        await wait_for(lambda: not bus.subscribed.is_set(), 2.0)
        assert any("lost the Redis subscription" in r.getMessage() for r in caplog.records)
        # A change published meanwhile is lost to this process...
        await bus.publish("token", 8)
        await asyncio.sleep(0.7)  # reconnections during the stall stay unanswered, quietly
        assert not bus.subscribed.is_set()
        lost = [r for r in caplog.records if "lost the Redis subscription" in r.getMessage()]
        assert len(lost) == 1, "one log line per outage"

        await proxy.resume()
        # ...so once the connection answers, every cache is forgotten, then news flows again.
        await wait_for(lambda: ("all", None) in heard, 5)
        await asyncio.wait_for(bus.subscribed.wait(), 5)
        await bus.publish("token", 9)
        await wait_for(lambda: ("token", 9) in heard, 5)
        assert heard.index(("all", None)) < heard.index(("token", 9))
        assert any(
            "listening for changes through Redis again" in r.getMessage() for r in caplog.records
        )
    finally:
        await bus.close()
        await client.aclose()
        await proxy.stop()
