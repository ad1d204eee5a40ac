"""Rate limits shared by every replica: the same token buckets and slot counts as
:mod:`dizuo.limits.memory`, kept in Redis and changed by one Lua script per call.

One script checks every subject of a call and takes from all of them, or from none, so the
all-or-nothing rule of the in-process backend holds across replicas. The script reads Redis's own
clock, so replicas whose clocks differ still share one minute. Each concurrency slot carries when it
lapses: the slots of a replica that crashed lapse after ``slot_seconds``.

The scripts are Lua functions (:data:`LIMITS_LUA`) that the wallet's hold script also runs, so a
call's limits and its hold are taken in one round trip (:meth:`dizuo.billing.shared.RedisBook.admit`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from dizuo.errors import RateLimited
from dizuo.limits.base import Permit, RateState, Subject, too_many
from dizuo.store import ordered_id
from dizuo.store.resp import Multiplexed, Script

__all__ = ["LIMITS_LUA", "LoopScripts", "RedisLimiter", "admitted", "giving_back", "refused", "taking"]

PREFIX = "dizuo:limit:"
NONE = -1  # "no such limit" in the scripts' arguments
REPAY_SECONDS = 1.0  # while Redis is away, how often what could not be given back is tried again
MAX_OWED = 100_000  # give-backs kept while Redis is away; older ones are left to lapse
log = logging.getLogger("dizuo.limits")

# The limits of one call as Lua functions, so that the wallet's scripts (dizuo.billing.shared) can
# take them in the same round trip as the hold, and give them back with a hold asked for and then
# abandoned.
#
# A subject's state is one hash (few Redis commands per call: each costs a script 1–2 µs). Its field
# 'b' is "requests tokens stamp rpm tpm n due until", all whole numbers (formatting a fraction costs
# Lua ten times more): the buckets' levels in thousandths at the stamp (Redis's clock, milliseconds),
# the capacities they were filled for (NONE where a limit is absent), the concurrency slots taken, a
# time no slot lapses before (milliseconds; 0: none known) and when the key's TTL ends (seconds). Each
# slot is a field of its own, the permit id, valued when it lapses (milliseconds). The TTL is renewed
# only when it would end less than a slot's life (or a minute, for the buckets) from now, so at most
# about every two minutes.
#
# KEYS[k + 1 …]: per subject its hash; ARGV[a + 1 …]: tokens, permit id, slot seconds, then per
# subject (rpm, tpm, concurrency), NONE where absent. limits_check() answers false, {subject index,
# kind 1|2|3, seconds to wait} when a limit refuses, and true, the state seen otherwise;
# limits_take() then appends per subject (requests left, milliseconds until the requests bucket is
# full, tokens left, milliseconds until the tokens bucket is full), whole numbers, to *out*.
# limits_give_back() takes the same keys and, at ARGV[a + 1 …], the permit id, the token correction,
# then the same (rpm, tpm, concurrency) per subject.
LIMITS_LUA = """
local clock, ms  -- Redis's clock: seconds, and whole milliseconds; read by the first limit function
local function tick()
  if ms then return end
  local t = redis.call('TIME')
  ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  clock = ms / 1000
end
-- The subject's state now: {requests, tokens, slots, due, until}, the buckets full when new or when
-- their capacity changed, else refilled since the stamp.
local function state(key, rpm, tpm)
  local rl, tl, n, due, untl = rpm, tpm, 0, 0, 0
  local v = redis.call('HGET', key, 'b')
  if v then
    local r, t, stamp, rc, tc, sn, sd, su = string.match(v, '(%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+)')
    local since = (ms - tonumber(stamp)) / 1000
    if rpm >= 0 and tonumber(rc) == rpm then rl = math.min(rpm, tonumber(r) / 1000 + since * rpm / 60) end
    if tpm >= 0 and tonumber(tc) == tpm then tl = math.min(tpm, tonumber(t) / 1000 + since * tpm / 60) end
    n, due, untl = tonumber(sn), tonumber(sd), tonumber(su)
  end
  return {rl, tl, n, due, untl}
end
-- Write the state s (and one slot, lapsing at *lapses* ms, when given); keep the key at least *keep*
-- seconds more.
local function store(key, s, rpm, tpm, keep, slot, lapses)
  local renew = s[5] < clock + keep
  if renew then s[5] = math.ceil(clock + keep + 120) end
  local b = string.format('%d %d %d %d %d %d %d %d',
    math.floor(s[1] * 1000 + 0.5), math.floor(s[2] * 1000 + 0.5), ms, rpm, tpm, s[3], s[4], s[5])
  if slot then
    redis.call('HSET', key, 'b', b, slot, string.format('%d', lapses))
  else
    redis.call('HSET', key, 'b', b)
  end
  if renew then redis.call('EXPIREAT', key, string.format('%d', s[5])) end
end
-- Forget the subject's lapsed slots: its state s gets the true count and earliest lapse.
local function sweep(key, s)
  local all, gone = redis.call('HGETALL', key), {}
  local n, due = 0, 0
  for j = 1, #all, 2 do
    if all[j] ~= 'b' then
      local lapses = tonumber(all[j + 1])
      if lapses <= ms then
        gone[#gone + 1] = all[j]
      else
        n = n + 1
        if due == 0 or lapses < due then due = lapses end
      end
    end
  end
  if #gone > 0 then redis.call('HDEL', key, unpack(gone)) end
  s[3], s[4] = n, due
end
local function limits_check(k, a, m)
  if m == 0 then return true, {} end
  tick()
  local seen = {}
  for i = 0, m - 1 do
    local rpm, tpm, conc = tonumber(ARGV[a + 4 + 3 * i]), tonumber(ARGV[a + 5 + 3 * i]), tonumber(ARGV[a + 6 + 3 * i])
    local key = KEYS[k + 1 + i]
    local s = state(key, rpm, tpm)
    if rpm >= 0 and s[1] < 1 then return false, {i, 1, tostring((1 - s[1]) * 60 / math.max(rpm, 1))} end
    if tpm >= 0 and s[2] <= 0 then return false, {i, 2, tostring((1 - s[2]) * 60 / math.max(tpm, 1))} end
    if conc >= 0 and s[3] >= conc then
      if s[4] <= ms then  -- full, and a slot may have lapsed: forget those first
        local n = s[3]
        sweep(key, s)
        if s[3] ~= n then store(key, s, rpm, tpm, 0) end
      end
      if s[3] >= conc then return false, {i, 3, '1'} end
    end
    seen[i] = s
  end
  return true, seen
end
local function limits_take(k, a, m, seen, out)
  local tokens, permit, life = tonumber(ARGV[a + 1]), ARGV[a + 2], tonumber(ARGV[a + 3])
  for i = 0, m - 1 do
    local rpm, tpm, conc = tonumber(ARGV[a + 4 + 3 * i]), tonumber(ARGV[a + 5 + 3 * i]), tonumber(ARGV[a + 6 + 3 * i])
    local s = seen[i]
    s[1], s[2] = s[1] - 1, s[2] - tokens
    if conc >= 0 then
      local lapses = ms + math.floor(life * 1000)
      if s[3] == 0 then s[4] = lapses elseif s[4] > 0 and lapses < s[4] then s[4] = lapses end
      s[3] = s[3] + 1
      store(KEYS[k + 1 + i], s, rpm, tpm, math.max(life, 61), permit, lapses)
    else
      store(KEYS[k + 1 + i], s, rpm, tpm, 61)
    end
    local rl, tl = s[1], s[2]
    out[#out + 1] = math.floor(rl)
    out[#out + 1] = math.ceil((math.max(rpm, 1) - rl) * 60000 / math.max(rpm, 1))
    out[#out + 1] = math.floor(tl)
    out[#out + 1] = math.ceil((math.max(tpm, 1) - tl) * 60000 / math.max(tpm, 1))
  end
end
local function limits_give_back(k, a, m)
  if m == 0 then return end
  tick()
  local correction = tonumber(ARGV[a + 2])
  for i = 0, m - 1 do
    local rpm, tpm, conc = tonumber(ARGV[a + 3 + 3 * i]), tonumber(ARGV[a + 4 + 3 * i]), tonumber(ARGV[a + 5 + 3 * i])
    local key = KEYS[k + 1 + i]
    local freed = conc >= 0 and redis.call('HDEL', key, ARGV[a + 1]) == 1
    local corrected = tpm >= 0 and correction ~= 0
    if freed or corrected then
      local s = state(key, rpm, tpm)
      if corrected then s[2] = math.min(tpm, s[2] - correction) end
      if freed then s[3] = math.max(s[3] - 1, 0) end
      store(key, s, rpm, tpm, 61)
    end
  end
end
"""

# Answers {0, subject index, kind, seconds to wait} or {1, then what limits_take appends}.
_ACQUIRE = (
    LIMITS_LUA
    + """
local ok, seen = limits_check(0, 0, #KEYS)
if not ok then return {0, seen[1], seen[2], seen[3]} end
local out = {1}
limits_take(0, 0, #KEYS, seen, out)
return out
"""
)

_RELEASE = LIMITS_LUA + "limits_give_back(0, 0, #KEYS) return 1"

_KINDS = {
    1: ("每分钟请求数已达上限", "requests per minute are used up"),
    2: ("每分钟 token 数已达上限", "tokens per minute are used up"),
    3: ("并发请求数已达上限", "calls in flight are at the limit"),
}


class LoopScripts:
    """Lua scripts on one multiplexed Redis connection per event loop (:mod:`dizuo.store.resp`)."""

    def __init__(self, url: str, scripts: dict[str, str]) -> None:
        self.redis = Multiplexed(url)
        self._scripts = {name: Script(source) for name, source in scripts.items()}
        # Give-backs Redis could not be reached for, sent again once it answers (give_back).
        self._owed: list[tuple[str, list[str], list[Any]]] = []
        self._repaying: asyncio.Task[None] | None = None

    async def give_back(
        self, name: str, keys: list[str], args: list[Any], *, again: list[Any] | None = None
    ) -> None:
        """Run the script *name*, which gives back what a call took (a hold, concurrency slots).
        When Redis cannot be reached it is kept, with the arguments *again* (default *args*; they
        must give back only once if run twice, as the first try may have run), and sent every
        ``REPAY_SECONDS`` until Redis answers: what it gives back is free again as soon as Redis is
        back, where it would otherwise wait to lapse."""
        try:
            await self.redis.run(self._scripts[name], keys, args)
        except (RedisConnectionError, RedisTimeoutError):
            if len(self._owed) >= MAX_OWED:
                del self._owed[0]
            self._owed.append((name, keys, args if again is None else again))
            if self._repaying is None or self._repaying.done():
                self._repaying = asyncio.ensure_future(self._repay())

    async def _repay(self) -> None:
        while self._owed:
            await asyncio.sleep(REPAY_SECONDS)
            while self._owed:
                name, keys, args = self._owed[0]
                try:
                    await self.redis.run(self._scripts[name], keys, args)
                except (RedisConnectionError, RedisTimeoutError):
                    break  # still away
                except Exception:  # a bug: this one is left to lapse
                    log.exception("giving back to Redis failed; left to lapse")
                self._owed.pop(0)
            else:
                log.warning("Redis is back: what calls cut short had taken is given back")

    def submit(self, name: str, keys: list[str], args: list[Any]) -> asyncio.Future[Any]:
        """Send the script *name* at once, not waiting for its reply (:meth:`Multiplexed.submit`)."""
        return self.redis.submit(self._scripts[name], keys, args)

    def __getitem__(self, name: str) -> Callable[..., Awaitable[Any]]:
        """The script *name*, callable as ``await script(keys=…, args=…)`` on the running loop."""
        return functools.partial(self.redis.run, self._scripts[name])

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop whose connection the scripts use now (None before the first call)."""
        return self.redis.loop

    async def aclose(self) -> None:
        if self._repaying is not None:
            self._repaying.cancel()  # what is still owed lapses, as a stopped replica's does
        await self.redis.aclose()


def _limit(value: int | None) -> int:
    return NONE if value is None else value


def _per_subject(subjects: tuple[Subject, ...]) -> tuple[list[str], list[int]]:
    """Each subject's key, and its (rpm, tpm, concurrency) as the scripts take them."""
    keys: list[str] = []
    limits: list[int] = []
    for subject in subjects:
        keys.append(f"{PREFIX}{subject.id}:state")
        limit = subject.limit
        limits += [_limit(limit.rpm), _limit(limit.tpm), _limit(limit.concurrency)]
    return keys, limits


def taking(
    subjects: tuple[Subject, ...], tokens: int, slot_seconds: float
) -> tuple[list[str], list[Any], str]:
    """The keys and arguments that take *subjects*' limits for one call (``limits_check``, then
    ``limits_take``), and the new permit's id."""
    permit_id = ordered_id()
    keys, limits = _per_subject(subjects)
    return keys, [tokens, permit_id, slot_seconds, *limits], permit_id


def refused(subjects: tuple[Subject, ...], answer: Sequence[Any]) -> RateLimited:
    """The 429 for ``limits_check``'s refusal *answer* (subject index, kind, seconds to wait)."""
    zh, en = _KINDS[int(answer[1])]
    return too_many(zh, en, subjects[int(answer[0])].id, float(answer[2]))


def admitted(subjects: tuple[Subject, ...], tokens: int, permit_id: str, levels: Sequence[Any]) -> Permit:
    """The permit of a call whose limits ``limits_take`` took, with the *levels* it answered."""
    state = RateState()
    for index, subject in enumerate(subjects):
        requests, requests_reset, tokens_left, tokens_reset = levels[4 * index : 4 * index + 4]
        if subject.limit.rpm is not None:
            state.tighten("requests", subject.limit.rpm, requests, requests_reset / 1000)
        if subject.limit.tpm is not None:
            state.tighten("tokens", subject.limit.tpm, tokens_left, tokens_reset / 1000)
    return Permit(subjects, tokens, state, id=permit_id)


def giving_back(permit: Permit, actual_tokens: int) -> tuple[list[str], list[Any]]:
    """The keys and arguments of ``limits_give_back`` for *permit*, whose call used *actual_tokens*."""
    keys, limits = _per_subject(permit.subjects)
    return keys, [permit.id, actual_tokens - permit.tokens, *limits]


class RedisLimiter:
    def __init__(self, url: str, slot_seconds: float = 900) -> None:
        self.url = url
        self.slot_seconds = slot_seconds
        self._scripts = LoopScripts(url, {"acquire": _ACQUIRE, "release": _RELEASE})

    async def aclose(self) -> None:
        await self._scripts.aclose()

    async def acquire(self, subjects: tuple[Subject, ...], tokens: int) -> Permit:
        """Admit the call under every subject's limits, or raise 429 having taken nothing."""
        keys, args, permit_id = taking(subjects, tokens, self.slot_seconds)
        result = await self._scripts["acquire"](keys=keys, args=args)
        if int(result[0]) == 0:
            raise refused(subjects, result[1:])
        return admitted(subjects, tokens, permit_id, result[1:])

    async def release(self, permit: Permit, actual_tokens: int) -> None:
        """Free the call's concurrency slots and correct its token estimate."""
        if permit.released:
            return
        permit.released = True
        keys, args = giving_back(permit, actual_tokens)
        # Tried again, the token correction is left out: it is the one part that would count twice.
        again = giving_back(permit, permit.tokens)[1]
        await self._scripts.give_back("release", keys, args, again=again)
