"""The limits of a policy, counted: requests and tokens per minute, chats at once, budgets.

A chat is admitted once its model is resolved, before any upstream is called, and settled
when it ends (however it ends). Each policy that applies to it (the token's, counted per
token, and the user's, counted per user across their tokens) is counted on its own, and
both must pass; with ``CHATWIRE_REDIS_URL`` the user's chats at once
(``CHATWIRE_MAX_STREAMS_PER_USER``) are counted here too, across every process.

What each limit counts, and how: ``team.counters``. Where: this process's memory, or Redis
(``team.redis_counters``) while it answers; when it does not, ``CHATWIRE_REDIS_FAILURE``
says. A period's first budget count starts from what the ledger says was spent (``spent``).

Overshoot: admission counts every reservation made before it, atomically, so concurrent
chats cannot all pass on the same room. A tpm limit or a budget can still be passed by the
chats in flight when it is reached, each by what it used beyond its reservation (and by
one chat larger than a whole tpm limit, admitted into an empty window).

A chat with nothing to count costs nothing (``Limits.checks`` is None).
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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal, NamedTuple

from redis.exceptions import TimeoutError as RedisTimeout

from chatwire.errors import (
    LimitExceeded,
    LimitsUnavailable,
    ModelUnpriced,
    QuotaExceeded,
    TooManyStreams,
)
from chatwire.store.records import Policy, UserRecord
from chatwire.team.allowances import Allowances, Key, key_of
from chatwire.team.counters import (
    MICRO,
    Check,
    Counters,
    Hold,
    MemoryCounters,
    Refusal,
    micros,
    period_end,
    period_start,
)
from chatwire.team.prices import Price
from chatwire.team.redis_counters import REDIS_ERRORS, RedisCounters

log = logging.getLogger("chatwire.limits")

# How often Redis is asked again while it is down.
PROBE_EVERY = 0.5
# Calls timing out one after the other that make Redis count as down.
TIMEOUTS_IN_A_ROW = 3
# Callers' checks kept (each a few hundred bytes).
KEPT = 10_000
# Settlements kept for a Redis that does not answer (each a few hundred bytes).
UNSETTLED_KEPT = 10_000

# (kind, subject id, since): what the ledger says was spent since the period began (None:
# ever).
Spent = Callable[[Literal["token", "user"], int, datetime | None], Awaitable[Decimal]]


async def nothing_spent(kind: str, subject: int, since: datetime | None) -> Decimal:
    return Decimal(0)


_IDS = itertools.count()
_PROCESS = os.urandom(4).hex()


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
    # Settlements made late, once Redis answered again.
    replayed: int = 0
    _timeouts: int = 0
    _probe: asyncio.Task[None] | None = field(default=None, repr=False)
    # Settlements Redis did not take (hold, when, tokens, micro-dollars), the oldest dropped
    # past UNSETTLED_KEPT (their leases then end by themselves), and the task making them.
    _unsettled: deque[tuple[Hold, int, int, int]] = field(
        default_factory=lambda: deque(maxlen=UNSETTLED_KEPT), repr=False
    )
    _replay: asyncio.Task[None] | None = field(default=None, repr=False)
    # Each caller's checks, and each list of checks in its budgets' periods of the day.
    _checks: dict[UserRecord, list[Check]] = field(default_factory=dict, repr=False)
    _periods: dict[int, _Dated] = field(default_factory=dict, repr=False)
    # This process's shares of the limits, reserved ahead in Redis (``team.allowances``).
    allowances: Allowances | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.redis is not None:
            self.allowances = Allowances(
                self.redis,
                int(self.lease_seconds * 1000),
                self._down,
                _now_ms,
                lambda: self.up,
            )

    @property
    def waiting(self) -> int:
        """Settlements waiting for Redis."""
        return len(self._unsettled)

    def checks(self, user: UserRecord) -> list[Check] | None:
        """What a chat of ``user`` must pass (budgets without their period yet, see
        ``admit``); None when nothing is counted: no call at all."""
        if (
            user.token_policy is None
            and user.policy is None
            and not (self.streams_per_user and self.redis is not None)
        ):
            return None
        cached = self._checks.get(user)
        if cached is not None:
            return cached or None
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
        if len(self._checks) >= KEPT:
            self._checks.clear()
        self._checks[user] = found
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
        # The checks with their budgets in today's periods, made once a day per list.
        day = now_ms // 86_400_000
        known = self._periods.get(id(checks))
        if known is None or known.source is not checks or known.day != day:
            known = self._dated(checks, now, day)
        checks = known.checks
        cost = 0
        if known.budgeted:
            if price is None:
                raise ModelUnpriced(
                    f"'{model[:200]}' has no price, so it cannot be kept to a budget: add its "
                    "price to the file CHATWIRE_PRICES_FILE names, or use a priced model."
                )
            cost = micros(price.estimate(input_tokens, output_tokens))
        tokens = input_tokens + output_tokens
        allowances = self.allowances
        if allowances is not None and self.up:
            taken = allowances.take(known.key, checks, tokens, cost, now_ms)
            if taken is not None:
                return taken
        hold = Hold(f"{_PROCESS}.{next(_IDS)}", checks, tokens, cost, self.memory)
        lease_ms = int(self.lease_seconds * 1000)
        refusal: Refusal | None
        if self.redis is not None and self.up:
            hold.backend = self.redis
            try:
                refusal = await self._admit(self.redis, hold, now_ms, lease_ms)
                self._timeouts = 0
                if refusal is None and allowances is not None:
                    allowances.want(known.key, checks, tokens, cost, now_ms)
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

    def _dated(self, checks: list[Check], now: float, day: int) -> _Dated:
        at = datetime.fromtimestamp(now, UTC)
        dated = [_in_period(check, at) if check.kind == "budget" else check for check in checks]
        if len(self._periods) >= KEPT:
            self._periods.clear()
        # The list itself is kept with it: its id is not reused while this is here.
        known = _Dated(checks, day, dated, any(c.kind == "budget" for c in checks), key_of(dated))
        self._periods[id(checks)] = known
        return known

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
        reservation stands). Never raises: a settlement Redis did not take waits for it
        (``unsettled``, bounded) and is made once it answers again, so a place a chat held
        frees then, not when its lease runs out."""
        if hold.settled:
            return
        hold.settled = True
        backend = hold.backend
        real_tokens = hold.tokens if tokens is None else tokens
        real_cost = hold.cost if cost is None else micros(cost)
        now_ms = int(time.time() * 1000)
        if backend is self.redis and not self.up:
            self._unsettled.append((hold, now_ms, real_tokens, real_cost))
            return
        try:
            await backend.settle(hold, now_ms, real_tokens, real_cost)
        except REDIS_ERRORS as exc:
            self._unsettled.append((hold, now_ms, real_tokens, real_cost))
            self._down(exc)
            return
        if self._unsettled and backend is self.redis and self._replay is None:
            # Redis took this one after refusing some (slow, not down): the rest now.
            self._replay = asyncio.create_task(self._settle_waiting(), name="chatwire settle")

    async def _settle_waiting(self) -> None:
        """Make the settlements Redis did not take, oldest first (each is safe to make late:
        the script adjusts only what the reservation still holds)."""
        assert self.redis is not None
        made = 0
        try:
            while self._unsettled and self.up:
                hold, now_ms, tokens, cost = self._unsettled[0]
                try:
                    await self.redis.settle(hold, now_ms, tokens, cost)
                except REDIS_ERRORS as exc:
                    self._down(exc)
                    return
                self._unsettled.popleft()
                made += 1
        finally:
            self._replay = None
            self.replayed += made
            if made:
                log.warning("Redis took the %d settlements made while it did not answer", made)

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
        if self.allowances is not None:
            self.allowances.forget()
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
            if self._unsettled and self._replay is None:
                self._replay = asyncio.create_task(self._settle_waiting(), name="chatwire settle")
            return

    async def close(self) -> None:
        if self.allowances is not None:
            await self.allowances.close()
        for task in (self._probe, self._replay):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


class _Dated(NamedTuple):
    """A list of checks (``source``) as admitted on ``day`` (days since 1970, UTC): its
    budgets in that day's periods (``checks``), whether it has any, and the key of its
    allowances."""

    source: list[Check]
    day: int
    checks: list[Check]
    budgeted: bool
    key: Key


def _now_ms() -> int:
    return int(time.time() * 1000)


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
