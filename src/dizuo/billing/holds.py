"""Holds on the hot path: reserve the worst case before forwarding, settle the true cost after.

The in-process backend keeps every organization's money in memory (loaded from the database, kept
fresh by the journal's writer thread) so that a call waits on no database round trip (DESIGN §3.5).
All changes happen under one lock, so a wallet never goes below zero however many calls race.
Holds live only in memory: a crashed process takes its holds with it, which releases them.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Protocol

from dizuo.billing.money import format_cny
from dizuo.billing.split import Share, split_charge
from dizuo.errors import InsufficientQuota
from dizuo.store import ordered_id

__all__ = [
    "Book",
    "Committed",
    "Hold",
    "Scope",
    "Settlement",
    "Snapshot",
    "VoucherState",
    "WalletBook",
    "WalletState",
    "eligible",
    "insufficient",
]


@dataclass(frozen=True, slots=True)
class Scope:
    """What a charge is for: vouchers may be limited to some providers, regions and models, or (for a
    compute job, whose provider is ``compute``) to some pools and accelerator types."""

    provider: str
    region: str
    model: str
    pool: str | None = None  # set for a compute job: the pool it runs on
    accelerator: str | None = None  # a compute job's accelerator type (None: CPUs only)


@dataclass(slots=True)
class VoucherState:
    id: str
    copay: Decimal
    remaining: int
    valid_from: float  # epoch seconds
    valid_to: float
    providers: frozenset[str] | None
    regions: frozenset[str] | None
    models: frozenset[str] | None
    held: int = 0
    pools: frozenset[str] | None = None
    accelerators: frozenset[str] | None = None

    def covers(self, scope: Scope, now: float) -> bool:
        if not (
            self.valid_from <= now < self.valid_to
            and (self.providers is None or scope.provider in self.providers)
            and (self.regions is None or scope.region in self.regions)
        ):
            return False
        if scope.pool is None:  # a model call: not a voucher for compute only
            return (self.models is None or scope.model in self.models) and (
                self.pools is None and self.accelerators is None
            )
        return (  # a compute job: not a voucher for models only
            self.models is None
            and (self.pools is None or scope.pool in self.pools)
            and (self.accelerators is None or scope.accelerator in self.accelerators)
        )


@dataclass(slots=True)
class WalletState:
    org_id: str
    balance: int = 0
    held: int = 0
    vouchers: dict[str, VoucherState] = field(default_factory=dict)


def eligible(vouchers: Iterable[VoucherState], scope: Scope, now: float) -> list[VoucherState]:
    """The vouchers that may pay for a charge in *scope*, in the order they pay: soonest expiry first."""
    if not vouchers:
        return []
    return sorted((v for v in vouchers if v.covers(scope, now)), key=lambda v: (v.valid_to, v.id))


def insufficient(amount: int, vouchers: int, own: int, free: int) -> InsufficientQuota:
    """The 402 for a hold of *amount* whose own part *own* exceeds the *free* balance."""
    free = max(free, 0)
    return InsufficientQuota(
        needed=format_cny(amount),
        vouchers=format_cny(vouchers),
        available=format_cny(free),
        missing=format_cny(own - free),
    )


@dataclass(slots=True)
class Hold:
    id: str
    org_id: str
    amount: int
    own: int
    vouchers: tuple[tuple[str, int], ...]
    scope: Scope
    settled: bool = False


@dataclass(frozen=True, slots=True)
class Settlement:
    cost: int
    own: int
    vouchers: tuple[tuple[str, int], ...]
    uncollected: int  # cost the wallet could not pay (the hold underestimated and the balance is empty)
    org_id: str = ""
    id: str = ""  # names the charge while it waits for the journal (the shared book tracks it by this)

    @property
    def voucher_total(self) -> int:
        return sum(amount for _, amount in self.vouchers)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """An organization's committed money as one database transaction saw it."""

    version: int
    balance: int
    vouchers: dict[str, int]  # voucher id -> remaining


@dataclass(slots=True)
class Committed:
    """What one journal commit made durable, handed to the book by the writer thread."""

    settlements: list[Settlement]
    org_deltas: dict[str, int]
    voucher_deltas: dict[str, int]
    snapshots: dict[str, Snapshot] = field(default_factory=dict)  # filled when the book wants them


class Book(Protocol):
    """Where holds live: in this process (:class:`WalletBook`) or shared by replicas in Redis
    (:class:`dizuo.billing.shared.RedisBook`). The hot-path methods run on the event loop; ``load``,
    ``committed``, ``failed`` and ``held_by_org`` run on the journal's writer thread."""

    wants_snapshots: bool

    async def reserve(self, org_id: str, amount: int, scope: Scope, now: float) -> Hold: ...

    async def release(self, hold: Hold) -> None: ...

    async def settle(self, hold: Hold, cost: int) -> Settlement: ...

    async def state(self, org_id: str) -> WalletState: ...

    def load(self, org_id: str, version: int, balance: int, vouchers: Iterable[VoucherState]) -> None: ...

    def committed(self, batch: Committed) -> Future[None] | None: ...

    def failed(self, batch: Committed) -> Future[None] | None: ...

    def held_by_org(self) -> dict[str, int]: ...

    def close(self) -> None: ...

    async def aclose(self) -> None: ...


class WalletBook:
    """Every organization's money in memory, changed only under :attr:`lock`.

    The hot-path methods never await, so each runs whole on the event loop; the lock guards against
    the journal's writer thread.
    """

    wants_snapshots = False

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.wallets: dict[str, WalletState] = {}
        # Deltas applied in memory whose journal entries are not committed yet (see Journal).
        self.pending_balance: dict[str, int] = {}
        self.pending_vouchers: dict[str, int] = {}

    def _wallet(self, org_id: str) -> WalletState:
        wallet = self.wallets.get(org_id)
        if wallet is None:
            wallet = self.wallets[org_id] = WalletState(org_id)
        return wallet

    async def reserve(self, org_id: str, amount: int, scope: Scope, now: float) -> Hold:
        """Hold *amount* micro-yuan across eligible vouchers and the own balance, or raise 402."""
        with self.lock:
            wallet = self._wallet(org_id)
            payers = eligible(wallet.vouchers.values(), scope, now)
            split = split_charge(amount, [Share(v.id, v.copay, v.remaining - v.held) for v in payers])
            free = wallet.balance - wallet.held
            if split.own > free:
                raise insufficient(amount, split.voucher_total, split.own, free)
            for voucher_id, part in split.vouchers:
                wallet.vouchers[voucher_id].held += part
            wallet.held += split.own
            return Hold(ordered_id(), org_id, amount, split.own, split.vouchers, scope)

    async def release(self, hold: Hold) -> None:
        """Give a hold back untouched (the call failed and costs nothing)."""
        with self.lock:
            if hold.settled:
                return
            hold.settled = True
            self._unhold(hold)

    def _unhold(self, hold: Hold) -> WalletState:
        wallet = self._wallet(hold.org_id)
        wallet.held -= hold.own
        for voucher_id, part in hold.vouchers:
            voucher = wallet.vouchers.get(voucher_id)
            if voucher is not None:
                voucher.held -= part
        return wallet

    async def settle(self, hold: Hold, cost: int) -> Settlement:
        """Charge the true *cost* against the hold and release the rest."""
        with self.lock:
            if hold.settled:
                raise RuntimeError(f"hold {hold.id} settled twice")
            hold.settled = True
            wallet = self._unhold(hold)
            # The hold's own slices are what this call may spend; vouchers revoked meanwhile pay nothing.
            shares = []
            for voucher_id, part in hold.vouchers:
                voucher = wallet.vouchers.get(voucher_id)
                if voucher is not None:
                    shares.append(Share(voucher_id, voucher.copay, min(part, voucher.remaining)))
            split = split_charge(cost, shares)
            own = split.own
            uncollected = 0
            if own > hold.own:  # the worst case was underestimated: take the excess from free money
                extra = min(own - hold.own, max(wallet.balance - wallet.held - hold.own, 0))
                uncollected = own - hold.own - extra
                own = hold.own + extra
            for voucher_id, paid in split.vouchers:
                wallet.vouchers[voucher_id].remaining -= paid
                self.pending_vouchers[voucher_id] = self.pending_vouchers.get(voucher_id, 0) - paid
            wallet.balance -= own
            self.pending_balance[hold.org_id] = self.pending_balance.get(hold.org_id, 0) - own
            return Settlement(cost, own, split.vouchers, uncollected, hold.org_id, hold.id)

    async def state(self, org_id: str) -> WalletState:
        """A copy of the organization's live money: balance net of charges, holds, vouchers."""
        with self.lock:
            wallet = self._wallet(org_id)
            vouchers = {vid: replace(v) for vid, v in wallet.vouchers.items()}
            return WalletState(org_id, wallet.balance, wallet.held, vouchers)

    # ---- loading and refreshing (called from the journal's writer thread) ----------------

    def committed(self, batch: Committed) -> None:
        """Forget pending deltas once the journal made them durable (at once: returns no future)."""
        with self.lock:
            for org_id, delta in batch.org_deltas.items():
                self.pending_balance[org_id] = self.pending_balance.get(org_id, 0) - delta
            for voucher_id, delta in batch.voucher_deltas.items():
                self.pending_vouchers[voucher_id] = self.pending_vouchers.get(voucher_id, 0) - delta

    def failed(self, batch: Committed) -> None:
        """Give back charges the journal could not write: the calls fail and cost nothing."""
        with self.lock:
            for org_id, delta in batch.org_deltas.items():
                self.pending_balance[org_id] = self.pending_balance.get(org_id, 0) - delta
                self._wallet(org_id).balance -= delta
            for voucher_id, delta in batch.voucher_deltas.items():
                self.pending_vouchers[voucher_id] = self.pending_vouchers.get(voucher_id, 0) - delta
                for wallet in self.wallets.values():
                    if voucher_id in wallet.vouchers:
                        wallet.vouchers[voucher_id].remaining -= delta

    def close(self) -> None:
        pass

    async def aclose(self) -> None:
        pass

    def load(self, org_id: str, version: int, balance: int, vouchers: Iterable[VoucherState]) -> None:
        """Replace an organization's committed money with the database's, keeping holds and pending deltas."""
        with self.lock:
            wallet = self._wallet(org_id)
            wallet.balance = balance + self.pending_balance.get(org_id, 0)
            fresh: dict[str, VoucherState] = {}
            for voucher in vouchers:
                old = wallet.vouchers.get(voucher.id)
                voucher.held = old.held if old else 0
                voucher.remaining += self.pending_vouchers.get(voucher.id, 0)
                fresh[voucher.id] = voucher
            wallet.vouchers = fresh

    def held_by_org(self) -> dict[str, int]:
        """Return the money held per organization (own part), for views."""
        with self.lock:
            return {org_id: wallet.held for org_id, wallet in self.wallets.items()}


def epoch(moment: dt.datetime) -> float:
    """Return *moment* (naive means UTC) as epoch seconds."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()
