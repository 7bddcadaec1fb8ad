"""Failed bearer tokens, throttled per client address, in this process's memory.

Each address has a bucket of ``per_minute`` failures, refilled evenly over a minute; an
address whose bucket is empty is refused (429, Retry-After) before its token is looked up,
so guessing tokens costs the database nothing past the first few. The table holds at most
``max_addresses`` addresses: past it, the one whose last failure is oldest (the fullest
bucket) is forgotten, so many addresses cannot grow it without bound.

The address is the connection's peer as the server sees it: behind a reverse proxy, the
proxy's, unless the server is told to trust its forwarded headers (uvicorn trusts
``X-Forwarded-For`` from 127.0.0.1 by default, ``FORWARDED_ALLOW_IPS`` for others).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class FailureThrottle:
    def __init__(
        self,
        per_minute: int,
        max_addresses: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_minute = per_minute
        self._rate = per_minute / 60.0
        self._max_addresses = max_addresses
        self._clock = clock
        # address -> (failures still allowed, when that was counted); oldest failure first.
        self._buckets: dict[str, tuple[float, float]] = {}

    def _level(self, address: str, now: float) -> float:
        entry = self._buckets.get(address)
        if entry is None:
            return float(self.per_minute)
        left, when = entry
        return min(float(self.per_minute), left + (now - when) * self._rate)

    def wait(self, address: str) -> int:
        """Whole seconds before ``address`` may try a token again; 0: now."""
        if not self.per_minute or address not in self._buckets:
            return 0
        missing = 1.0 - self._level(address, self._clock())
        return 0 if missing <= 0 else max(1, math.ceil(missing / self._rate))

    def failed(self, address: str) -> None:
        """Count one failed token from ``address``."""
        if not self.per_minute:
            return
        now = self._clock()
        left = self._level(address, now) - 1.0
        buckets = self._buckets
        buckets.pop(address, None)
        buckets[address] = (max(left, 0.0), now)
        if len(buckets) > self._max_addresses:
            del buckets[next(iter(buckets))]
