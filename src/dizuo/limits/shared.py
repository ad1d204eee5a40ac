"""Rate limits shared by every replica: the same token buckets and slot counts as
:mod:`dizuo.limits.memory`, kept in Redis and changed by one Lua script per call.

One script checks every subject of a call and takes from all of them, or from none, so the
all-or-nothing rule of the in-process backend holds across replicas. The script reads Redis's own
clock, so replicas whose clocks differ still share one minute. Concurrency slots are members of a
sorted set scored by their expiry: the slots of a replica that crashed lapse after ``slot_seconds``.

The scripts are Lua functions (:data:`LIMITS_LUA`) that the wallet's hold script also runs, so a
call's limits and its hold are taken in one round trip (:meth:`dizuo.billing.shared.RedisBook.admit`).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from dizuo.errors import RateLimited
from dizuo.limits.base import Permit, RateState, Subject, too_many
from dizuo.store import ordered_id
from dizuo.store.resp import Multiplexed, Script

__all__ = ["LIMITS_LUA", "LoopScripts", "RedisLimiter", "admitted", "giving_back", "refused", "taking"]

PREFIX = "dizuo:limit:"
NONE = -1  # "no such limit" in the scripts' arguments

# The limits of one call as Lua functions, so that the wallet's scripts (dizuo.billing.shared) can
# take them in the same round trip as the hold, and give them back with a hold asked for and then
# abandoned.
#
# A subject's two buckets are one string, "requests tokens stamp rpm tpm": their levels at the stamp
# and the capacities they were filled for (NONE where a limit is absent); its concurrency slots are a
# sorted set of permit ids scored by when they lapse.
#
# KEYS[k + 1 …]: per subject (buckets, slots); ARGV[a + 1 …]: tokens, permit id, slot seconds, then
# per subject (rpm, tpm, concurrency), NONE where absent. limits_check() answers false, {subject
# index, kind 1|2|3, seconds to wait} when a limit refuses, and true, the levels seen otherwise;
# limits_take() then appends per subject (requests left, milliseconds until the requests bucket is
# full, tokens left, milliseconds until the tokens bucket is full), whole numbers, to *out*.
# limits_give_back() takes the same keys and, at ARGV[a + 1 …], the permit id, the token correction,
# then the same (rpm, tpm, concurrency) per subject.
LIMITS_LUA = """
local clock
do
  local t = redis.call('TIME')
  clock = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
-- The buckets' levels now: full when new or when their capacity changed, else refilled since the stamp.
local function levels(key, rpm, tpm)
  local rl, tl = rpm, tpm
  local v = redis.call('GET', key)
  if v then
    local r, t, stamp, rc, tc = string.match(v, '(%S+) (%S+) (%S+) (%S+) (%S+)')
    local since = clock - tonumber(stamp)
    if rpm >= 0 and tonumber(rc) == rpm then rl = math.min(rpm, tonumber(r) + since * rpm / 60) end
    if tpm >= 0 and tonumber(tc) == tpm then tl = math.min(tpm, tonumber(t) + since * tpm / 60) end
  end
  return rl, tl
end
local function store(key, rl, tl, rpm, tpm)
  -- Buckets left alone for a minute are full: forgetting them is the same.
  redis.call('SET', key, string.format('%.17g %.17g %.17g %d %d', rl, tl, clock, rpm, tpm), 'EX', 61)
end
local function limits_check(k, a, n)
  local seen = {}
  for i = 0, n - 1 do
    local rpm, tpm, conc = tonumber(ARGV[a + 4 + 3 * i]), tonumber(ARGV[a + 5 + 3 * i]), tonumber(ARGV[a + 6 + 3 * i])
    local rl, tl = 0, 0
    if rpm >= 0 or tpm >= 0 then
      rl, tl = levels(KEYS[k + 1 + 2 * i], rpm, tpm)
      if rpm >= 0 and rl < 1 then return false, {i, 1, tostring((1 - rl) * 60 / math.max(rpm, 1))} end
      if tpm >= 0 and tl <= 0 then return false, {i, 2, tostring((1 - tl) * 60 / math.max(tpm, 1))} end
    end
    if conc >= 0 then
      local slots = KEYS[k + 2 + 2 * i]
      if redis.call('ZCARD', slots) >= conc then
        redis.call('ZREMRANGEBYSCORE', slots, '-inf', clock)  -- full: forget slots that lapsed first
        if redis.call('ZCARD', slots) >= conc then return false, {i, 3, '1'} end
      end
    end
    seen[i] = {rl, tl}
  end
  return true, seen
end
local function limits_take(k, a, n, seen, out)
  local tokens, slot = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 3])
  for i = 0, n - 1 do
    local rpm, tpm, conc = tonumber(ARGV[a + 4 + 3 * i]), tonumber(ARGV[a + 5 + 3 * i]), tonumber(ARGV[a + 6 + 3 * i])
    local rl, tl = seen[i][1] - 1, seen[i][2] - tokens
    if rpm >= 0 or tpm >= 0 then store(KEYS[k + 1 + 2 * i], rl, tl, rpm, tpm) end
    if conc >= 0 then
      redis.call('ZADD', KEYS[k + 2 + 2 * i], clock + slot, ARGV[a + 2])
      redis.call('EXPIRE', KEYS[k + 2 + 2 * i], math.ceil(slot))
    end
    out[#out + 1] = math.floor(rl)
    out[#out + 1] = math.ceil((math.max(rpm, 1) - rl) * 60000 / math.max(rpm, 1))
    out[#out + 1] = math.floor(tl)
    out[#out + 1] = math.ceil((math.max(tpm, 1) - tl) * 60000 / math.max(tpm, 1))
  end
end
local function limits_give_back(k, a, n)
  local correction = tonumber(ARGV[a + 2])
  for i = 0, n - 1 do
    local rpm, tpm, conc = tonumber(ARGV[a + 3 + 3 * i]), tonumber(ARGV[a + 4 + 3 * i]), tonumber(ARGV[a + 5 + 3 * i])
    if tpm >= 0 and correction ~= 0 then
      local rl, tl = levels(KEYS[k + 1 + 2 * i], rpm, tpm)
      store(KEYS[k + 1 + 2 * i], rl, math.min(tpm, tl - correction), rpm, tpm)
    end
    if conc >= 0 then redis.call('ZREM', KEYS[k + 2 + 2 * i], ARGV[a + 1]) end
  end
end
"""

# Answers {0, subject index, kind, seconds to wait} or {1, then what limits_take appends}.
_ACQUIRE = (
    LIMITS_LUA
    + """
local ok, seen = limits_check(0, 0, #KEYS / 2)
if not ok then return {0, seen[1], seen[2], seen[3]} end
local out = {1}
limits_take(0, 0, #KEYS / 2, seen, out)
return out
"""
)

_RELEASE = LIMITS_LUA + "limits_give_back(0, 0, #KEYS / 2) return 1"

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
        await self.redis.aclose()


def _limit(value: int | None) -> int:
    return NONE if value is None else value


def _subject_keys(subject: Subject) -> list[str]:
    base = f"{PREFIX}{subject.id}"
    return [base + ":buckets", base + ":slots"]


def _subject_limits(subject: Subject) -> list[int]:
    limit = subject.limit
    return [_limit(limit.rpm), _limit(limit.tpm), _limit(limit.concurrency)]


def taking(
    subjects: tuple[Subject, ...], tokens: int, slot_seconds: float
) -> tuple[list[str], list[Any], str]:
    """The keys and arguments that take *subjects*' limits for one call (``limits_check``, then
    ``limits_take``), and the new permit's id."""
    keys: list[str] = []
    permit_id = ordered_id()
    args: list[Any] = [tokens, permit_id, slot_seconds]
    for subject in subjects:
        keys += _subject_keys(subject)
        args += _subject_limits(subject)
    return keys, args, permit_id


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
    keys: list[str] = []
    args: list[Any] = [permit.id, actual_tokens - permit.tokens]
    for subject in permit.subjects:
        keys += _subject_keys(subject)
        args += _subject_limits(subject)
    return keys, args


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
        await self._scripts["release"](keys=keys, args=args)
