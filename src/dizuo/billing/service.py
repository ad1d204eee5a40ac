"""Admin operations on money: top-ups, vouchers, wallet views. Shared by the CLI and the admin API.

Each operation is one database transaction that writes the ledger and bumps the wallet's version,
so every gateway worker reloads the organization's money within a second.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dizuo.accounts.members import Actor, who
from dizuo.accounts.service import org_by_name
from dizuo.accounts.tables import Organization
from dizuo.billing import ledger
from dizuo.billing.idempotency import Idempotent, check_key
from dizuo.billing.money import format_cny
from dizuo.billing.tables import LedgerEntry, Voucher, Wallet
from dizuo.errors import invalid_param
from dizuo.store import Database, utc, utcnow
from dizuo.store.audit import append

__all__ = [
    "VoucherTerms",
    "get_voucher",
    "issue_voucher",
    "issuer_vouchers",
    "issuers",
    "parse_voucher_share",
    "revoke_voucher",
    "topup",
    "topup_history",
    "wallet_view",
]


def _wallet(session: Session, org_id: str) -> Wallet:
    wallet = session.get(Wallet, org_id, with_for_update=True)
    if wallet is None:
        # The organization's first money: two first top-ups at once would both add the wallet, and one
        # would fail. One adds it; the other waits for that commit, adds nothing and locks the row.
        insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
        row = {"org_id": org_id, "balance": 0, "held": 0, "version": 0, "updated_at": utcnow()}
        session.execute(insert(Wallet).values(row).on_conflict_do_nothing())
        wallet = session.get(Wallet, org_id, with_for_update=True, populate_existing=True)
        assert wallet is not None
    return wallet


def bump(session: Session, org_id: str, balance_delta: int = 0) -> None:
    """Apply *balance_delta* to the wallet and bump its version (creating the wallet if needed)."""
    wallet = _wallet(session, org_id)
    session.execute(
        update(Wallet)
        .where(Wallet.org_id == wallet.org_id)
        .values(balance=Wallet.balance + balance_delta, version=Wallet.version + 1, updated_at=utcnow())
    )


def topup(
    db: Database,
    org_name: str,
    amount: int,
    note: str | None = None,
    idempotency_key: str | None = None,
    by: Actor | None = None,
) -> str:
    """Add *amount* micro-yuan to the organization's own balance; return the transaction id. A retry
    under the same *idempotency_key* returns the first top-up's id and adds nothing."""
    if amount <= 0:
        raise invalid_param("amount", "金额必须大于 0", "the amount must be positive")
    key = check_key(idempotency_key)

    def once() -> str:
        with db.session() as session:
            org = org_by_name(session, org_name)
            idempotent = Idempotent("topup", org.id, key, {"amount": amount, "note": note})
            done = idempotent.replayed(session)
            if done is not None:
                return done
            tx = ledger.post(
                session,
                "topup",
                [ledger.Leg(ledger.FUNDING, -amount), ledger.Leg(ledger.cash(org.id), amount, org_id=org.id)],
                note=note,
            )
            bump(session, org.id, amount)
            idempotent.remember(session, tx)
            detail = {"amount": format_cny(amount), "tx": tx, "note": note}
            append(session, "wallet.topup", org.name, actor=who(by), org_id=org.id, detail=detail)
        return tx

    return _once(once, key)


def _once(change: Callable[[], str], key: str | None) -> str:
    """Run *change*; when a concurrent request with the same idempotency key committed first (the key's
    row collides), run it again: it then finds that request's result and changes nothing."""
    try:
        return change()
    except IntegrityError:
        if key is None:
            raise
        return change()


def parse_voucher_share(text: str, param: str = "voucher_share") -> Decimal:
    """Parse a voucher's share of each eligible charge (补贴比例): in (0, 1], at most 4 decimals.

    0.3 means the voucher pays 30 % and the organization 70 %. (It was called ``copay``, which
    finance staff read as the organization's own share, 企业自付比例: the opposite.)"""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise invalid_param(param, f"{text!r} 不是数字", f"{text!r} is not a number") from None
    if not value.is_finite() or not 0 < value <= 1 or value != value.quantize(Decimal("0.0001")):
        raise invalid_param(
            param,
            "必须在 0 到 1 之间（不含 0），最多 4 位小数",
            "must be in (0, 1] with at most 4 decimals",
        )
    return value


@dataclass(frozen=True)
class VoucherTerms:
    issuer: str
    program: str
    amount: int  # micro-yuan
    copay: Decimal
    valid_from: dt.datetime
    valid_to: dt.datetime
    providers: list[str] | None = None
    regions: list[str] | None = None
    models: list[str] | None = None
    pools: list[str] | None = None  # compute pools it pays jobs on: then it pays for compute only
    accelerators: list[str] | None = None  # accelerator types it pays jobs on (compute only)


def issue_voucher(
    db: Database,
    org_name: str,
    terms: VoucherTerms,
    idempotency_key: str | None = None,
    by: Actor | None = None,
) -> Voucher:
    """Grant a voucher to an organization under an issuer's program. A retry under the same
    *idempotency_key* returns the first voucher and grants nothing."""
    if terms.amount <= 0:
        raise invalid_param("amount", "面额必须大于 0", "the face value must be positive")
    if not terms.issuer.strip() or not terms.program.strip():
        raise invalid_param("issuer", "发放方和项目名称不能为空", "issuer and program must not be empty")
    # In UTC from here on: a naive time is taken as UTC, and SQLite would drop any other offset.
    valid_from, valid_to = utc(terms.valid_from), utc(terms.valid_to)
    if valid_to <= valid_from:
        raise invalid_param("valid_to", "有效期结束必须晚于开始", "valid_to must be after valid_from")
    if valid_to <= utcnow():
        raise invalid_param("valid_to", "有效期已结束", "the validity window has already ended")
    key = check_key(idempotency_key)
    made = _once(lambda: _grant(db, org_name, terms, valid_from, valid_to, key, who(by)), key)
    return get_voucher(db, made)


def _grant(
    db: Database,
    org_name: str,
    terms: VoucherTerms,
    valid_from: dt.datetime,
    valid_to: dt.datetime,
    key: str | None,
    actor: str,
) -> str:
    with db.session() as session:
        org = org_by_name(session, org_name)
        idempotent = Idempotent("voucher", org.id, key, dataclasses.asdict(terms))
        done = idempotent.replayed(session)
        if done is not None:
            return done
        voucher = Voucher(
            id=uuid.uuid4().hex,
            org_id=org.id,
            issuer=terms.issuer,
            program=terms.program,
            face=terms.amount,
            remaining=terms.amount,
            copay=terms.copay,
            providers=terms.providers,
            regions=terms.regions,
            models=terms.models,
            pools=terms.pools,
            accelerators=terms.accelerators,
            valid_from=valid_from,
            valid_to=valid_to,
            created_at=utcnow(),
        )
        session.add(voucher)
        ledger.post(
            session,
            "voucher_grant",
            [
                ledger.Leg(ledger.issuer(terms.issuer), -terms.amount),
                ledger.Leg(ledger.voucher(voucher.id), terms.amount, org_id=org.id, voucher_id=voucher.id),
            ],
            note=terms.program,
        )
        bump(session, org.id)
        idempotent.remember(session, voucher.id)
        detail = {"issuer": terms.issuer, "program": terms.program, "amount": format_cny(terms.amount)}
        append(session, "voucher.issue", voucher.id, actor=actor, org_id=org.id, detail=detail)
        return voucher.id


def get_voucher(db: Database, voucher_id: str) -> Voucher:
    """Return the voucher *voucher_id*, or raise 400."""
    with db.session() as session:
        voucher = session.get(Voucher, voucher_id)
    if voucher is None:
        raise invalid_param("voucher", "没有这张算力券", "no such voucher")
    return voucher


def issuers(db: Database) -> list[str]:
    """Return the names of every issuer that granted a voucher."""
    with db.session() as session:
        return sorted(session.scalars(select(Voucher.issuer).distinct()))


def revoke_voucher(db: Database, voucher_id: str, by: Actor | None = None) -> int:
    """Revoke a voucher's unspent rest back to its issuer; return the amount taken back."""
    with db.session() as session:
        voucher = session.get(Voucher, voucher_id, with_for_update=True)
        if voucher is None:
            raise invalid_param("voucher", "没有这张算力券", "no such voucher")
        if voucher.revoked_at is not None:
            raise invalid_param("voucher", "这张算力券已被收回", "the voucher is already revoked")
        rest = voucher.remaining
        voucher.remaining = 0
        voucher.revoked_at = utcnow()
        ledger.post(
            session,
            "voucher_revoke",
            [
                ledger.Leg(ledger.voucher(voucher.id), -rest, org_id=voucher.org_id, voucher_id=voucher.id),
                ledger.Leg(ledger.issuer(voucher.issuer), rest),
            ],
        )
        bump(session, voucher.org_id)
        detail = {"issuer": voucher.issuer, "returned": format_cny(rest)}
        append(session, "voucher.revoke", voucher.id, actor=who(by), org_id=voucher.org_id, detail=detail)
    return rest


def wallet_view(db: Database, org_name: str) -> dict[str, Any]:
    """Return the organization's balance and vouchers as decimal strings (CLI ``wallet --json``)."""
    with db.session() as session:
        org = org_by_name(session, org_name)
        wallet = session.get(Wallet, org.id)
        vouchers = session.scalars(
            select(Voucher).where(Voucher.org_id == org.id).order_by(Voucher.valid_to, Voucher.created_at)
        ).all()
        now = utcnow()
        return {
            "org": org.name,
            "balance": format_cny(wallet.balance if wallet else 0),
            "held": format_cny(wallet.held if wallet else 0),
            # Held for compute jobs until they end (durable: calls may spend balance less this).
            "held_by_jobs": format_cny(wallet.standing if wallet else 0),
            "vouchers": [_voucher(v, now) for v in vouchers],
        }


def _voucher(v: Voucher, now: dt.datetime) -> dict[str, Any]:
    return {
        "id": v.id,
        "issuer": v.issuer,
        "program": v.program,
        "face": format_cny(v.face),
        "remaining": format_cny(v.remaining),
        "held_by_jobs": format_cny(v.standing),
        "voucher_share": str(v.copay),
        "copay": str(v.copay),  # the deprecated name of voucher_share
        "providers": v.providers,
        "regions": v.regions,
        "models": v.models,
        "pools": v.pools,
        "accelerators": v.accelerators,
        "valid_from": _iso(v.valid_from),
        "valid_to": _iso(v.valid_to),
        "state": _state(v, now),
    }


def topup_history(db: Database, org_name: str, limit: int = 200) -> list[dict[str, Any]]:
    """Return the organization's top-ups, newest first: time, amount (CNY string), note."""
    with db.session() as session:
        org = org_by_name(session, org_name)
        query = (
            select(LedgerEntry)
            .where(LedgerEntry.account == ledger.cash(org.id), LedgerEntry.kind == "topup")
            .order_by(LedgerEntry.created_at.desc(), LedgerEntry.id.desc())
            .limit(limit)
        )
        return [
            {
                "created_at": _iso(e.created_at),
                "amount": format_cny(e.amount),
                "note": e.note,
                "tx_id": e.tx_id,
            }
            for e in session.scalars(query)
        ]


def issuer_vouchers(db: Database, issuer: str) -> list[dict[str, Any]]:
    """Return every voucher *issuer* granted, with its organization's name, soonest expiry first."""
    with db.session() as session:
        rows = session.execute(
            select(Voucher, Organization.name)
            .join(Organization, Organization.id == Voucher.org_id)
            .where(Voucher.issuer == issuer)
            .order_by(Voucher.valid_to, Voucher.created_at)
        ).all()
        now = utcnow()
        return [{**_voucher(v, now), "org": name} for v, name in rows]


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _iso(moment: dt.datetime) -> str:
    return _aware(moment).isoformat()


def _state(voucher: Voucher, now: dt.datetime) -> str:
    if voucher.revoked_at is not None:
        return "revoked"
    if utc(voucher.valid_to) <= now:
        return "expired"
    if utc(voucher.valid_from) > now:
        return "not_yet_valid"
    return "exhausted" if voucher.remaining <= 0 else "active"
