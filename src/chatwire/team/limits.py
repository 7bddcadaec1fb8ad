"""The limits of a policy, counted: requests and tokens per minute, chats at once, budgets.

A chat is admitted once its model is resolved, before any upstream is called, and settled
when it ends (however it ends). Each policy that applies to it (the token's, counted per
token, and the user's, counted per user across their tokens) is counted on its own, and
both must pass; with ``CHATWIRE_REDIS_URL`` the user's chats at once
(``CHATWIRE_MAX_STREAMS_PER_USER``) are counted here too, across every process.

- rpm: an exact sliding window: at most N chats admitted in any 60 s.
- tpm: the tokens (input + output) of the last 60 s. Admission reserves an estimate
  (``estimate_tokens``) at its own time; the chat's end takes the reservation back (when it
  is still in the window) and counts the real tokens at that time. An empty window admits
  one chat however large its estimate, so no chat is refused for ever.
- parallel: leases, each ending by itself ``lease_seconds`` after admission (the chat's
  longest time and a minute more), so the chats of a killed process free their places.
- budget: micro-dollars (whole numbers, rounded up) spent plus reserved in the period (a
  UTC calendar day, an ISO week from Monday, a calendar month, or the whole life of the
  token or user). Admission reserves ``Price.estimate``; the end settles the real cost.
  A period's first count starts from what the ledger says was spent (``spent``).

Overshoot: admission counts every reservation made before it, atomically, so concurrent
chats cannot all pass on the same room. A tpm limit or a budget can still be passed by the
chats in flight when it is reached, each by what it used beyond its reservation (and by
one chat larger than a whole tpm limit, admitted into an empty window).

Two backends of the same semantics: ``MemoryCounters`` (one process) and ``RedisCounters``
(every process sharing one Redis): each admission is one Lua script call (EVALSHA) over
all the chat's counters, each settlement one more; nothing is read and then written from
here. A chat with nothing to count costs nothing (``Limits.checks`` is None).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from typing import Any, Literal

from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeout

from chatwire.errors import (
    LimitExceeded,
    LimitsUnavailable,
    ModelUnpriced,
    QuotaExceeded,
    TooManyStreams,
)
from chatwire.store.records import BudgetPeriod, Policy, UserRecord
from chatwire.team.prices import Price

log = logging.getLogger("chatwire.limits")

WINDOW_MS = 60_000
# What a chat's output is reserved at when neither the request nor the catalogue says.
DEFAULT_OUTPUT = 4096
MICRO = Decimal(1_000_000)
# How often Redis is asked again while it is down.
PROBE_EVERY = 0.5
# Calls timing out one after the other that make Redis count as down.
TIMEOUTS_IN_A_ROW = 3

Kind = Literal["rpm", "tpm", "parallel", "streams", "budget"]
# (kind, subject id, since): what the ledger says was spent since the period began (None:
# ever).
Spent = Callable[[Literal["token", "user"], int, datetime | None], Awaitable[Decimal]]


async def nothing_spent(kind: str, subject: int, since: datetime | None) -> Decimal:
    return Decimal(0)


def micros(dollars: Decimal) -> int:
    """Dollars in whole micro-dollars, rounded up: a counter never comes in low."""
    return int((dollars * MICRO).to_integral_value(ROUND_CEILING))


def estimate_tokens(body_bytes: int, max_output: int | None) -> int:
    """What a chat is reserved at: its body's bytes / 4 (rounded up) for its input, and its
    reply budget (the request's, else the model's max output, else DEFAULT_OUTPUT)."""
    return -(-body_bytes // 4) + (max_output or DEFAULT_OUTPUT)


def period_start(period: BudgetPeriod, now: datetime) -> datetime | None:
    """When the budget period holding ``now`` began (UTC); None for a total budget."""
    day = datetime(now.year, now.month, now.day, tzinfo=UTC)
    if period == "day":
        return day
    if period == "week":
        return day - timedelta(days=now.weekday())
    if period == "month":
        return day.replace(day=1)
    return None


def period_end(period: BudgetPeriod, start: datetime | None) -> datetime | None:
    if start is None:
        return None
    if period == "day":
        return start + timedelta(days=1)
    if period == "week":
        return start + timedelta(days=7)
    return (start + timedelta(days=32)).replace(day=1)


@dataclass(frozen=True, slots=True)
class Check:
    """One counter a chat must pass: its kind, limit (micro-dollars for a budget) and key
    (``t:<token id>:rpm``, ``u:<user id>:usd:month:2026-12-01``...)."""

    kind: Kind
    limit: int
    key: str
    # Who it counts, as a message names them ("Token 'ci-bot'", "User 'alice'").
    label: str
    subject: Literal["token", "user"]
    subject_id: int
    # A budget's period: its name, start (None: total) and end.
    period: BudgetPeriod = "total"
    since: datetime | None = None
    until: datetime | None = None


@dataclass(slots=True)
class Hold:
    """An admitted chat's reservations, for its settlement."""

    id: str
    checks: Sequence[Check]
    tokens: int
    cost: int
    backend: Counters
    settled: bool = False


@dataclass(slots=True)
class Refusal:
    """Why a chat was refused: the check's index, and in how many ms it may pass."""

    index: int
    retry_ms: int


class Counters:
    """A backend: ``admit`` reserves for every check or none; ``settle`` puts the real
    counts in place of the reservations."""

    async def admit(
        self, hold: Hold, now_ms: int, lease_ms: int, seeds: dict[int, int]
    ) -> Refusal | list[int] | None:
        """None: admitted. A Refusal: refused (nothing reserved). A list: the budget
        checks (by index) whose period has no count yet: ask again with their ``seeds``."""
        raise NotImplementedError

    async def settle(self, hold: Hold, now_ms: int, tokens: int, cost: int) -> None:
        raise NotImplementedError


def _cutoff(now_ms: int) -> int:
    return now_ms - WINDOW_MS


class _Window:
    """The tokens of the last 60 s: entries in the order they came, their counts by id (an
    entry settled early is gone from ``counts`` and skipped), and the sum of ``counts``."""

    __slots__ = ("counts", "order", "total")

    def __init__(self) -> None:
        self.order: deque[tuple[int, str]] = deque()
        self.counts: dict[str, int] = {}
        self.total = 0

    def add(self, at: int, entry: str, tokens: int) -> None:
        self.order.append((at, entry))
        self.counts[entry] = tokens
        self.total += tokens

    def expire(self, cutoff: int) -> None:
        order, counts = self.order, self.counts
        while order and order[0][0] <= cutoff:
            self.total -= counts.pop(order.popleft()[1], 0)

    def frees(self, tokens: int, limit: int, now_ms: int) -> int:
        """When enough of the window will have passed for ``tokens`` more (or it is empty)."""
        left, frees = self.total, now_ms
        for at, entry in self.order:
            left -= self.counts.get(entry, 0)
            frees = at
            if left <= 0 or left + tokens <= limit:
                break
        return frees + WINDOW_MS


class MemoryCounters(Counters):
    """The counters in this process's memory: one process (the SQLite default), or a
    process's own while Redis is down. Admission runs without awaiting anything, so it is
    atomic on the event loop."""

    def __init__(self) -> None:
        # rpm: times; tpm: a window; leases: id -> until; budgets: micro-dollars.
        self._times: dict[str, deque[int]] = {}
        self._tokens: dict[str, _Window] = {}
        self._leases: dict[str, dict[str, int]] = {}
        self._spent: dict[str, int] = {}

    def _window(self, key: str, now_ms: int) -> _Window:
        window = self._tokens.get(key)
        if window is None:
            window = self._tokens[key] = _Window()
        window.expire(_cutoff(now_ms))
        return window

    def _lease_set(self, key: str, now_ms: int) -> dict[str, int]:
        leases = self._leases.setdefault(key, {})
        for lease, until in list(leases.items()):
            if until <= now_ms:
                del leases[lease]
        return leases

    async def admit(
        self, hold: Hold, now_ms: int, lease_ms: int, seeds: dict[int, int]
    ) -> Refusal | list[int] | None:
        missing = [
            i
            for i, check in enumerate(hold.checks)
            if check.kind == "budget" and check.key not in self._spent and i not in seeds
        ]
        if missing:
            return missing
        cutoff = _cutoff(now_ms)
        for i, check in enumerate(hold.checks):
            key, limit = check.key, check.limit
            if check.kind == "rpm":
                times = self._times.setdefault(key, deque())
                while times and times[0] <= cutoff:
                    times.popleft()
                if len(times) >= limit:
                    return Refusal(i, times[0] + WINDOW_MS - now_ms)
            elif check.kind == "tpm":
                window = self._window(key, now_ms)
                if window.total > 0 and window.total + hold.tokens > limit:
                    return Refusal(i, window.frees(hold.tokens, limit, now_ms) - now_ms)
            elif check.kind in ("parallel", "streams"):
                if len(self._lease_set(key, now_ms)) >= limit:
                    return Refusal(i, 1000)
            else:
                spent = self._spent.setdefault(key, seeds.get(i, 0))
                if spent + hold.cost > limit:
                    return Refusal(i, 0)
        for check in hold.checks:
            key = check.key
            if check.kind == "rpm":
                self._times[key].append(now_ms)
            elif check.kind == "tpm":
                self._tokens[key].add(now_ms, hold.id, hold.tokens)
            elif check.kind in ("parallel", "streams"):
                self._leases[key][hold.id] = now_ms + lease_ms
            else:
                self._spent[key] += hold.cost
        return None

    def forget_budgets(self) -> None:
        """Drop every budget's count: each starts again from the ledger's figure."""
        self._spent.clear()

    async def settle(self, hold: Hold, now_ms: int, tokens: int, cost: int) -> None:
        for check in hold.checks:
            key = check.key
            if check.kind == "tpm":
                window = self._window(key, now_ms)
                window.total -= window.counts.pop(hold.id, 0)
                if tokens:
                    window.add(now_ms, hold.id + ":r", tokens)
                if not window.counts:
                    del self._tokens[key]
            elif check.kind in ("parallel", "streams"):
                leases = self._leases.get(key)
                if leases is not None:
                    leases.pop(hold.id, None)
                    if not leases:
                        del self._leases[key]
            elif check.kind == "budget" and key in self._spent:
                self._spent[key] += cost - hold.cost


# KEYS: one per check. ARGV: now (ms), the hold's id, the window (ms), the lease's end (ms),
# the tokens and micro-dollars reserved, then per check: its kind, limit, seed (-1: none)
# and (budgets) the ms its counter lives after now (0: for ever).
# Returns {0}: admitted; {1, check, ms}: refused, may pass in ms; {2, check...}: the budget
# checks with no count yet in their period (ask again with their seeds). Checks (indexes)
# count from 0.
ADMIT = """
local now, id, window = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local lease_until, tokens, cost = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local n = #KEYS
local missing = {2}
for i = 1, n do
  if ARGV[3 + 4 * i] == 'budget' and tonumber(ARGV[5 + 4 * i]) < 0
      and redis.call('EXISTS', KEYS[i]) == 0 then
    missing[#missing + 1] = i - 1
  end
end
if #missing > 1 then return missing end
for i = 1, n do
  local key, kind, limit = KEYS[i], ARGV[3 + 4 * i], tonumber(ARGV[4 + 4 * i])
  if kind == 'rpm' then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
    if redis.call('ZCARD', key) >= limit then
      local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
      return {1, i - 1, tonumber(oldest[2]) + window - now}
    end
  elseif kind == 'tpm' then
    local sum = key .. ':sum'
    local used = tonumber(redis.call('GET', sum) or '0')
    local old = redis.call('ZRANGEBYSCORE', key, '-inf', now - window)
    if #old > 0 then
      for _, m in ipairs(old) do used = used - tonumber(string.match(m, ':(%d+)$')) end
      redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
      redis.call('SET', sum, used, 'KEEPTTL')
    end
    if used > 0 and used + tokens > limit then
      local entries = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
      local left, at = used, now
      for j = 1, #entries, 2 do
        left = left - tonumber(string.match(entries[j], ':(%d+)$'))
        at = tonumber(entries[j + 1])
        if left <= 0 or left + tokens <= limit then break end
      end
      return {1, i - 1, at + window - now}
    end
  elseif kind == 'parallel' or kind == 'streams' then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
    if redis.call('ZCARD', key) >= limit then return {1, i - 1, 1000} end
  else
    local spent = redis.call('GET', key)
    if not spent then
      spent = ARGV[5 + 4 * i]
      redis.call('SET', key, spent)
      local ttl = tonumber(ARGV[6 + 4 * i])
      if ttl > 0 then redis.call('PEXPIRE', key, ttl) end
    end
    if tonumber(spent) + cost > limit then return {1, i - 1, 0} end
  end
end
for i = 1, n do
  local key, kind = KEYS[i], ARGV[3 + 4 * i]
  if kind == 'rpm' then
    redis.call('ZADD', key, now, id)
    redis.call('PEXPIRE', key, window + 1000)
  elseif kind == 'tpm' then
    redis.call('ZADD', key, now, id .. ':' .. tokens)
    redis.call('INCRBY', key .. ':sum', tokens)
    redis.call('PEXPIRE', key, window + 1000)
    redis.call('PEXPIRE', key .. ':sum', window + 1000)
  elseif kind == 'parallel' or kind == 'streams' then
    redis.call('ZADD', key, lease_until, id)
    redis.call('PEXPIRE', key, lease_until - now + 1000)
  else
    redis.call('INCRBY', key, cost)
  end
end
return {0}
"""

# KEYS: the hold's checks'. ARGV: now (ms), the hold's id, the window (ms), the tokens and
# micro-dollars reserved, the real ones, then per check: its kind and (budgets) the ms its
# counter lives after now (0: for ever).
SETTLE = """
local now, id, window = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local reserved, real = tonumber(ARGV[4]), tonumber(ARGV[5])
local reserved_cost, real_cost = tonumber(ARGV[6]), tonumber(ARGV[7])
for i = 1, #KEYS do
  local key, kind = KEYS[i], ARGV[6 + 2 * i]
  if kind == 'tpm' then
    local sum = key .. ':sum'
    if redis.call('ZREM', key, id .. ':' .. reserved) == 1 then
      redis.call('DECRBY', sum, reserved)
    end
    if real > 0 then
      redis.call('ZADD', key, now, id .. ':r:' .. real)
      redis.call('INCRBY', sum, real)
      redis.call('PEXPIRE', key, window + 1000)
      redis.call('PEXPIRE', sum, window + 1000)
    end
  elseif kind == 'parallel' or kind == 'streams' then
    redis.call('ZREM', key, id)
  elseif kind == 'budget' then
    if redis.call('EXISTS', key) == 1 then
      redis.call('INCRBY', key, real_cost - reserved_cost)
      local ttl = tonumber(ARGV[7 + 2 * i])
      if ttl > 0 then redis.call('PEXPIRE', key, ttl) end
    end
  end
end
return 0
"""

# What a Redis that does not answer raises (redis-py's own errors, and the timeouts and
# socket errors under them).
REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)

_IDS = itertools.count()
_PROCESS = os.urandom(4).hex()


def redis_client(url: str, timeout: float, connections: int = 32) -> Any:
    """A client whose every call takes at most ``timeout`` seconds (to connect, to answer,
    to wait for one of its ``connections``) and is never tried again: a Redis that does not
    answer is down until it does (``Limits``)."""
    import redis.asyncio
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    pool = redis.asyncio.BlockingConnectionPool.from_url(
        url,
        max_connections=connections,
        timeout=timeout,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )
    return redis.asyncio.Redis.from_pool(pool)


class RedisCounters(Counters):
    """The counters in Redis, shared by every process using it; keys under ``prefix``."""

    def __init__(self, client: Any, prefix: str) -> None:
        self.client = client
        self._prefix = prefix
        self._admit = client.register_script(ADMIT)
        self._settle = client.register_script(SETTLE)

    async def load(self) -> None:
        """Load the scripts now (each call finds them loaded: one EVALSHA)."""
        for script in (self._admit, self._settle):
            await self.client.script_load(script.script)

    async def admit(
        self, hold: Hold, now_ms: int, lease_ms: int, seeds: dict[int, int]
    ) -> Refusal | list[int] | None:
        prefix = self._prefix
        keys = [prefix + check.key for check in hold.checks]
        args: list[Any] = [now_ms, hold.id, WINDOW_MS, now_ms + lease_ms, hold.tokens, hold.cost]
        for i, check in enumerate(hold.checks):
            args += (check.kind, check.limit, seeds.get(i, -1), _lives_ms(check, now_ms))
        result = await self._admit(keys, args)
        if result[0] == 0:
            return None
        if result[0] == 1:
            return Refusal(int(result[1]), int(result[2]))
        return [int(i) for i in result[1:]]

    async def settle(self, hold: Hold, now_ms: int, tokens: int, cost: int) -> None:
        keys = [self._prefix + check.key for check in hold.checks]
        args: list[Any] = [now_ms, hold.id, WINDOW_MS, hold.tokens, tokens, hold.cost, cost]
        for check in hold.checks:
            args += (check.kind, _lives_ms(check, now_ms))
        await self._settle(keys, args)


def _lives_ms(check: Check, now_ms: int) -> int:
    """How long a budget's counter is kept: its period and a day more (a late settlement
    still finds it); 0 (for ever) for a total budget, and for the other kinds (unused)."""
    if check.kind != "budget" or check.until is None:
        return 0
    return max(int(check.until.timestamp() * 1000) - now_ms + 86_400_000, 1000)


@dataclass(slots=True)
class Limits:
    """Admission and settlement of a chat's limits, for the pipeline.

    ``redis``: the shared counters, or None (one process: memory only). While Redis does not
    answer, ``failure`` says what happens: "open", each process counts in its own memory
    and keeps serving; "closed", chats with limits are refused (503) until it answers.
    One warning when it stops answering, one when it answers again (asked every
    PROBE_EVERY s in the background); ``up`` and ``outages`` are exported as metrics."""

    memory: MemoryCounters
    redis: RedisCounters | None = None
    failure: Literal["open", "closed"] = "open"
    # CHATWIRE_MAX_STREAMS_PER_USER, counted here (across processes) when Redis is set.
    streams_per_user: int = 0
    # How long a chat's place is held at most: its longest time and a minute more.
    lease_seconds: float = 1860.0
    spent: Spent = nothing_spent
    where: str = ""
    up: bool = True
    outages: int = 0
    errors: int = 0
    _timeouts: int = 0
    _probe: asyncio.Task[None] | None = field(default=None, repr=False)

    def checks(self, user: UserRecord) -> list[Check] | None:
        """What a chat of ``user`` must pass (budgets without their period yet, see
        ``admit``); None when nothing is counted: no call at all."""
        found: list[Check] = []
        if user.token_policy is not None and user.token_id is not None:
            label = f"Token '{user.token_name}'" if user.token_name else f"Token #{user.token_id}"
            _add(found, user.token_policy, "token", user.token_id, label)
        if user.policy is not None:
            _add(found, user.policy, "user", user.id, f"User '{user.name}'")
        if self.streams_per_user and self.redis is not None:
            found.append(
                Check("streams", self.streams_per_user, f"u:{user.id}:streams", "", "user", user.id)
            )
        return found or None

    async def admit(
        self,
        checks: list[Check],
        input_tokens: int,
        output_tokens: int,
        price: Price | None,
        model: str,
    ) -> Hold:
        """Reserve a chat's place in every check, or refuse it (a ``ChatwireError``):
        ``LimitExceeded``/``TooManyStreams`` 429, ``QuotaExceeded`` 429, ``ModelUnpriced``
        403 (a budget cannot be kept on a model without a price), ``LimitsUnavailable``
        503 (Redis down, CHATWIRE_REDIS_FAILURE=closed)."""
        now = time.time()
        now_ms = int(now * 1000)
        cost = 0
        if any(check.kind == "budget" for check in checks):
            if price is None:
                raise ModelUnpriced(
                    f"'{model[:200]}' has no price, so it cannot be kept to a budget: add its "
                    "price to the file CHATWIRE_PRICES_FILE names, or use a priced model."
                )
            cost = micros(price.estimate(input_tokens, output_tokens))
            at = datetime.fromtimestamp(now, UTC)
            checks = [
                _in_period(check, at) if check.kind == "budget" else check for check in checks
            ]
        hold = Hold(
            f"{_PROCESS}.{next(_IDS)}", checks, input_tokens + output_tokens, cost, self.memory
        )
        lease_ms = int(self.lease_seconds * 1000)
        refusal: Refusal | None
        if self.redis is not None and self.up:
            hold.backend = self.redis
            try:
                refusal = await self._admit(self.redis, hold, now_ms, lease_ms)
                self._timeouts = 0
            except REDIS_ERRORS as exc:
                self._down(exc)
                hold.backend = self.memory
                refusal = await self._fallback(hold, now_ms, lease_ms)
        elif self.redis is not None:
            refusal = await self._fallback(hold, now_ms, lease_ms)
        else:
            refusal = await self._admit(self.memory, hold, now_ms, lease_ms)
        if refusal is not None:
            raise refused(hold, refusal, now)
        return hold

    async def _fallback(self, hold: Hold, now_ms: int, lease_ms: int) -> Refusal | None:
        # The per-user chat cap alone falls back to each process's own count, whatever
        # the mode: it is not a policy's limit.
        if self.failure == "closed" and any(c.kind != "streams" for c in hold.checks):
            raise LimitsUnavailable(
                "chatwire cannot reach the Redis its limits are counted in, and is set to "
                "refuse chats with limits until it can (CHATWIRE_REDIS_FAILURE=closed); "
                "try again in a moment.",
                1,
            )
        return await self._admit(self.memory, hold, now_ms, lease_ms)

    async def _admit(
        self, backend: Counters, hold: Hold, now_ms: int, lease_ms: int
    ) -> Refusal | None:
        seeds: dict[int, int] = {}
        while True:
            result = await backend.admit(hold, now_ms, lease_ms, seeds)
            if not isinstance(result, list):
                return result
            for i in result:
                check = hold.checks[i]
                seeds[i] = micros(await self.spent(check.subject, check.subject_id, check.since))

    async def settle(self, hold: Hold, tokens: int | None, cost: Decimal | None) -> None:
        """Put the chat's real tokens and cost in place of its reservation (None: the
        reservation stands). Never raises: a Redis that does not answer leaves the
        reservation to expire (its leases end by themselves)."""
        if hold.settled:
            return
        hold.settled = True
        backend = hold.backend
        if backend is self.redis and not self.up:
            return
        real_tokens = hold.tokens if tokens is None else tokens
        real_cost = hold.cost if cost is None else micros(cost)
        try:
            await backend.settle(hold, int(time.time() * 1000), real_tokens, real_cost)
        except REDIS_ERRORS as exc:
            self._down(exc)

    def _down(self, exc: BaseException) -> None:
        """A Redis call failed (the chat it was for goes on as ``failure`` says). Redis is
        taken for down, and left alone until it answers again, when it refused or dropped
        the connection, or after TIMEOUTS_IN_A_ROW calls timed out: one slow answer on a
        busy machine is not an outage."""
        self.errors += 1
        if not self.up:
            return
        # All of this process's connections busy past the timeout (redis-py's pool says "No
        # connection available") is a slow Redis or a busy process, not an outage: counted
        # as a timeout.
        if isinstance(exc, RedisTimeout | TimeoutError) or "No connection available" in str(exc):
            self._timeouts += 1
            if self._timeouts < TIMEOUTS_IN_A_ROW:
                return
        self._timeouts = 0
        self.up = False
        self.outages += 1
        then = (
            "each process counts the limits in its own memory until it does"
            if self.failure == "open"
            else "chats with limits are refused until it does (CHATWIRE_REDIS_FAILURE=closed)"
        )
        log.warning("Redis at %s does not answer (%r): %s", self.where, exc, then)
        if self._probe is None or self._probe.done():
            self._probe = asyncio.create_task(self._wait_for_redis(), name="chatwire redis probe")

    async def warm(self) -> None:
        """At start: load the scripts and open a connection, so the first chats do not; a
        Redis that does not answer is down from the start."""
        if self.redis is None:
            return
        try:
            await self.redis.load()
        except REDIS_ERRORS as exc:
            self._timeouts = TIMEOUTS_IN_A_ROW
            self._down(exc)

    async def _wait_for_redis(self) -> None:
        assert self.redis is not None
        while True:
            await asyncio.sleep(PROBE_EVERY)
            try:
                await self.redis.client.ping()
            except REDIS_ERRORS:
                self.errors += 1
                continue
            self.up = True
            # What this process counted of the budgets meanwhile is stale from now on (the
            # fleet spends through Redis again): a next outage counts again from the ledger.
            self.memory.forget_budgets()
            log.warning("Redis at %s answers again: the limits are shared again", self.where)
            return

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe


def _add(
    found: list[Check],
    policy: Policy,
    subject: Literal["token", "user"],
    subject_id: int,
    label: str,
) -> None:
    key = f"{subject[0]}:{subject_id}:"
    if policy.rpm is not None:
        found.append(Check("rpm", policy.rpm, key + "rpm", label, subject, subject_id))
    if policy.tpm is not None:
        found.append(Check("tpm", policy.tpm, key + "tpm", label, subject, subject_id))
    if policy.parallel is not None:
        found.append(Check("parallel", policy.parallel, key + "par", label, subject, subject_id))
    if policy.budget is not None:
        limit = int(policy.budget * MICRO)  # rounded down: the limit never comes out high
        found.append(
            Check("budget", limit, key + "usd", label, subject, subject_id, policy.budget_period)
        )


def _in_period(check: Check, at: datetime) -> Check:
    """A budget check in the period holding ``at``: its key, start and end."""
    since = period_start(check.period, at)
    key = f"{check.key}:{check.period}" + ("" if since is None else f":{since:%Y-%m-%d}")
    return Check(
        "budget",
        check.limit,
        key,
        check.label,
        check.subject,
        check.subject_id,
        check.period,
        since,
        period_end(check.period, since),
    )


_PERIODS = {"day": "today", "week": "this week", "month": "this month", "total": "in total"}


def refused(hold: Hold, refusal: Refusal, now: float) -> Exception:
    """The error a refused chat gets, naming the limit and when it frees."""
    check = hold.checks[refusal.index]
    wait = max(1, math.ceil(refusal.retry_ms / 1000))
    label, limit = check.label, check.limit
    if check.kind == "rpm":
        return LimitExceeded(
            f"{label} is at its {limit} requests per minute; try again in {wait} s.", wait
        )
    if check.kind == "tpm":
        return LimitExceeded(
            f"{label} is at its {limit} tokens per minute (this chat is reserved at "
            f"{hold.tokens}); try again in {wait} s.",
            wait,
        )
    if check.kind == "parallel":
        return LimitExceeded(
            f"{label} is at its {limit} chats at once; try again when one of them ends.", 1
        )
    if check.kind == "streams":
        return TooManyStreams(
            f"You have {limit} chats open at once, the most allowed per user "
            "(CHATWIRE_MAX_STREAMS_PER_USER); wait for one to finish.",
            1,
        )
    budget = Decimal(limit) / MICRO
    may_cost = Decimal(hold.cost) / MICRO
    text = (
        f"{label} has reached its budget of ${budget:.2f} {_PERIODS[check.period]} "
        f"(this chat may cost up to ${may_cost:.4f})"
    )
    if check.until is None:
        return QuotaExceeded(text + ".", None)
    left = max(1, math.ceil(check.until.timestamp() - now))
    return QuotaExceeded(
        f"{text}; it starts again in {_duration(left)} ({check.until:%Y-%m-%d %H:%M} UTC).",
        left,
    )


def _duration(seconds: int) -> str:
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes = -(-rest // 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min"
