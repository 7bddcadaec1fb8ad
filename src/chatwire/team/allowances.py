"""Allowances: a process's share of its callers' limits, reserved in Redis ahead of their
chats, so that a chat is admitted without a round trip to Redis before its upstream is
called, and settled without one after it.

A round trip before the upstream costs a chat 0.3-0.5 ms of first byte and as much CPU on
a 2-core machine (redis-py's asyncio client and the script's own work), more than the whole
relay of a short reply. So a process that admitted a chat of some checks in Redis (the
usual ``ADMIT`` script, one chat) also reserves, in the background, an allowance of the
same checks for ``size`` chats at once (the same script with a count: every check must have
room for all of them, or nothing is reserved). The next chats of those checks are admitted
from it in memory; what they did (each request's real time, the places that ended, the real
tokens and costs) goes to Redis in one ``UPDATE`` call per allowance every ``FLUSH_S``, and
what an allowance did not use goes back when it is ``LIFETIME_MS`` old.

Why the limits stay exact:
- every chat is counted in Redis before it is admitted: the allowance's reservation holds
  its request (an rpm entry), its place (chats at once), its estimated tokens and cost, so
  the fleet never admits past a limit;
- an allowance is at most 1/``SHARE`` of each of its limits (``size``), so a small limit
  (a few requests a minute, a few chats at once) gets none and every chat of it goes to
  Redis as before; what a process holds unused is at most that share, for at most
  ``LIFETIME_MS``, and after a kill (its requests leave the window within a minute, its
  places when their lease ends, as a killed process's chats' places do);
- a request reserved at the allowance's time counts from its own admission once told
  (``FLUSH_S`` later): the window is then exact to the millisecond again, long before it
  could matter (60 s);
- real tokens and costs reach Redis up to ``FLUSH_S`` after the chat's end, so the overshoot
  bound of a tpm limit or a budget counts the chats ended in the last ``FLUSH_S`` with the
  ones in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from chatwire.team.counters import Check, Counters, Hold
from chatwire.team.redis_counters import REDIS_ERRORS, RedisCounters

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger("chatwire.limits")

# An allowance is at most this share of each of its limits (1/SHARE), and at most MAX_SIZE
# chats; below 2 chats, none is taken.
SHARE = 64
MAX_SIZE = 256
# Its first size; each allowance used up before its end doubles the next one, each mostly
# unused at its end halves it. A new one is asked for when those held have less than half
# of that size left, so that it comes before they are used up.
FIRST_SIZE = 4
# How often what allowances did goes to Redis, and how long one admits chats.
FLUSH_S = 0.05
LIFETIME_MS = 1000
# How long a shutdown waits for Redis to take what the allowances did.
CLOSE_WITHIN = 2.0
# After Redis refused an allowance of some checks, how long before one is asked again.
REFUSED_PAUSE_MS = 1000

# Which allowances serve a list of checks (``key_of``).
Key = tuple[str, ...]

_IDS = itertools.count()
_PROCESS = os.urandom(4).hex()


@dataclass(slots=True, eq=False)
class Allowance(Counters):
    """``size`` chats of ``checks``, reserved in Redis as ``gid``: their requests and places
    ``gid``.1 to ``gid``.``size``, ``tokens`` and ``cost`` (micro-dollars) in all. Its chats'
    holds have it as their backend: their settlement is noted here, for the next update."""

    gid: str
    checks: Sequence[Check]
    size: int
    tokens_left: int
    cost_left: int
    granted_ms: int
    taken: int = 0
    open: bool = True
    # The estimates of its chats not yet settled (the tokens Redis must go on holding).
    running_tokens: int = 0
    running: int = 0
    # What Redis holds of it now: reserved tokens (its tpm entry), given back (bool).
    reserved_told: int = 0
    returned_told: bool = False
    # Since the last update: number, ms of each admitted; numbers ended; number, tokens of
    # each real count (pairs, flat); micro-dollars to add.
    admitted: list[int] = field(default_factory=list)
    ended: list[int] = field(default_factory=list)
    reals: list[int] = field(default_factory=list)
    cost_delta: int = 0

    def take(self, tokens: int, cost: int, now_ms: int) -> Hold | None:
        """A chat of ``tokens`` and ``cost`` admitted from it, or None (used up, closed)."""
        if not self.open or self.taken >= self.size:
            return None
        if tokens > self.tokens_left or cost > self.cost_left:
            return None
        self.taken += 1
        number = self.taken
        self.tokens_left -= tokens
        self.cost_left -= cost
        self.running_tokens += tokens
        self.running += 1
        self.admitted += (number, now_ms)
        return Hold(f"{self.gid}.{number}", self.checks, tokens, cost, self)

    async def settle(self, hold: Hold, now_ms: int, tokens: int, cost: int) -> None:
        number = int(hold.id.rpartition(".")[2])
        self.running -= 1
        self.running_tokens -= hold.tokens
        self.ended.append(number)
        self.reals += (number, tokens)
        self.cost_delta += cost - hold.cost

    def close(self) -> None:
        """Admit no more: what is left unused goes back with the next update."""
        if self.open:
            self.open = False
            self.cost_delta -= self.cost_left
            self.tokens_left = self.cost_left = 0

    @property
    def told(self) -> bool:
        """Redis knows all it did."""
        return (
            not self.admitted
            and not self.ended
            and not self.reals
            and self.cost_delta == 0
            and self.reserved_told == self.tokens_left + self.running_tokens
            and (self.open or self.returned_told)
        )

    @property
    def done(self) -> bool:
        """Closed, its chats all settled, and Redis told: nothing of it is left."""
        return not self.open and self.running == 0 and self.told


@dataclass(slots=True)
class Allowances:
    """The allowances of one process, by their checks' keys, and the task that tells Redis
    what they did."""

    redis: RedisCounters
    lease_ms: int
    # Called with each exception a call to Redis raised (``Limits`` counts the outage).
    failed: Callable[[BaseException], None]
    clock_ms: Callable[[], int]
    # Whether Redis is taken to answer (``Limits.up``): while it is not, nothing is sent.
    up: Callable[[], bool]
    # The open allowances of each set of checks, the oldest first.
    current: dict[Key, list[Allowance]] = field(default_factory=dict)
    live: list[Allowance] = field(default_factory=list)
    sizes: dict[Key, int] = field(default_factory=dict)
    paused_until: dict[Key, int] = field(default_factory=dict)
    asking: set[Key] = field(default_factory=set)
    # Allowances Redis granted and refused; chats admitted from one.
    granted: int = 0
    refused: int = 0
    chats: int = 0
    _tasks: set[asyncio.Task[None]] = field(default_factory=set, repr=False)
    _flusher: asyncio.Task[None] | None = field(default=None, repr=False)

    def take(
        self, key: Key, checks: Sequence[Check], tokens: int, cost: int, now_ms: int
    ) -> Hold | None:
        """A chat admitted from this process's allowance of ``checks`` (``key``: theirs,
        ``key_of``), or None (ask Redis)."""
        held = self.current.get(key)
        if held is None:
            return None
        hold = None
        while held:
            first = held[0]
            hold = first.take(tokens, cost, now_ms)
            if hold is not None:
                self.chats += 1
                break
            # Used up (or too little left for this chat): the next one, if any.
            first.close()
            self._resize(key, first)
            del held[0]
        left = sum(a.size - a.taken for a in held)
        if left * 2 <= self.sizes.get(key, FIRST_SIZE):
            self.want(key, checks, tokens, cost, now_ms)
        if not held:
            del self.current[key]
        return hold

    def want(self, key: Key, checks: Sequence[Check], tokens: int, cost: int, now_ms: int) -> None:
        """A chat of ``checks`` went to Redis, or their allowance runs low: ask for a new
        one in the background, when their limits have room for one."""
        if key in self.asking or self.paused_until.get(key, 0) > now_ms:
            return
        size = min(self.sizes.get(key, FIRST_SIZE), _cap(checks, tokens, cost))
        if size < 2:
            return
        self.asking.add(key)
        task = asyncio.create_task(
            self._ask(key, checks, tokens, cost, size), name="chatwire allowance"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _ask(
        self, key: Key, checks: Sequence[Check], tokens: int, cost: int, size: int
    ) -> None:
        try:
            now_ms = self.clock_ms()
            gid = f"a{_PROCESS}.{next(_IDS)}"
            hold = Hold(gid, checks, tokens * size, cost * size, self.redis)
            try:
                got = await self.redis.grant(hold, now_ms, self.lease_ms, size)
            except REDIS_ERRORS as exc:
                self.failed(exc)
                return
            if not got:
                self.refused += 1
                self.paused_until[key] = now_ms + REFUSED_PAUSE_MS
                return
            self.granted += 1
            allowance = Allowance(
                gid, checks, size, tokens * size, cost * size, now_ms, reserved_told=tokens * size
            )
            # After the ones it has: each is used up in turn.
            self.current.setdefault(key, []).append(allowance)
            self.live.append(allowance)
            if self._flusher is None:
                self._flusher = asyncio.create_task(self._flush_loop(), name="chatwire allowances")
        finally:
            self.asking.discard(key)

    def _resize(self, key: Key, old: Allowance) -> None:
        size = self.sizes.get(key, FIRST_SIZE)
        if old.taken >= old.size:
            self.sizes[key] = min(size * 2, MAX_SIZE)
        elif old.taken * 4 < old.size:
            self.sizes[key] = max(size // 2, 2)

    async def _flush_loop(self) -> None:
        try:
            while self.live:
                await asyncio.sleep(FLUSH_S)
                if self.up():
                    await self.flush()
        except Exception:
            log.exception("the allowances' updates stopped")
        finally:
            self._flusher = None

    async def flush(self, close_all: bool = False) -> None:
        """Close the allowances at their end (all of them: ``close_all``), tell Redis what
        each did since it was last told, and forget those with nothing left."""
        now_ms = self.clock_ms()
        for key, held in list(self.current.items()):
            for allowance in list(held):
                if close_all or now_ms - allowance.granted_ms >= LIFETIME_MS:
                    allowance.close()
                    self._resize(key, allowance)
                    held.remove(allowance)
            if not held:
                del self.current[key]
        pending = [a for a in self.live if not a.told]
        if pending:
            results = await asyncio.gather(
                *(self._tell(a, now_ms) for a in pending), return_exceptions=True
            )
            for result in results:
                if isinstance(result, BaseException):
                    if not isinstance(result, REDIS_ERRORS):
                        raise result
                    self.failed(result)
                    break
        self.live = [a for a in self.live if not a.done]

    async def _tell(self, a: Allowance, now_ms: int) -> None:
        admitted, ended, reals, cost = a.admitted, a.ended, a.reals, a.cost_delta
        reserved = a.tokens_left + a.running_tokens
        give_back = not a.open and not a.returned_told
        unused = (a.taken + 1, a.size) if give_back and a.taken < a.size else (0, -1)
        a.admitted, a.ended, a.reals, a.cost_delta = [], [], [], 0
        try:
            await self.redis.update(
                a.gid,
                a.checks,
                now_ms,
                (a.reserved_told, reserved),
                cost,
                admitted,
                unused,
                ended,
                reals,
            )
        except BaseException:
            # Not told: all of it goes with the next update.
            a.admitted[:0] = admitted
            a.ended[:0] = ended
            a.reals[:0] = reals
            a.cost_delta += cost
            raise
        a.reserved_told = reserved
        if give_back:
            a.returned_told = True

    async def close(self) -> None:
        """At shutdown: give back what is unused and tell Redis the rest, once, within
        CLOSE_WITHIN seconds (a shutdown never waits longer for Redis)."""
        for task in list(self._tasks):
            task.cancel()
        try:
            async with asyncio.timeout(CLOSE_WITHIN):
                if self._flusher is not None:
                    self._flusher.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await self._flusher
                    self._flusher = None
                if self.live:
                    await self.flush(close_all=True)
        except REDIS_ERRORS as exc:  # TimeoutError among them
            log.warning("allowances not given back to Redis at shutdown: %r", exc)

    def forget(self) -> None:
        """Redis went down: admit nothing more from allowances (what they did is told once
        it answers again, by the flush task)."""
        for held in self.current.values():
            for allowance in held:
                allowance.close()
        self.current.clear()


def key_of(checks: Sequence[Check]) -> Key:
    """Which allowances serve ``checks``: their counters' keys and limits, so that a changed
    policy takes effect at once (its chats ask Redis, under the new limits). Made once per
    list of checks (``Limits``), not per chat."""
    return tuple(f"{check.key}={check.limit}" for check in checks)


def _cap(checks: Sequence[Check], tokens: int, cost: int) -> int:
    """The largest allowance of ``checks`` for chats of ``tokens`` and ``cost``: at most
    1/SHARE of each limit, and MAX_SIZE."""
    size = MAX_SIZE
    for check in checks:
        if check.kind == "tpm":
            unit = tokens
        elif check.kind == "budget":
            unit = cost
        else:
            unit = 1
        if unit > 0:
            size = min(size, check.limit // (SHARE * unit))
    return size
