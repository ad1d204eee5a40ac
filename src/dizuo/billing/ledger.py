"""The append-only, double-entry ledger: every transaction's legs add up to zero.

Accounts are strings: ``org:<id>:cash`` (an organization's own money), ``voucher:<id>`` (what a
voucher has left), ``issuer:<name>`` (what an issuer granted, negative), ``funding`` (money paid in
from outside), ``revenue:<provider>`` (what calls to a provider earned).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from dizuo.billing.tables import LedgerEntry
from dizuo.store import ordered_id, utcnow

__all__ = ["FUNDING", "Leg", "cash", "charge_legs", "issuer", "new_tx_id", "post", "revenue", "voucher"]

FUNDING = "funding"


def cash(org_id: str) -> str:
    return f"org:{org_id}:cash"


def voucher(voucher_id: str) -> str:
    return f"voucher:{voucher_id}"


def issuer(name: str) -> str:
    return f"issuer:{name}"


def revenue(provider: str) -> str:
    return f"revenue:{provider}"


def new_tx_id() -> str:
    return f"tx_{ordered_id()}"


@dataclass(frozen=True, slots=True)
class Leg:
    account: str
    amount: int
    org_id: str | None = None
    voucher_id: str | None = None


def charge_legs(
    org_id: str, own: int, vouchers: Sequence[tuple[str, int]], provider: str, earned: int
) -> list[Leg]:
    """A charge's legs: the organization's own money and each voucher's part out, what the provider
    *earned* in."""
    legs = [Leg(cash(org_id), -own, org_id=org_id)]
    legs += [
        Leg(voucher(voucher_id), -paid, org_id=org_id, voucher_id=voucher_id) for voucher_id, paid in vouchers
    ]
    legs.append(Leg(revenue(provider), earned, org_id=org_id))
    return legs


def post(
    session: Session,
    kind: str,
    legs: Sequence[Leg],
    *,
    tx_id: str | None = None,
    request_id: str | None = None,
    note: str | None = None,
    at: dt.datetime | None = None,
) -> str:
    """Append one balanced transaction (at *at*, default now); return its id. Zero legs are left out."""
    if sum(leg.amount for leg in legs) != 0:
        raise ValueError(f"unbalanced {kind} transaction: {legs}")
    tx_id = tx_id or new_tx_id()
    now = at or utcnow()
    session.add_all(
        LedgerEntry(
            tx_id=tx_id,
            kind=kind,
            account=leg.account,
            amount=leg.amount,
            org_id=leg.org_id,
            voucher_id=leg.voucher_id,
            request_id=request_id,
            note=note,
            created_at=now,
        )
        for leg in legs
        if leg.amount != 0
    )
    return tx_id
