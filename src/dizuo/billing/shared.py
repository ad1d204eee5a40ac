"""Holds shared by every replica: the wallet book in Redis, changed only by atomic Lua scripts.

The database stays the source of truth for money; Redis holds what the database does not know yet:

* ``held`` — money reserved by calls in flight, on any replica (``h:<voucher>`` per voucher);
* ``pend`` — money charged by finished calls whose journal batch has not committed (``p:<voucher>``);
* ``ver``/``bal``/``r:<voucher>`` — the wallet as the newest database state any replica pushed.

What a call may spend is ``bal − held − pend`` (and ``r − h − p`` per voucher). A replica pushes a
wallet's state, tagged with its version, after each commit (read inside the commit's transaction)
and whenever its refresh sees a newer version (top-ups, vouchers granted or revoked); a push never
replaces a newer state. A committed charge leaves ``pend`` in the same script that pushes the state
containing it, so the same money is never counted as both spent and free — at worst, briefly, as
spent twice (less is spendable, never more).

Holds and pending charges carry an expiry: those of a replica that crashed lapse after
``hold_seconds`` and their money becomes spendable again.

The reserve script computes the voucher split itself (Python passes the eligible vouchers in order,
with their co-pay ratios), so a hold is one round trip however many calls of one organization race.
Settling needs no availability (the hold's slices are reserved), so Python computes the exact split
and the script applies it.

Keys of one organization share a hash tag (``{org}``), so a Redis Cluster keeps them on one node.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from enum import IntEnum
from typing import Any

import orjson
import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from dizuo.billing.holds import (
    Committed,
    Hold,
    Scope,
    Settlement,
    VoucherState,
    WalletState,
    eligible,
    insufficient,
)
from dizuo.billing.split import Share, split_charge
from dizuo.limits import Permit, Subject
from dizuo.limits.shared import LIMITS_LUA, LoopScripts, admitted, giving_back, refused, taking
from dizuo.store import ordered_id
from dizuo.store.resp import blocking_client, lua

__all__ = ["STREAM", "Asking", "RedisBook", "ReserveArgs", "Reserved", "SettleArgs", "Settling", "Taking"]

log = logging.getLogger("dizuo.billing")
PREFIX = "dizuo:wallet:"
# Usage records staged until a drain commits them (dizuo.billing.staging). One stream for all
# organizations: the settle script writes it beside the organization's keys, so on a Redis Cluster
# (not supported) they would have to share a slot.
STREAM = "dizuo:journal"

# The scripts: lua/*.lua, each with its keys, arguments and replies in its header; every one starts
# with the wallet's shared functions (lua/wallet.lua), and those that take or give back rate limits
# with the limiter's (dizuo/limits/lua/limits.lua).
_SCRIPTS = {
    "reserve": LIMITS_LUA + lua("dizuo.billing", "wallet", "reserve"),
    "release": LIMITS_LUA + lua("dizuo.billing", "wallet", "release"),
    "settle": LIMITS_LUA + lua("dizuo.billing", "wallet", "settle"),
    "sync": lua("dizuo.billing", "wallet", "sync"),
}


class Reserved(IntEnum):
    """The first element of the reserve script's reply (lua/reserve.lua)."""

    UNKNOWN_WALLET = -1  # Redis does not know the organization: fill it and ask again
    SHORT = 0  # then own needed, vouchers' part, free: 402
    TAKEN = 1  # then own, each voucher's part, the limits' levels
    LIMITED = 2  # then subject index, kind, seconds to wait: 429


@dataclass(frozen=True, slots=True)
class ReserveArgs:
    """The reserve script's keys and arguments (lua/reserve.lua)."""

    org_id: str
    now: float
    expires_at: float
    hold_id: str
    amount: int
    payers: Sequence[VoucherState]  # the eligible vouchers, soonest-expiring first
    limit_keys: Sequence[str] = ()  # dizuo.limits.shared.taking's
    limit_args: Sequence[Any] = ()

    def keys(self) -> list[str]:
        return [*_keys(self.org_id), *self.limit_keys]

    def args(self) -> list[Any]:
        args: list[Any] = [self.now, self.expires_at, self.hold_id, self.amount, len(self.payers)]
        for v in self.payers:
            args += [v.id, int(v.copay * 10_000)]
        return [*args, *self.limit_args]


@dataclass(frozen=True, slots=True)
class SettleArgs:
    """The settle script's keys and arguments (lua/settle.lua)."""

    org_id: str
    hold_id: str
    own: int  # what the own balance is to pay
    own_held: int  # what the hold took from it
    pending_id: str
    expires_at: float | str  # "+inf" for a staged record: its pending charge never lapses
    vouchers: Sequence[tuple[str, int]]  # (voucher id, what it pays), the exact split
    record: bytes  # the usage record to stage; b"" when not staging
    limit_keys: Sequence[str] = ()  # dizuo.limits.shared.giving_back's
    limit_args: Sequence[Any] = ()

    def keys(self) -> list[str]:
        return [*_keys(self.org_id), STREAM, *self.limit_keys]

    def args(self) -> list[Any]:
        args: list[Any] = [
            self.hold_id,
            self.own,
            self.own_held,
            self.pending_id,
            self.expires_at,
            len(self.vouchers),
        ]
        for vid, paid in self.vouchers:
            args += [vid, paid]
        return [*args, self.record, *self.limit_args]


@dataclass(frozen=True, slots=True)
class Taking:
    """A call's rate limits, taken with its hold (:meth:`RedisBook.admit`)."""

    subjects: tuple[Subject, ...]
    tokens: int  # the estimate taken from the TPM buckets
    slot_seconds: float  # when a crashed replica's concurrency slot lapses


@dataclass(slots=True)
class Asking:
    """A hold (and rate limits) asked of Redis and not yet answered (:meth:`RedisBook.ask`)."""

    org_id: str
    amount: int
    scope: Scope
    now: float
    limits: Taking | None
    hold_id: str
    permit_id: str  # "" without limits
    payers: list[VoucherState]  # the vouchers asked to pay, in the script's order
    reply: asyncio.Future[Any]


@dataclass(frozen=True, slots=True)
class Settling:
    """A settlement sent to Redis and not yet answered (:meth:`RedisBook.settling`)."""

    org_id: str
    cost: int
    vouchers: tuple[tuple[str, int], ...]  # the exact split's voucher parts, in the script's order
    pending_id: str
    reply: asyncio.Future[Any]
    hold_id: str
    permit: Permit | None  # the call's rate limits, given back by the same script


def _keys(org_id: str) -> list[str]:
    base = f"{PREFIX}{{{org_id}}}"
    return [base, base + ":holds", base + ":hold-expiry", base + ":pending", base + ":pending-expiry"]


def _fields(raw: Any) -> dict[str, int]:
    """HGETALL's flat [field, value, …] (or dict) as ints."""
    pairs = list(raw.items()) if isinstance(raw, dict) else list(zip(raw[::2], raw[1::2], strict=True))
    return {_text(k): int(v) for k, v in pairs}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisBook:
    """Wallet holds in Redis, shared by every replica. See the module's docstring for the scheme."""

    wants_snapshots = True

    def __init__(self, url: str, hold_seconds: float, loader: Callable[[str], None]) -> None:
        """*loader(org_id)* reads the organization from the database and calls :meth:`load` (it
        runs in a thread); it fills Redis for an organization it has never seen."""
        self.url = url
        self.hold_seconds = hold_seconds
        self.loader = loader
        self._scripts = LoopScripts(url, _SCRIPTS)
        self._sync = blocking_client(url)  # for the journal's writer thread
        self._scripts_sync = {name: self._sync.register_script(src) for name, src in _SCRIPTS.items()}
        # Voucher terms (co-pay, scope, window) per organization, from the database; Redis has the money.
        self._terms: dict[str, list[VoucherState]] = {}

    # ---- connections ---------------------------------------------------------------------

    def close(self) -> None:
        self._sync.close()

    async def aclose(self) -> None:
        await self._scripts.aclose()

    # ---- the hot path ----------------------------------------------------------------------

    async def reserve(self, org_id: str, amount: int, scope: Scope, now: float) -> Hold:
        """Hold *amount* across eligible vouchers and the own balance in one script, or raise 402."""
        hold, _ = await self.admit(org_id, amount, scope, now, None)
        return hold

    async def admit(
        self, org_id: str, amount: int, scope: Scope, now: float, limits: Taking | None
    ) -> tuple[Hold, Permit | None]:
        """:meth:`reserve`, taking the call's rate *limits* (if any) in the same script: 429 (nothing
        taken) when a limit refuses, 402 (nothing taken) when the wallet does, else the hold and the
        permit (None without limits)."""
        return await self.answer(self.ask(org_id, amount, scope, now, limits))

    def ask(self, org_id: str, amount: int, scope: Scope, now: float, limits: Taking | None) -> Asking:
        """Send :meth:`admit`'s script at once, without waiting: the caller does other work while
        Redis answers, then gets the outcome from :meth:`answer` (which must be awaited)."""
        limit_keys: list[str] = []
        limit_args: list[Any] = []
        permit_id = ""
        if limits is not None:
            limit_keys, limit_args, permit_id = taking(limits.subjects, limits.tokens, limits.slot_seconds)
        payers = eligible(self._terms.get(org_id, ()), scope, now)
        hold_id = ordered_id()
        call = ReserveArgs(
            org_id, now, now + self.hold_seconds, hold_id, amount, payers, limit_keys, limit_args
        )
        reply = self._scripts.submit("reserve", call.keys(), call.args())
        return Asking(org_id, amount, scope, now, limits, hold_id, permit_id, payers, reply)

    async def answer(self, asking: Asking) -> tuple[Hold, Permit | None]:
        """The outcome of :meth:`ask`: the hold and permit, or 429 / 402 having taken nothing."""
        org_id, limits = asking.org_id, asking.limits
        try:
            result = await asking.reply
        except (asyncio.CancelledError, RedisConnectionError, RedisTimeoutError):
            # The script may have run: give back what it took (what it did not is ignored).
            slots = Permit(limits.subjects, limits.tokens, id=asking.permit_id) if limits else None
            await asyncio.shield(self._give_back(org_id, asking.hold_id, slots))
            raise
        outcome = Reserved(int(result[0]))
        if outcome is Reserved.UNKNOWN_WALLET:  # never seen (or lost): fill it, then ask again
            await self._fill(org_id)
            return await self.answer(self.ask(org_id, asking.amount, asking.scope, asking.now, limits))
        if outcome is Reserved.LIMITED:
            assert limits is not None
            raise refused(limits.subjects, result[1:])
        if outcome is Reserved.SHORT:
            own, vouchers, free = (int(x) for x in result[1:4])
            raise insufficient(asking.amount, vouchers, own, free)
        payers = asking.payers
        n = len(payers)
        parts = tuple((v.id, int(part)) for v, part in zip(payers, result[2 : 2 + n], strict=True) if part)
        hold = Hold(asking.hold_id, org_id, asking.amount, int(result[1]), parts, asking.scope)
        if limits is None:
            return hold, None
        return hold, admitted(limits.subjects, limits.tokens, asking.permit_id, result[2 + n :])

    async def _give_back(self, org_id: str, hold_id: str, permit: Permit | None) -> None:
        """Drop a hold and free a permit's slots, at once or, Redis away, once it is back (both give
        back only once however often they run)."""
        keys, args = _keys(org_id), [hold_id]
        if permit is not None:
            limit_keys, limit_args = giving_back(permit, permit.tokens)  # no correction: never more back
            keys, args = keys + limit_keys, args + limit_args
        await self._scripts.give_back("release", keys, args)

    async def _fill(self, org_id: str) -> None:
        """Push the organization's wallet from the database into Redis (an empty one if it has none:
        its first top-up will be version 1 and replace it)."""
        await asyncio.to_thread(self.loader, org_id)
        await asyncio.to_thread(self._push, org_id, 0, 0, {}, [])

    async def _fetch(self, org_id: str) -> dict[str, int]:
        redis = self._scripts.redis
        fields = _fields(await redis.execute("HGETALL", _keys(org_id)[0]))
        if "ver" not in fields:
            await self._fill(org_id)
            fields = _fields(await redis.execute("HGETALL", _keys(org_id)[0]))
        return fields

    async def release(self, hold: Hold) -> None:
        if hold.settled:
            return
        hold.settled = True
        await self._give_back(hold.org_id, hold.id, None)

    async def settle(
        self,
        hold: Hold,
        cost: int,
        stage: dict[str, Any] | None = None,
        limits: tuple[Permit, int] | None = None,
    ) -> Settlement:
        """Charge *cost* against *hold*. With *stage* (a usage record without its money columns, with
        ``created_at`` as epoch seconds), the same script appends the record to the stream the drains
        move into the database (:mod:`dizuo.billing.staging`), and its pending charge never lapses:
        the record is durable once this returns, and its money stays counted until it is committed.

        With *limits* (a permit of :class:`dizuo.limits.shared.RedisLimiter` on this Redis, and the
        tokens the call used), the same script also gives the call's rate limits back, as
        ``RedisLimiter.release`` would: one command instead of two."""
        return await self.settled(self.settling(hold, cost, stage, limits))

    def settling(
        self,
        hold: Hold,
        cost: int,
        stage: dict[str, Any] | None = None,
        limits: tuple[Permit, int] | None = None,
    ) -> Settling:
        """Send :meth:`settle`'s script at once, without waiting: :meth:`settled` (awaited, always)
        gives the settlement, and other work done in between is hidden in Redis's round trip."""
        if hold.settled:
            raise RuntimeError(f"hold {hold.id} settled twice")
        hold.settled = True
        # Vouchers revoked since the hold was taken pay nothing; the own balance pays their part.
        terms = {v.id: v for v in self._terms.get(hold.org_id, ())}
        shares = [Share(vid, terms[vid].copay, part) for vid, part in hold.vouchers if vid in terms]
        split = split_charge(cost, shares)
        pending_id = ordered_id()
        record = b"" if stage is None else orjson.dumps({**stage, "charge": cost})
        given: Permit | None = None
        limit_keys: list[str] = []
        limit_args: list[Any] = []
        if limits is not None and not limits[0].released:
            given, used = limits
            given.released = True  # a lost reply: given back once Redis is back (settled)
            limit_keys, limit_args = giving_back(given, used)
        call = SettleArgs(
            hold.org_id,
            hold.id,
            split.own,
            hold.own,
            pending_id,
            "+inf" if stage is not None else time.time() + self.hold_seconds,
            split.vouchers,
            record,
            limit_keys,
            limit_args,
        )
        reply = self._scripts.submit("settle", call.keys(), call.args())
        return Settling(hold.org_id, cost, split.vouchers, pending_id, reply, hold.id, given)

    async def settled(self, settling: Settling) -> Settlement:
        """The outcome of :meth:`settling`. Cancelled, the script runs all the same (it was sent).
        Redis away, the call fails: its hold and slots are given back once Redis is back (if the
        script did run, that finds nothing left to give back)."""
        try:
            result = await settling.reply
        except (RedisConnectionError, RedisTimeoutError):
            await asyncio.shield(self._give_back(settling.org_id, settling.hold_id, settling.permit))
            raise
        own = int(result[0])
        vouchers = tuple(
            (vid, int(pay)) for (vid, _), pay in zip(settling.vouchers, result[1:], strict=True) if pay
        )
        uncollected = settling.cost - own - sum(pay for _, pay in vouchers)
        return Settlement(settling.cost, own, vouchers, uncollected, settling.org_id, settling.pending_id)

    async def state(self, org_id: str) -> WalletState:
        seen = await self._fetch(org_id)
        vouchers = {
            v.id: replace(
                v,
                remaining=seen.get(f"r:{v.id}", 0) - seen.get(f"p:{v.id}", 0),
                held=seen.get(f"h:{v.id}", 0),
            )
            for v in self._terms.get(org_id, ())
        }
        return WalletState(org_id, seen.get("bal", 0) - seen.get("pend", 0), seen.get("held", 0), vouchers)

    # ---- the journal's writer thread -------------------------------------------------------

    def load(self, org_id: str, version: int, balance: int, vouchers: Iterable[VoucherState]) -> None:
        terms = list(vouchers)
        self._terms[org_id] = terms
        self._push(org_id, version, balance, {v.id: v.remaining for v in terms}, [])

    def _push(
        self, org_id: str, version: int, balance: int, remaining: dict[str, int], pending: list[str]
    ) -> None:
        self._scripts_sync["sync"](keys=_keys(org_id), args=_sync_args(version, balance, remaining, pending))

    def committed(self, batch: Committed) -> Future[None] | None:
        """Push each charged wallet's committed state and drop the charges from ``pend``.

        Runs on the event loop with the asyncio client when there is one: a blocking call from the
        writer thread waited for the interpreter's lock behind the loop, up to milliseconds per batch.
        Returns the scheduled work (tests wait on it), or None when it ran here.
        """
        return self._push_all(_pushes(batch))

    def committed_now(self, batch: Committed) -> None:
        """:meth:`committed`, on this thread with the blocking client (the drain's, which must know
        the charges left ``pend`` before it acknowledges their stream entries)."""
        for push in _pushes(batch):
            self._push(*push)

    def keeps_appendonly(self) -> bool | None:
        """Whether Redis keeps an append-only file, or None when it refuses to say (CONFIG disabled,
        as managed services often do)."""
        try:
            value = self._sync.config_get("appendonly").get("appendonly")
        except redis.ResponseError:
            return None
        return None if value is None else _text(value) == "yes"

    def failed(self, batch: Committed) -> Future[None] | None:
        """The charges were not written: drop them from ``pend`` so their money is free again."""
        return self._push_all([(org_id, -1, 0, {}, ids) for org_id, ids in _by_org(batch).items()])

    def _push_all(self, pushes: list[_Push]) -> Future[None] | None:
        loop = self._scripts.loop
        if loop is None or loop.is_closed() or not loop.is_running():
            for push in pushes:
                self._push(*push)
            return None

        async def run() -> None:
            script = self._scripts["sync"]
            for org_id, version, balance, remaining, pending in pushes:
                await script(keys=_keys(org_id), args=_sync_args(version, balance, remaining, pending))

        future = asyncio.run_coroutine_threadsafe(run(), loop)
        future.add_done_callback(_log_failure)
        return future

    def held_by_org(self) -> dict[str, int]:
        orgs = list(self._terms)
        if not orgs:
            return {}
        with self._sync.pipeline(transaction=False) as pipe:
            for org_id in orgs:
                pipe.hget(_keys(org_id)[0], "held")
            values = pipe.execute()
        return {org_id: int(value or 0) for org_id, value in zip(orgs, values, strict=True)}


def _sync_args(version: int, balance: int, remaining: dict[str, int], pending: list[str]) -> list[Any]:
    """The sync script's arguments: the state (version, balance, each voucher's remaining), then the
    pending charges to drop."""
    args: list[Any] = [version, balance, len(remaining)]
    for vid, left in remaining.items():
        args += [vid, left]
    return args + pending


_Push = tuple[str, int, int, dict[str, int], list[str]]


def _pushes(batch: Committed) -> list[_Push]:
    """Per charged organization: its committed state (version -1: none read) and the charges that
    leave ``pend``."""
    pushes: list[_Push] = []
    for org_id, ids in _by_org(batch).items():
        snap = batch.snapshots.get(org_id)
        if snap is None:
            pushes.append((org_id, -1, 0, {}, ids))
        else:
            pushes.append((org_id, snap.version, snap.balance, snap.vouchers, ids))
    return pushes


def _by_org(batch: Committed) -> dict[str, list[str]]:
    pending: dict[str, list[str]] = {}
    for settlement in batch.settlements:
        pending.setdefault(settlement.org_id, []).append(settlement.id)
    return pending


def _log_failure(future: Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        # Their pending charges lapse after hold_seconds; until then less money is spendable.
        log.error("pushing committed charges to Redis failed", exc_info=future.exception())
