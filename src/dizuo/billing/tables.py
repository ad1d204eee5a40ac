"""Tables of money: wallets, vouchers, the double-entry ledger, and one usage record per call."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Table,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from dizuo.store import Base, utcnow
from dizuo.store.partitions import PARTITIONED

__all__ = [
    "LATENCY_COLUMNS",
    "LATENCY_EDGES",
    "FailedCall",
    "IdempotencyKey",
    "LedgerEntry",
    "UsageRecord",
    "Voucher",
    "Wallet",
    "activity_hourly",
    "usage_hourly",
    "voucher_hourly",
]


class Wallet(Base):
    """An organization's own money. ``balance`` caches the sum of its cash account in the ledger."""

    __tablename__ = "wallets"

    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), primary_key=True)
    balance: Mapped[int] = mapped_column(BigInteger, default=0)  # micro-yuan
    # Held by calls in flight, as last reported by the gateway workers (for views, not for checks).
    held: Mapped[int] = mapped_column(BigInteger, default=0)
    # Held by work that outlives a process (compute jobs), durably: calls may spend balance − standing.
    standing: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
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
    # A voucher naming pools or accelerator types pays for compute jobs on them only (and one naming
    # models, for model calls only); the provider ``compute`` stands for every compute job.
    pools: Mapped[list[str] | None] = mapped_column(JSON)
    accelerators: Mapped[list[str] | None] = mapped_column(JSON)
    # Held by compute jobs from what is left, durably (see Wallet.standing).
    standing: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    valid_from: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    valid_to: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LedgerEntry(Base):
    """One leg of a transaction; the legs of a ``tx_id`` add up to zero. Append-only.

    Every call writes its legs, so every index here costs each call a page write (5-10 µs measured on
    SQLite): only the indexes that a query uses. Statements sum an account's legs up to a moment, and
    its top-ups of a month: the account's index holds the kind and amount too, so those sums read the
    index alone however long the account's history (docs/benchmarks.md).
    """

    __tablename__ = "ledger_entries"
    __table_args__ = (
        Index("ix_ledger_entries_account_created_at", "account", "created_at", "kind", "amount"),
        # The legs that are not a call's charge (top-ups, grants, revocations): a few per account, so
        # that a balance at a moment sums them and the hourly rollups' charges, not every call's leg.
        Index(
            "ix_ledger_entries_moves",
            "account",
            "created_at",
            "kind",
            "amount",
            postgresql_where=text("kind <> 'charge'"),
            sqlite_where=text("kind <> 'charge'"),
        ),
        {"info": {PARTITIONED: "created_at"}},  # by month on PostgreSQL (dizuo.store.partitions)
    )

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
    __table_args__ = (
        Index("ix_usage_records_org_id_created_at", "org_id", "created_at"),
        {"info": {PARTITIONED: "created_at"}},  # key (request_id, created_at) there
    )

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
    __table_args__ = ({"info": {PARTITIONED: "created_at"}},)

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


# ---- rollups: hourly sums the write path keeps, so that views never read every record ----------

# Upper bounds (milliseconds, inclusive) of the latency histogram's buckets, about a quarter apart: a
# percentile read from it is within a bucket's width of the true one. One more bucket holds the rest.
_STEPS = (10, 12.5, 15, 20, 25, 30, 40, 50, 60, 80)
LATENCY_EDGES = (
    1,
    2,
    3,
    4,
    5,
    6,
    8,
    *(int(step * 10**power) for power in range(4) for step in _STEPS),
    100_000,
    120_000,
)
LATENCY_COLUMNS = (*(f"ms_le_{edge}" for edge in LATENCY_EDGES), f"ms_gt_{LATENCY_EDGES[-1]}")


def _count(name: str) -> Column[int]:
    return Column(name, BigInteger, nullable=False, default=0, server_default=text("0"))


# One row per UTC hour, organization, key, model, deployment, provider and region: the sums of the usage
# records (``calls``) and failed calls (``failed``; no deployment, provider or region) of that hour.
# Statements and per-key views read it. Written in the transaction that writes the records.
usage_hourly = Table(
    "usage_hourly",
    Base.metadata,
    Column("org_id", String(32), primary_key=True),
    Column("hour", DateTime(timezone=True), primary_key=True),
    Column("key_id", String(32), primary_key=True),
    Column("model", String(256), primary_key=True),
    Column("deployment", String(128), primary_key=True),
    Column("provider", String(64), primary_key=True),
    Column("region", String(64), primary_key=True),
    *(
        _count(name)
        for name in (
            "calls",
            "failed",
            "errors",  # answered calls whose answer did not reach the client whole
            "prompt_tokens",
            "completion_tokens",
            "cost",
            "voucher_part",
            "own_part",
            "uncollected",
            "latency_ms",  # the sum, for a mean
        )
    ),
)

# One row per UTC hour and scope: an organization's id, or ``*N``, a share of the whole platform (each
# process writes its own share, so that replicas do not wait on one row). The console's charts read
# it: a month of the whole platform is a few thousand rows, whatever the number of calls.
activity_hourly = Table(
    "activity_hourly",
    Base.metadata,
    Column("scope", String(32), primary_key=True),
    Column("hour", DateTime(timezone=True), primary_key=True),
    *(
        _count(name)
        for name in (
            "calls",
            "failed",
            "errors",
            "prompt_tokens",
            "completion_tokens",
            "cost",
            "voucher_part",
        )
    ),
    *(_count(name) for name in LATENCY_COLUMNS),
)

# One row per UTC hour, voucher, provider and region: what the voucher paid (the charge legs of its
# account) and for how many calls. Voucher reports read it. Written in the transaction of the legs.
voucher_hourly = Table(
    "voucher_hourly",
    Base.metadata,
    Column("voucher_id", String(32), primary_key=True),
    Column("hour", DateTime(timezone=True), primary_key=True),
    Column("provider", String(64), primary_key=True),
    Column("region", String(64), primary_key=True),
    _count("calls"),
    _count("paid"),
)
