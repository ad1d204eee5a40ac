"""Standing holds: money held for work that outlives a process (a compute job runs for hours, through
restarts), kept in the database instead of in a worker's memory.

A call's hold lives in memory (or Redis) and lapses with its process; a compute job's hold must not.
Opening one takes the worst case through the wallet book first, as a call does (so it races fairly with
calls in flight, and a wallet that cannot cover it gets the same 402 naming what is missing), then
writes it durably: ``wallets.standing`` and ``vouchers.standing`` grow by its parts, in the transaction
that records the work. Every worker loads what calls may spend as ``balance − standing`` (and
``remaining − standing`` per voucher), so the money stays held on every replica and after any restart.
Only then is the book's own hold let go.

Closing one charges the true cost against the held parts, in one transaction: the held parts leave
``standing``, the charge leaves the balance and the vouchers (split as a call's charge is: vouchers in
the order they were held, each paying its share), one balanced ledger transaction and one usage record
are written, and the hourly rollups get their sums. The caller's ``settle`` marks the work settled in
the same transaction, guarded so that it happens exactly once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from dizuo.billing import ledger, rollups
from dizuo.billing.holds import Scope
from dizuo.billing.meter import Meter
from dizuo.billing.service import bump
from dizuo.billing.split import Share, split_charge
from dizuo.billing.tables import UsageRecord, Voucher, Wallet
from dizuo.store import Database, stamper, utcnow

__all__ = ["Held", "Outcome", "close", "open_hold", "shrink"]


@dataclass(frozen=True, slots=True)
class Held:
    """A standing hold's parts, as the work's record keeps them."""

    amount: int
    own: int
    vouchers: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What closing a standing hold charged."""

    cost: int
    own: int
    vouchers: tuple[tuple[str, int], ...]
    uncollected: int

    @property
    def voucher_total(self) -> int:
        return sum(paid for _, paid in self.vouchers)


async def open_hold(
    meter: Meter,
    db: Database,
    org_id: str,
    amount: int,
    scope: Scope,
    record: Callable[[Session, Held], None],
) -> Held:
    """Hold *amount* for *org_id* durably and write the work's *record* in the same transaction;
    raise 402 (nothing written) when the wallet cannot cover it."""
    if not meter.enabled or amount == 0:
        held = Held(0, 0, ())
        with db.session() as session:
            record(session, held)
        return held
    hold = await meter.hold(org_id, amount, scope)
    try:
        held = Held(hold.amount, hold.own, tuple(hold.vouchers))
        await asyncio.to_thread(_write_hold, db, org_id, held, record)
        # Every worker now loads the money as held; this one at once, before its own hold goes.
        await asyncio.to_thread(meter.journal.refresh, org_id)
    finally:
        await meter.release(hold)
    return held


def _write_hold(db: Database, org_id: str, held: Held, record: Callable[[Session, Held], None]) -> None:
    with db.session() as session:
        bump(session, org_id)  # locks the wallet (made if new) and moves its version
        session.execute(
            update(Wallet).where(Wallet.org_id == org_id).values(standing=Wallet.standing + held.own)
        )
        for voucher_id, part in sorted(held.vouchers):
            session.execute(
                update(Voucher).where(Voucher.id == voucher_id).values(standing=Voucher.standing + part)
            )
        record(session, held)


def close(
    session: Session,
    *,
    org_id: str,
    held: Held,
    cost: int,
    usage: dict[str, Any],
    provider: str,
    at: dt.datetime | None = None,
) -> Outcome:
    """Charge *cost* (at most what was held) against *held* in *session*'s transaction, give the rest
    back, and write the ledger transaction, the *usage* record (its columns but the money's) and the
    rollups' sums. The caller commits, with its own record marked settled."""
    at = at or utcnow()
    cost = max(0, min(cost, held.amount)) if held.amount else 0
    bump(session, org_id)  # the wallet's row lock: charges of one organization go one at a time
    wallet = session.get(Wallet, org_id, populate_existing=True)
    assert wallet is not None
    shares: list[Share] = []
    for voucher_id, part in held.vouchers:
        voucher = session.get(Voucher, voucher_id, with_for_update=True, populate_existing=True)
        if voucher is not None and voucher.revoked_at is None:
            shares.append(Share(voucher_id, voucher.copay, min(part, max(voucher.remaining, 0))))
    split = split_charge(cost, shares)
    own, uncollected = split.own, 0
    if own > held.own:  # a voucher revoked meanwhile pays nothing: the rest comes from free balance
        free = max(wallet.balance - (wallet.standing - held.own), 0)
        extra = min(own - held.own, free)
        uncollected = own - held.own - extra
        own = held.own + extra
    session.execute(
        update(Wallet)
        .where(Wallet.org_id == org_id)
        .values(balance=Wallet.balance - own, standing=Wallet.standing - held.own)
    )
    paid = dict(split.vouchers)
    for voucher_id, part in sorted(held.vouchers):
        session.execute(
            update(Voucher)
            .where(Voucher.id == voucher_id)
            .values(remaining=Voucher.remaining - paid.get(voucher_id, 0), standing=Voucher.standing - part)
        )
    outcome = Outcome(cost, own, split.vouchers, uncollected)
    _record(session, org_id, outcome, usage, provider, at)
    return outcome


def _record(
    session: Session, org_id: str, outcome: Outcome, usage: dict[str, Any], provider: str, at: dt.datetime
) -> None:
    """The charge's ledger transaction, usage record and rollup sums, as the journal writes a call's."""
    earned = outcome.cost - outcome.uncollected
    legs = ledger.charge_legs(org_id, outcome.own, outcome.vouchers, provider, earned)
    ledger.post(session, "charge", legs, request_id=usage["request_id"], at=at)
    row = {
        **usage,
        "org_id": org_id,
        "provider": provider,
        "cost": outcome.cost,
        "voucher_part": outcome.voucher_total,
        "own_part": outcome.own,
        "uncollected": outcome.uncollected,
        "created_at": at,
    }
    session.add(UsageRecord(**row))
    sums = rollups.Sums()
    sums.charge(rollups.hour_of(at), row, outcome.vouchers)
    session.flush()
    connection = session.connection()
    cursor = connection.connection.cursor()
    try:
        rollups.upsert(cursor, connection.dialect.paramstyle, sums, stamper(connection.dialect))
    finally:
        cursor.close()


def parts(vouchers: Sequence[Sequence[Any]]) -> tuple[tuple[str, int], ...]:
    """A record's ``[[voucher id, amount], …]`` as a hold's parts."""
    return tuple((str(voucher_id), int(amount)) for voucher_id, amount in vouchers)


def shrink(session: Session, org_id: str, held: Held, amount: int) -> Held:
    """Give back *amount* of a standing hold (at most all of it) without charging anything, in
    *session*'s transaction: vouchers' parts first, the last held first, then the balance's. Returns
    what stays held. The caller refreshes the wallet's workers (``journal.refresh``) after the commit."""
    amount = max(0, min(amount, held.amount))
    if not amount:
        return held
    bump(session, org_id)
    left = amount
    vouchers = list(held.vouchers)
    for index in range(len(vouchers) - 1, -1, -1):
        voucher_id, part = vouchers[index]
        take = min(part, left)
        if take:
            session.execute(
                update(Voucher).where(Voucher.id == voucher_id).values(standing=Voucher.standing - take)
            )
            vouchers[index] = (voucher_id, part - take)
            left -= take
    own = min(held.own, left)
    if own:
        session.execute(update(Wallet).where(Wallet.org_id == org_id).values(standing=Wallet.standing - own))
    return Held(held.amount - amount, held.own - own, tuple((v, p) for v, p in vouchers if p))
