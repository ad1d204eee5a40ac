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
from enum import IntEnum
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from dizuo.errors import RateLimited
from dizuo.limits.base import Permit, RateState, Subject, too_many
from dizuo.store import ordered_id
from dizuo.store.resp import Multiplexed, Script, lua

__all__ = [
    "LIMITS_LUA",
    "Acquired",
    "LimitKind",
    "LoopScripts",
    "RedisLimiter",
    "admitted",
    "giving_back",
    "refused",
    "taking",
]

PREFIX = "dizuo:limit:"
NONE = -1  # "no such limit" in the scripts' arguments
REPAY_SECONDS = 1.0  # while Redis is away, how often what could not be given back is tried again
MAX_OWED = 100_000  # give-backs kept while Redis is away; older ones are left to lapse
log = logging.getLogger("dizuo.limits")

# The limits of one call as Lua functions (lua/limits.lua, whose header gives the arguments and
# replies), so that the wallet's scripts (dizuo.billing.shared) can take them in the same round trip
# as the hold, and give them back with a hold asked for and then abandoned.
LIMITS_LUA = lua("dizuo.limits", "limits")
_ACQUIRE = lua("dizuo.limits", "limits", "acquire")
_RELEASE = lua("dizuo.limits", "limits", "release")


class LimitKind(IntEnum):
    """Which limit refused a call, as ``limits_check`` answers it."""

    REQUESTS = 1
    TOKENS = 2
    CONCURRENCY = 3


class Acquired(IntEnum):
    """The first element of the acquire script's reply."""

    REFUSED = 0  # then subject index, kind, seconds to wait
    TAKEN = 1  # then each subject's levels (limits_take)


_KINDS = {
    LimitKind.REQUESTS: ("每分钟请求数已达上限", "requests per minute are used up"),
    LimitKind.TOKENS: ("每分钟 token 数已达上限", "tokens per minute are used up"),
    LimitKind.CONCURRENCY: ("并发请求数已达上限", "calls in flight are at the limit"),
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
    zh, en = _KINDS[LimitKind(int(answer[1]))]
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
        if int(result[0]) == Acquired.REFUSED:
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
