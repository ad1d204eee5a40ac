"""Splitting a charge between an organization's vouchers (算力券) and its own balance.

Rule (docs/billing.md): eligible vouchers are taken soonest-expiring first. A voucher with co-pay
ratio *r* pays *r* of the part of the charge it covers. If it has enough left, it covers the whole
remaining charge and pays ``round(r × remaining)``; if not, it pays all it has left, which covers
``left / r`` of the charge, and the next voucher covers what remains. The organization's own
balance pays everything the vouchers do not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from dizuo.billing.money import round_micro

__all__ = ["Share", "Split", "split_charge"]


@dataclass(frozen=True, slots=True)
class Share:
    """A voucher's slice of money: what it can give (``available``) at co-pay ratio ``copay``."""

    voucher_id: str
    copay: Decimal
    available: int


@dataclass(frozen=True, slots=True)
class Split:
    vouchers: tuple[tuple[str, int], ...]  # (voucher id, micro-yuan paid), in the order used
    own: int

    @property
    def voucher_total(self) -> int:
        return sum(amount for _, amount in self.vouchers)

    @property
    def total(self) -> int:
        return self.own + self.voucher_total


def split_charge(amount: int, shares: Sequence[Share]) -> Split:
    """Split *amount* (micro-yuan) over *shares*, already in the order to use them (soonest expiry first)."""
    if amount < 0:
        raise ValueError("a charge cannot be negative")
    if not shares:  # no voucher may pay (most calls): the balance pays it all
        return Split((), amount)
    remaining = Decimal(amount)  # the part of the charge not yet covered by a voucher
    paid: list[tuple[str, int]] = []
    for share in shares:
        if remaining <= 0:
            break
        if share.available <= 0 or share.copay <= 0:
            continue
        wanted = round_micro(remaining * share.copay)
        if wanted <= share.available:
            if wanted > 0:
                paid.append((share.voucher_id, wanted))
            remaining = Decimal(0)
        else:
            paid.append((share.voucher_id, share.available))
            remaining -= Decimal(share.available) / share.copay
    voucher_total = sum(amount_ for _, amount_ in paid)
    return Split(tuple(paid), amount - voucher_total)
