"""The counters in Redis, shared by every process using it: each admission is one Lua script
call (EVALSHA) over all of a chat's counters, each settlement one more, so nothing is read
here and then written (no race between processes); the semantics are ``team.counters``.

The calls of chats that come while others are on their way to Redis go together, in one
pipeline, when those are answered (``Calls``): each call is a round trip of the process's
own (a write, a read, a wait in the event loop, redis-py's pool and timers), and measured
on a 2-core machine a round trip costs about 0.27 ms of CPU, as much as a quarter of a
whole short chat. Redis runs the calls of a pipeline in order, one by one, each script
atomic as before; a chat waits at most for the pipeline in flight before its own goes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.exceptions import NoScriptError, RedisError

from chatwire.team.counters import WINDOW_MS, Check, Counters, Hold, Refusal

# KEYS: one per check. ARGV: now (ms), the hold's id, the window (ms), the lease's end (ms),
# the tokens and micro-dollars reserved, the chats (1: one chat; more: an allowance of that
# many, ``team.allowances``, its places and requests named <id>.1, <id>.2...), then per
# check: its kind, limit, seed (-1: none) and (budgets) the ms its counter lives after now
# (0: for ever).
# Returns {0}: admitted; {1, check, ms}: refused, may pass in ms; {2, check...}: the budget
# checks with no count yet in their period (ask again with their seeds). Checks (indexes)
# count from 0.
ADMIT = """
local now, id, window = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local lease_until, tokens, cost = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local count = tonumber(ARGV[7])
local n = #KEYS
local missing = {2}
for i = 1, n do
  if ARGV[4 + 4 * i] == 'budget' and tonumber(ARGV[6 + 4 * i]) < 0
      and redis.call('EXISTS', KEYS[i]) == 0 then
    missing[#missing + 1] = i - 1
  end
end
if #missing > 1 then return missing end
local function add(key, score)
  if count == 1 then
    redis.call('ZADD', key, score, id)
  else
    for j = 1, count do redis.call('ZADD', key, score, id .. '.' .. j) end
  end
end
for i = 1, n do
  local key, kind, limit = KEYS[i], ARGV[4 + 4 * i], tonumber(ARGV[5 + 4 * i])
  if kind == 'rpm' then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
    if redis.call('ZCARD', key) + count > limit then
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
    if (used > 0 or count > 1) and used + tokens > limit then
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
    if redis.call('ZCARD', key) + count > limit then return {1, i - 1, 1000} end
  else
    local spent = redis.call('GET', key)
    if not spent then
      spent = ARGV[6 + 4 * i]
      redis.call('SET', key, spent)
      local ttl = tonumber(ARGV[7 + 4 * i])
      if ttl > 0 then redis.call('PEXPIRE', key, ttl) end
    end
    if tonumber(spent) + cost > limit then return {1, i - 1, 0} end
  end
end
for i = 1, n do
  local key, kind = KEYS[i], ARGV[4 + 4 * i]
  if kind == 'rpm' then
    add(key, now)
    redis.call('PEXPIRE', key, window + 1000)
  elseif kind == 'tpm' then
    redis.call('ZADD', key, now, id .. ':' .. tokens)
    redis.call('INCRBY', key .. ':sum', tokens)
    redis.call('PEXPIRE', key, window + 1000)
    redis.call('PEXPIRE', key .. ':sum', window + 1000)
  elseif kind == 'parallel' or kind == 'streams' then
    add(key, lease_until)
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

# What an allowance (``team.allowances``) did since it last told Redis, in one call.
# KEYS: its checks'. ARGV: now (ms), its id, the window (ms), then per check its kind and
# (budgets) the ms its counter lives after now; then the tokens it held reserved, the tokens
# it holds now, the micro-dollars to add (real cost less estimates; less what is given
# back), the first and last number given back unused (their requests and places go; 0 -1:
# none), then three lists, each one string of numbers apart by spaces: the chats admitted
# (number, ms: their request moves to its real time), the chats ended (their places go),
# the real tokens (number, tokens). (One string each: redis-py encodes each argument in
# Python, about 2 us apiece.)
UPDATE = """
local now, id, window = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local n = #KEYS
local p = 4 + 2 * n
local old, new, cost = tonumber(ARGV[p]), tonumber(ARGV[p + 1]), tonumber(ARGV[p + 2])
local unused_from, unused_to = tonumber(ARGV[p + 3]), tonumber(ARGV[p + 4])
local function numbers(text)
  local found = {}
  for x in string.gmatch(text, '%d+') do found[#found + 1] = x end
  return found
end
local admitted, ended, reals = numbers(ARGV[p + 5]), numbers(ARGV[p + 6]), numbers(ARGV[p + 7])
for i = 1, n do
  local key, kind = KEYS[i], ARGV[2 + 2 * i]
  if kind == 'rpm' then
    for k = 1, #admitted, 2 do
      redis.call('ZADD', key, 'XX', admitted[k + 1], id .. '.' .. admitted[k])
    end
    for j = unused_from, unused_to do redis.call('ZREM', key, id .. '.' .. j) end
    if #admitted > 0 then redis.call('PEXPIRE', key, window + 1000) end
  elseif kind == 'parallel' or kind == 'streams' then
    for j = unused_from, unused_to do redis.call('ZREM', key, id .. '.' .. j) end
    for k = 1, #ended do redis.call('ZREM', key, id .. '.' .. ended[k]) end
  elseif kind == 'tpm' then
    local sum = key .. ':sum'
    if old ~= new then
      local score = redis.call('ZSCORE', key, id .. ':' .. old)
      if score then
        redis.call('ZREM', key, id .. ':' .. old)
        redis.call('DECRBY', sum, old)
        if new > 0 then
          redis.call('ZADD', key, score, id .. ':' .. new)
          redis.call('INCRBY', sum, new)
        end
      end
    end
    for k = 1, #reals, 2 do
      local real = tonumber(reals[k + 1])
      if real > 0 then
        redis.call('ZADD', key, now, id .. '.' .. reals[k] .. ':r:' .. real)
        redis.call('INCRBY', sum, real)
      end
    end
    if #reals > 0 then
      redis.call('PEXPIRE', key, window + 1000)
      redis.call('PEXPIRE', sum, window + 1000)
    end
  elseif kind == 'budget' then
    if cost ~= 0 and redis.call('EXISTS', key) == 1 then
      redis.call('INCRBY', key, cost)
      local ttl = tonumber(ARGV[3 + 2 * i])
      if ttl > 0 then redis.call('PEXPIRE', key, ttl) end
    end
  end
end
return 0
"""

# What a Redis that does not answer raises (redis-py's own errors, and the timeouts and
# socket errors under them).
REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)


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
        self._update = client.register_script(UPDATE)
        self._calls = Calls(client, (self._admit, self._settle, self._update))

    async def load(self) -> None:
        """Load the scripts now (each call finds them loaded: one EVALSHA)."""
        await self._calls.load()

    async def admit(
        self, hold: Hold, now_ms: int, lease_ms: int, seeds: dict[int, int]
    ) -> Refusal | list[int] | None:
        return await self._reserve(hold, now_ms, lease_ms, seeds, 1)

    async def grant(self, hold: Hold, now_ms: int, lease_ms: int, count: int) -> bool:
        """Reserve an allowance of ``count`` chats (``hold``: its id, checks, and the tokens
        and micro-dollars of them all) in one call; False when any check has no room for
        all of it (nothing is then reserved) or a budget has no count yet."""
        return await self._reserve(hold, now_ms, lease_ms, {}, count) is None

    async def _reserve(
        self, hold: Hold, now_ms: int, lease_ms: int, seeds: dict[int, int], count: int
    ) -> Refusal | list[int] | None:
        prefix = self._prefix
        keys = [prefix + check.key for check in hold.checks]
        args: list[Any] = [
            now_ms,
            hold.id,
            WINDOW_MS,
            now_ms + lease_ms,
            hold.tokens,
            hold.cost,
            count,
        ]
        for i, check in enumerate(hold.checks):
            args += (check.kind, check.limit, seeds.get(i, -1), _lives_ms(check, now_ms))
        result = await self._calls.call(self._admit.sha, keys, args)
        if result[0] == 0:
            return None
        if result[0] == 1:
            return Refusal(int(result[1]), int(result[2]))
        return [int(i) for i in result[1:]]

    async def settle(self, hold: Hold, now_ms: int, tokens: int, cost: int) -> None:
        keys = [self._prefix + check.key for check in hold.checks]
        args: list[Any] = [now_ms, hold.id, WINDOW_MS, hold.tokens, tokens, hold.cost, cost]
        args += _kinds_and_lives(hold.checks, now_ms)
        await self._calls.call(self._settle.sha, keys, args)

    async def update(
        self,
        gid: str,
        checks: Sequence[Check],
        now_ms: int,
        reserved: tuple[int, int],
        cost: int,
        admitted: Sequence[int],
        unused: tuple[int, int],
        ended: Sequence[int],
        reals: Sequence[int],
    ) -> None:
        """Tell Redis what allowance ``gid`` did (``UPDATE``); ``reserved``: the tokens it
        held reserved, and holds now; ``admitted`` and ``reals``: pairs, flat."""
        keys = [self._prefix + check.key for check in checks]
        args: list[Any] = [now_ms, gid, WINDOW_MS, *_kinds_and_lives(checks, now_ms)]
        args += (*reserved, cost, *unused)
        args += (" ".join(map(str, admitted)), " ".join(map(str, ended)))
        args.append(" ".join(map(str, reals)))
        await self._calls.call(self._update.sha, keys, args)


class Calls:
    """Script calls (EVALSHA) to Redis, one round trip at a time on their way: a call that
    finds none goes at once, alone; the calls that come while one is on its way wait, and go
    together in one pipeline as soon as it is answered. A script Redis no longer has
    (restarted, flushed) is loaded again and its calls made once more; any other failure is
    the failure of every call it was sent with."""

    def __init__(self, client: Any, scripts: tuple[Any, ...]) -> None:
        self._client = client
        self._scripts = scripts
        self._waiting: list[tuple[str, list[Any], list[Any], asyncio.Future[Any]]] = []
        self._busy = False
        self._sending: asyncio.Task[None] | None = None

    async def load(self) -> None:
        for script in self._scripts:
            await self._client.script_load(script.script)

    async def call(self, sha: str, keys: list[Any], args: list[Any]) -> Any:
        """The script's answer."""
        if self._busy:
            answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._waiting.append((sha, keys, args, answer))
            return await answer
        self._busy = True
        try:
            try:
                return await self._client.evalsha(sha, len(keys), *keys, *args)
            except NoScriptError:
                await self.load()
                return await self._client.evalsha(sha, len(keys), *keys, *args)
        finally:
            if self._waiting:
                self._sending = asyncio.create_task(self._send(), name="chatwire redis calls")
            else:
                self._busy = False

    async def _send(self) -> None:
        try:
            while self._waiting:
                calls, self._waiting = self._waiting, []
                try:
                    answers = await self._pipeline(calls)
                    redo = [i for i, got in enumerate(answers) if isinstance(got, NoScriptError)]
                    if redo:
                        await self.load()
                        again = await self._pipeline([calls[i] for i in redo])
                        for i, got in zip(redo, again, strict=True):
                            answers[i] = got
                except asyncio.CancelledError:
                    for *_, answer in calls + self._waiting:
                        answer.cancel()
                    self._waiting = []
                    raise
                except Exception as exc:
                    # Redis did not answer (or refused the pipeline): each call's failure.
                    for *_, answer in calls:
                        if not answer.done():
                            answer.set_exception(exc)
                    continue
                for (*_, answer), got in zip(calls, answers, strict=True):
                    if answer.done():
                        continue  # its chat went away meanwhile
                    if isinstance(got, Exception):
                        answer.set_exception(got)
                    else:
                        answer.set_result(got)
        finally:
            self._busy = False
            self._sending = None

    async def _pipeline(
        self, calls: list[tuple[str, list[Any], list[Any], asyncio.Future[Any]]]
    ) -> list[Any]:
        pipe = self._client.pipeline(transaction=False)
        for sha, keys, args, _ in calls:
            pipe.evalsha(sha, len(keys), *keys, *args)
        return list(await pipe.execute(raise_on_error=False))


def _kinds_and_lives(checks: Sequence[Check], now_ms: int) -> list[Any]:
    """Each check's kind and the ms its counter lives after now (``_lives_ms``), flat: the
    per-check arguments of SETTLE and UPDATE."""
    found: list[Any] = []
    for check in checks:
        found += (check.kind, _lives_ms(check, now_ms))
    return found


def _lives_ms(check: Check, now_ms: int) -> int:
    """How long a budget's counter is kept: its period and a day more (a late settlement
    still finds it); 0 (for ever) for a total budget, and for the other kinds (unused)."""
    if check.kind != "budget" or check.until is None:
        return 0
    return max(int(check.until.timestamp() * 1000) - now_ms + 86_400_000, 1000)
