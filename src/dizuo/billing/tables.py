"""Tables of money: wallets, vouchers, the double-entry ledger, and one usage record per call."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from dizuo.store import Base, utcnow

__all__ = ["FailedCall", "IdempotencyKey", "LedgerEntry", "UsageRecord", "Voucher", "Wallet"]


class Wallet(Base):
    """An organization's own money. ``balance`` caches the sum of its cash account in the ledger."""

    __tablename__ = "wallets"

    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), primary_key=True)
    balance: Mapped[int] = mapped_column(BigInteger, default=0)  # micro-yuan
    # Held by calls in flight, as last reported by the gateway workers (for views, not for checks).
    held: Mapped[int] = mapped_column(BigInteger, default=0)
    # Bumped on every change so that each worker reloads only the wallets that changed.
    version: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Voucher(Base):
    """A compute voucher (算力券): a credit lot issued under a program to one organization."""

    __tablename__ = "vouchers"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), index=True)
    issuer: Mapped[str] = mapped_column(String(128), index=True)
    program: Mapped[str] = mapped_column(String(256))
    face: Mapped[int] = mapped_column(BigInteger)  # micro-yuan
    remaining: Mapped[int] = mapped_column(BigInteger)
    copay: Mapped[Decimal] = mapped_column(Numeric(6, 4))
    providers: Mapped[list[str] | None] = mapped_column(JSON)
    regions: Mapped[list[str] | None] = mapped_column(JSON)
    models: Mapped[list[str] | None] = mapped_column(JSON)
    valid_from: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    valid_to: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LedgerEntry(Base):
    """One leg of a transaction; the legs of a ``tx_id`` add up to zero. Append-only.

    Every call writes its legs, so every index here costs each call a page write (5-10 µs measured on
    SQLite): only the indexes that a query uses. Statements read an account over a month; the
    voucher report reads a month.
    """

    __tablename__ = "ledger_entries"
    __table_args__ = (Index("ix_ledger_entries_account_created_at", "account", "created_at"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    tx_id: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(24))  # topup, voucher_grant, charge, voucher_revoke, …
    account: Mapped[str] = mapped_column(String(200))
    amount: Mapped[int] = mapped_column(BigInteger)  # micro-yuan, signed
    org_id: Mapped[str | None] = mapped_column(String(32))
    voucher_id: Mapped[str | None] = mapped_column(String(32))
    request_id: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class UsageRecord(Base):
    """Exactly one per answered model call (DESIGN §3.1).

    Read by organization over a time range (usage, statements, the console) and by time range
    across organizations (the operator's activity view).
    """

    __tablename__ = "usage_records"
    __table_args__ = (Index("ix_usage_records_org_id_created_at", "org_id", "created_at"),)

    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(32))
    key_id: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(256))
    deployment: Mapped[str] = mapped_column(String(128))
    provider: Mapped[str] = mapped_column(String(64))
    region: Mapped[str] = mapped_column(String(64))
    endpoint: Mapped[str] = mapped_column(String(32))
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    cost: Mapped[int] = mapped_column(BigInteger)  # micro-yuan = voucher_part + own_part (+ uncollected)
    voucher_part: Mapped[int] = mapped_column(BigInteger)
    own_part: Mapped[int] = mapped_column(BigInteger)
    uncollected: Mapped[int] = mapped_column(BigInteger, default=0)
    latency_ms: Mapped[int] = mapped_column(Integer)
    data_class: Mapped[str] = mapped_column(String(16))
    stream: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(16))  # ok, estimated, client_gone, upstream_cut
    # Every deployment tried, in order, with the error of each failed one: [{"deployment", "error"}].
    attempts: Mapped[list[dict[str, str | None]] | None] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class FailedCall(Base):
    """A call of a known key that got an error answer (402, 429, 5xx, a guard block …); no money moved.

    Written in the background (a fraction of a second late) for the console's error charts.
    """

    __tablename__ = "failed_calls"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    request_id: Mapped[str] = mapped_column(String(64))
    org_id: Mapped[str] = mapped_column(String(32), index=True)
    key_id: Mapped[str] = mapped_column(String(32))
    model: Mapped[str | None] = mapped_column(String(256))
    endpoint: Mapped[str] = mapped_column(String(32))
    status: Mapped[int] = mapped_column(Integer)  # the HTTP status the client got
    code: Mapped[str | None] = mapped_column(String(64))  # our error code, e.g. insufficient_quota
    latency_ms: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class IdempotencyKey(Base):
    """A money change made under a client's Idempotency-Key: a retry of the same request gets the
    same result instead of a second change."""

    __tablename__ = "idempotency_keys"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)  # "<action>:<org id>:<client's key>"
    fingerprint: Mapped[str] = mapped_column(String(64))  # SHA-256 of the request's parameters
    result: Mapped[str] = mapped_column(String(64))  # the ledger transaction or voucher id made
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
