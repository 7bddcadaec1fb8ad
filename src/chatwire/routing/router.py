"""Which deployment of a group a chat tries first, and what the deployments' recent luck was.

Order, by the group's strategy:

- ``priority``: by ``priority`` (lower first), then as the file lists them.
- ``weighted``: a weighted random order (Efraimidis-Spirakis: each deployment draws
  ``random() ** (1 / weight)``, highest first), so the first pick falls on each deployment in
  proportion to its weight and the rest follow as failovers; weight 0 only as a failover.
- ``least-busy``: fewest chats in flight first. Counted in Redis (one counter per deployment,
  shared by every process) when ``CHATWIRE_REDIS_URL`` is set, else in this process.
- ``latency``: lowest recent time to first byte first: an exponentially weighted average
  (each new figure counts ``LATENCY_WEIGHT``), kept per process. A deployment not measured
  yet comes first, so each one gets measured.

A deployment that failed is in cooldown for the upstream's Retry-After, else
``CHATWIRE_ROUTE_COOLDOWN`` seconds: skipped by every process when Redis is set (a key with
that expiry, which each process reads again at most every ``SHARED_FOR`` seconds per group),
by this one otherwise. When every deployment of a group is cooling, the one whose cooldown
ends first is tried anyway: a cooldown spares an upstream load, it never refuses a chat on
its own. Redis failing (or not answering within ``CHATWIRE_REDIS_TIMEOUT``) leaves routing
on this process's own figures, which are always kept too.

The figures for /metrics are plain counters here, read at scrape time.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from chatwire.routing.groups import Deployment, Group

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("chatwire.routing")

LATENCY_WEIGHT = 0.3
# Seconds the cooldowns read from Redis are reused: a routed chat whose first deployment
# answers pays no Redis round trip (one per group per process this often), and another
# process's cooldown is seen within this.
SHARED_FOR = 0.25
# A cooldown the upstream asks for is kept to this at most.
MAX_COOLDOWN = 3600.0
Key = tuple[str, str]  # (group, deployment)


class Router:
    def __init__(
        self,
        groups: Mapping[str, Group],
        cooldown: float,
        redis: Redis | None = None,
        prefix: str = "chatwire:",
        lease: float = 3600.0,
        rng: random.Random | None = None,
    ) -> None:
        self.groups = dict(groups)
        self.cooldown = cooldown
        self.redis = redis
        self.prefix = f"{prefix}route:"
        self.lease_ms = int(lease * 1000)
        self._rng = rng or random.Random()
        # (group, deployment) -> when its cooldown ends (time.time()); chats in flight here;
        # the decayed time to first byte (seconds).
        self._cool: dict[Key, float] = {}
        self._busy: Counter[Key] = Counter()
        self.latency: dict[Key, float] = {}
        # Group -> when its cooldowns were last read from Redis, and what they were.
        self._read: dict[str, tuple[float, dict[str, float]]] = {}
        # For /metrics.
        self.attempts: Counter[Key] = Counter()
        self.failovers: Counter[Key] = Counter()
        self.cooldowns: Counter[Key] = Counter()
        self.skipped: Counter[Key] = Counter()
        self.first_byte_count: Counter[Key] = Counter()
        self.first_byte_sum: dict[Key, float] = {}
        self.redis_errors = 0

    # Order.

    def order(
        self,
        group: Group,
        cooling: Mapping[str, float] | None = None,
        busy: Mapping[str, int] | None = None,
    ) -> list[Deployment]:
        """The deployments in the order a chat tries them; ``cooling``: deployment name ->
        when its cooldown ends; ``busy``: name -> chats in flight (least-busy)."""
        deployments = group.deployments
        strategy = group.strategy
        if strategy == "priority":
            ranked = sorted(deployments, key=_priority)
        elif strategy == "weighted":
            draw = self._rng.random
            ranked = sorted(
                deployments,
                key=lambda d: draw() ** (1.0 / d.weight) if d.weight > 0 else -1.0,
                reverse=True,
            )
        elif strategy == "least-busy":
            counts = busy or {}
            ranked = sorted(deployments, key=lambda d: (counts.get(d.name, 0), d.priority))
        else:
            latency, name = self.latency, group.name
            ranked = sorted(
                deployments, key=lambda d: (latency.get((name, d.name), 0.0), d.priority)
            )
        if not cooling:
            return ranked
        ready = [d for d in ranked if d.name not in cooling]
        if ready:
            return ready
        return [min(ranked, key=lambda d: cooling[d.name])]

    async def plan(self, group: Group) -> list[Deployment]:
        """The order for one chat, from the shared cooldowns and counts (one Redis round
        trip when Redis is set, none otherwise)."""
        now = time.time()
        name = group.name
        cooling = {
            d.name: until
            for d in group.deployments
            if (until := self._cool.get((name, d.name), 0.0)) > now
        }
        busy: dict[str, int] | None = None
        if group.strategy == "least-busy":
            busy = {d.name: self._busy[(name, d.name)] for d in group.deployments}
        if self.redis is not None:
            read = self._read.get(name)
            if busy is not None or read is None or time.monotonic() - read[0] > SHARED_FOR:
                read = await self._shared(group, now, busy)
            for deployment, until in read[1].items():
                if until > now:
                    cooling[deployment] = max(until, cooling.get(deployment, 0.0))
        return self.order(group, cooling, busy)

    async def _shared(
        self, group: Group, now: float, busy: dict[str, int] | None
    ) -> tuple[float, dict[str, float]]:
        """The group's cooldowns in Redis (and, for least-busy, its counts into ``busy``),
        kept for SHARED_FOR seconds."""
        assert self.redis is not None
        names = [d.name for d in group.deployments]
        keys = [self._key("cool", group.name, n) for n in names]
        if busy is not None:
            keys += [self._key("busy", group.name, n) for n in names]
        shared: dict[str, float] = {}
        read = (time.monotonic(), shared)
        try:
            values = await self.redis.mget(keys)
        except (RedisError, TimeoutError, OSError) as exc:
            self._redis_failed(exc)
            self._read[group.name] = read  # asked again after SHARED_FOR, not every chat
            return read
        self._read[group.name] = read
        for deployment, value in zip(names, values[: len(names)], strict=True):
            until = _number(value)
            if until > now:
                shared[deployment] = until
        if busy is not None:
            for deployment, value in zip(names, values[len(names) :], strict=True):
                busy[deployment] = int(_number(value))
        return read

    # What happened.

    async def cool(self, group: str, deployment: str, seconds: float | None) -> None:
        """Put the deployment in cooldown: ``seconds`` from its Retry-After, else the
        default."""
        wait = min(self.cooldown if seconds is None else seconds, MAX_COOLDOWN)
        key = (group, deployment)
        self.cooldowns[key] += 1
        if wait <= 0:
            return
        until = time.time() + wait
        self._cool[key] = until
        log.info("deployment %s of group %s cooling down for %.1f s", deployment, group, wait)
        if self.redis is None:
            return
        try:
            await self.redis.set(
                self._key("cool", group, deployment), f"{until:.3f}", px=max(1, int(wait * 1000))
            )
        except (RedisError, TimeoutError, OSError) as exc:
            self._redis_failed(exc)

    async def started(self, group: Group, deployment: str) -> None:
        """A chat of the deployment's is in flight (least-busy counts it)."""
        key = (group.name, deployment)
        self.attempts[key] += 1
        if group.strategy != "least-busy":
            return
        self._busy[key] += 1
        if self.redis is None:
            return
        name = self._key("busy", group.name, deployment)
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                # A process that dies holding counts leaves them only until the lease ends.
                pipe.incr(name)
                pipe.pexpire(name, self.lease_ms)
                await pipe.execute()
        except (RedisError, TimeoutError, OSError) as exc:
            self._redis_failed(exc)

    async def finished(self, group: Group, deployment: str) -> None:
        if group.strategy != "least-busy":
            return
        key = (group.name, deployment)
        self._busy[key] -= 1
        if self._busy[key] <= 0:
            del self._busy[key]
        if self.redis is None:
            return
        try:
            await self.redis.decr(self._key("busy", group.name, deployment))
        except (RedisError, TimeoutError, OSError) as exc:
            self._redis_failed(exc)

    def answered(self, group: str, deployment: str, first_byte: float) -> None:
        """The deployment's reply began ``first_byte`` seconds after it was asked."""
        key = (group, deployment)
        before = self.latency.get(key)
        self.latency[key] = (
            first_byte if before is None else before + LATENCY_WEIGHT * (first_byte - before)
        )
        self.first_byte_count[key] += 1
        self.first_byte_sum[key] = self.first_byte_sum.get(key, 0.0) + first_byte

    def _key(self, kind: str, group: str, deployment: str) -> str:
        return f"{self.prefix}{kind}:{group}:{deployment}"

    def _redis_failed(self, exc: BaseException) -> None:
        self.redis_errors += 1
        log.warning("routing: Redis failed (%r); this process's own figures route", exc)


def _priority(deployment: Deployment) -> int:
    return deployment.priority


def _number(value: bytes | str | None) -> float:
    if value is None:
        return 0.0
    try:
        return float(value)
    except ValueError:
        return 0.0
