"""Holds on the hot path: reserve the worst case before forwarding, settle the true cost after.

The in-process backend keeps every organization's money in memory (loaded from the database, kept
fresh by the journal's writer thread) so that a call waits on no database round trip (DESIGN §3.5).
All changes happen under one lock, so a wallet never goes below zero however many calls race.
Holds live only in memory: a crashed process takes its holds with it, which releases them.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from dizuo.billing.money import format_cny
from dizuo.billing.split import Share, split_charge
from dizuo.errors import InsufficientQuota

__all__ = ["Hold", "Scope", "Settlement", "VoucherState", "WalletBook", "WalletState"]


@dataclass(frozen=True, slots=True)
class Scope:
    """What a charge is for: vouchers may be limited to some providers, regions and models."""

    provider: str
    region: str
    model: str


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

    def covers(self, scope: Scope, now: float) -> bool:
        return (
            self.valid_from <= now < self.valid_to
            and (self.providers is None or scope.provider in self.providers)
            and (self.regions is None or scope.region in self.regions)
            and (self.models is None or scope.model in self.models)
        )


@dataclass(slots=True)
class WalletState:
    org_id: str
    balance: int = 0
    held: int = 0
    vouchers: dict[str, VoucherState] = field(default_factory=dict)

    def ordered_vouchers(self) -> list[VoucherState]:
        return sorted(self.vouchers.values(), key=lambda v: (v.valid_to, v.id))


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

    @property
    def voucher_total(self) -> int:
        return sum(amount for _, amount in self.vouchers)


class WalletBook:
    """Every organization's money in memory, changed only under :attr:`lock`."""

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

    def reserve(self, org_id: str, amount: int, scope: Scope, now: float) -> Hold:
        """Hold *amount* micro-yuan across eligible vouchers and the own balance, or raise 402."""
        with self.lock:
            wallet = self._wallet(org_id)
            eligible = [v for v in wallet.ordered_vouchers() if v.covers(scope, now)]
            split = split_charge(amount, [Share(v.id, v.copay, v.remaining - v.held) for v in eligible])
            free = wallet.balance - wallet.held
            if split.own > free:
                raise InsufficientQuota(
                    needed=format_cny(amount),
                    vouchers=format_cny(split.voucher_total),
                    available=format_cny(max(free, 0)),
                    missing=format_cny(split.own - max(free, 0)),
                )
            for voucher_id, part in split.vouchers:
                wallet.vouchers[voucher_id].held += part
            wallet.held += split.own
            return Hold(uuid.uuid4().hex, org_id, amount, split.own, split.vouchers, scope)

    def release(self, hold: Hold) -> None:
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

    def settle(self, hold: Hold, cost: int) -> Settlement:
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
            return Settlement(cost, own, split.vouchers, uncollected)

    # ---- loading and refreshing (called from the journal's writer thread) ----------------

    def committed(self, org_deltas: dict[str, int], voucher_deltas: dict[str, int]) -> None:
        """Forget pending deltas once the journal made them durable."""
        with self.lock:
            for org_id, delta in org_deltas.items():
                self.pending_balance[org_id] = self.pending_balance.get(org_id, 0) - delta
            for voucher_id, delta in voucher_deltas.items():
                self.pending_vouchers[voucher_id] = self.pending_vouchers.get(voucher_id, 0) - delta

    def load(self, org_id: str, balance: int, vouchers: Iterable[VoucherState]) -> None:
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
