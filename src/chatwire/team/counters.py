"""The counters a policy's limits are kept in, and their one semantics.

- rpm: an exact sliding window: at most N chats admitted in any 60 s.
- tpm: the tokens (input + output) of the last 60 s. Admission reserves an estimate
  (``estimate_tokens``) at its own time; the chat's end takes the reservation back (when it
  is still in the window) and counts the real tokens at that time. An empty window admits
  one chat however large its estimate, so no chat is refused for ever.
- parallel (and a user's chats at once, "streams"): leases, each ending by itself
  ``lease_ms`` after admission, so the chats of a killed process free their places.
- budget: micro-dollars (whole numbers, rounded up) spent plus reserved in the period (a
  UTC calendar day, an ISO week from Monday, a calendar month, or in total).

A backend admits a ``Hold`` (every check of one chat, at once: all pass or none counts) and
settles it. ``MemoryCounters`` is this process's; ``team.redis_counters`` has the one every
process sharing a Redis counts in.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from typing import Literal

from chatwire.store.records import BudgetPeriod

WINDOW_MS = 60_000
# What a chat's output is reserved at when neither the request nor the catalogue says.
DEFAULT_OUTPUT = 4096
MICRO = Decimal(1_000_000)

Kind = Literal["rpm", "tpm", "parallel", "streams", "budget"]


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
