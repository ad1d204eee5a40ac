"""Rate limits shared by every replica: the same token buckets and slot counts as
:mod:`dizuo.limits.memory`, kept in Redis and changed by one Lua script per call.

One script checks every subject of a call and takes from all of them, or from none, so the
all-or-nothing rule of the in-process backend holds across replicas. The script reads Redis's own
clock, so replicas whose clocks differ still share one minute. Concurrency slots are members of a
sorted set scored by their expiry: the slots of a replica that crashed lapse after ``slot_seconds``.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any

from dizuo.limits.base import Permit, RateState, Subject, too_many
from dizuo.store import ordered_id
from dizuo.store.resp import Multiplexed, Script

__all__ = ["LoopScripts", "RedisLimiter"]

PREFIX = "dizuo:limit:"
NONE = -1  # "no such limit" in the scripts' arguments

_LEVEL = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
-- A bucket's level now: full when new or when its capacity changed, else refilled since its stamp.
local function level(key, cap)
  local v = redis.call('HMGET', key, 'level', 'stamp', 'cap')
  if v[1] == false or tonumber(v[3]) ~= cap then return cap end
  return math.min(cap, tonumber(v[1]) + (now - tonumber(v[2])) * cap / 60)
end
local function store(key, cap, lvl)
  redis.call('HSET', key, 'level', tostring(lvl), 'stamp', tostring(now), 'cap', cap)
  redis.call('EXPIRE', key, 61)  -- a bucket left alone for a minute is full: forgetting it is the same
end
"""

# KEYS: per subject (requests bucket, tokens bucket, slots). ARGV: tokens, permit id, slot seconds,
# then per subject (rpm, tpm, concurrency), NONE where absent.
# Answers {0, subject index, kind 1|2|3, seconds to wait} or {1, then per subject (requests left,
# requests reset, tokens left, tokens reset)} as strings.
_ACQUIRE = (
    _LEVEL
    + """
local tokens = tonumber(ARGV[1])
local n = #KEYS / 3
local seen = {}
for i = 0, n - 1 do
  local rpm, tpm, conc = tonumber(ARGV[4 + 3 * i]), tonumber(ARGV[5 + 3 * i]), tonumber(ARGV[6 + 3 * i])
  local rl, tl = 0, 0
  if rpm >= 0 then
    rl = level(KEYS[1 + 3 * i], rpm)
    if rl < 1 then return {0, i, 1, tostring((1 - rl) * 60 / math.max(rpm, 1))} end
  end
  if tpm >= 0 then
    tl = level(KEYS[2 + 3 * i], tpm)
    if tl <= 0 then return {0, i, 2, tostring((1 - tl) * 60 / math.max(tpm, 1))} end
  end
  if conc >= 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[3 + 3 * i], '-inf', now)
    if redis.call('ZCARD', KEYS[3 + 3 * i]) >= conc then return {0, i, 3, '1'} end
  end
  seen[i] = {rl, tl}
end
local out = {1}
for i = 0, n - 1 do
  local rpm, tpm, conc = tonumber(ARGV[4 + 3 * i]), tonumber(ARGV[5 + 3 * i]), tonumber(ARGV[6 + 3 * i])
  local rl, tl = seen[i][1] - 1, seen[i][2] - tokens
  if rpm >= 0 then store(KEYS[1 + 3 * i], rpm, rl) end
  if tpm >= 0 then store(KEYS[2 + 3 * i], tpm, tl) end
  if conc >= 0 then
    redis.call('ZADD', KEYS[3 + 3 * i], now + tonumber(ARGV[3]), ARGV[2])
    redis.call('EXPIRE', KEYS[3 + 3 * i], math.ceil(tonumber(ARGV[3])))
  end
  out[#out + 1] = tostring(rl)
  out[#out + 1] = tostring((math.max(rpm, 1) - rl) * 60 / math.max(rpm, 1))
  out[#out + 1] = tostring(tl)
  out[#out + 1] = tostring((math.max(tpm, 1) - tl) * 60 / math.max(tpm, 1))
end
return out
"""
)

# KEYS: per subject (tokens bucket, slots). ARGV: permit id, token correction, then per subject tpm.
_RELEASE = (
    _LEVEL
    + """
local correction = tonumber(ARGV[2])
for i = 0, #KEYS / 2 - 1 do
  local tpm = tonumber(ARGV[3 + i])
  if tpm >= 0 and correction ~= 0 then
    store(KEYS[1 + 2 * i], tpm, math.min(tpm, level(KEYS[1 + 2 * i], tpm) - correction))
  end
  redis.call('ZREM', KEYS[2 + 2 * i], ARGV[1])
end
return 1
"""
)

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


class RedisLimiter:
    def __init__(self, url: str, slot_seconds: float = 900) -> None:
        self.slot_seconds = slot_seconds
        self._scripts = LoopScripts(url, {"acquire": _ACQUIRE, "release": _RELEASE})

    async def aclose(self) -> None:
        await self._scripts.aclose()

    async def acquire(self, subjects: tuple[Subject, ...], tokens: int) -> Permit:
        """Admit the call under every subject's limits, or raise 429 having taken nothing."""
        keys: list[str] = []
        args: list[Any] = [tokens, ordered_id(), self.slot_seconds]
        for subject in subjects:
            base = f"{PREFIX}{subject.id}"
            keys += [base + ":requests", base + ":tokens", base + ":slots"]
            limit = subject.limit
            args += [_limit(limit.rpm), _limit(limit.tpm), _limit(limit.concurrency)]
        result = await self._scripts["acquire"](keys=keys, args=args)
        if int(result[0]) == 0:
            zh, en = _KINDS[int(result[2])]
            raise too_many(zh, en, subjects[int(result[1])].id, float(result[3]))
        state = RateState()
        for index, subject in enumerate(subjects):
            requests, requests_reset, tokens_left, tokens_reset = (
                float(x) for x in result[1 + 4 * index : 5 + 4 * index]
            )
            if subject.limit.rpm is not None:
                state.tighten("requests", subject.limit.rpm, requests, requests_reset)
            if subject.limit.tpm is not None:
                state.tighten("tokens", subject.limit.tpm, tokens_left, tokens_reset)
        return Permit(subjects, tokens, state, id=args[1])

    async def release(self, permit: Permit, actual_tokens: int) -> None:
        """Free the call's concurrency slots and correct its token estimate."""
        if permit.released:
            return
        permit.released = True
        keys: list[str] = []
        args: list[Any] = [permit.id, actual_tokens - permit.tokens]
        for subject in permit.subjects:
            base = f"{PREFIX}{subject.id}"
            keys += [base + ":tokens", base + ":slots"]
            args.append(_limit(subject.limit.tpm))
        await self._scripts["release"](keys=keys, args=args)
