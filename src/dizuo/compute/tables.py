"""Tables of compute: each job, where it was placed and why, what it held and what it was charged."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from dizuo.store import Base, utcnow

__all__ = ["ComputeJob", "PoolRow", "PoolSample"]


class ComputeJob(Base):
    """A job on a compute pool: the platform's own record of it, kept beside Ray's.

    Its id is the Ray submission id on whichever pool it runs, so a submission sent twice (a retry
    after a lost answer, a restart mid-submission) is refused by Ray rather than run twice. Money is in
    micro-yuan: ``held`` is the worst case reserved at submission (``held_own`` from the organization's
    balance, ``held_vouchers`` from its vouchers, as ``[[voucher id, amount], …]``), ``cost`` what was
    charged once it ended; ``settled_at`` is set in the transaction that charges it, exactly once.
    """

    __tablename__ = "compute_jobs"
    __table_args__ = (
        Index("ix_compute_jobs_org_id_created_at", "org_id", "created_at"),
        Index("ix_compute_jobs_state", "state"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"))
    key_id: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))  # script | eval | kb-index
    name: Mapped[str | None] = mapped_column(String(200))
    entrypoint: Mapped[str] = mapped_column(Text)
    # What it asked for (placement.JobRequest's fields) and what it runs with (the working directory's
    # package, the suite and model of an evaluation, the knowledge base to index).
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    data_class: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    pool: Mapped[str | None] = mapped_column(String(64))
    region: Mapped[str | None] = mapped_column(String(64))
    accelerator: Mapped[str | None] = mapped_column(String(64))
    considered: Mapped[list[dict[str, Any]]] = mapped_column(JSON)  # placement's table, best first
    blocked: Mapped[list[str]] = mapped_column(JSON)  # pools it failed to start on
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    hourly: Mapped[str | None] = mapped_column(String(40))  # CNY an hour at its pool's prices (exact)
    held: Mapped[int] = mapped_column(BigInteger, default=0)
    held_own: Mapped[int] = mapped_column(BigInteger, default=0)
    held_vouchers: Mapped[list[list[Any]]] = mapped_column(JSON)
    submitted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))  # sent to its pool
    waiting_seen_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))  # last seen PENDING
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))  # charged from
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))  # charged to
    message: Mapped[str | None] = mapped_column(String(1000))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    cost: Mapped[int | None] = mapped_column(BigInteger)
    voucher_paid: Mapped[int | None] = mapped_column(BigInteger)
    own_paid: Mapped[int | None] = mapped_column(BigInteger)
    uncollected: Mapped[int | None] = mapped_column(BigInteger)
    settled_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PoolRow(Base):
    """A pool platform admins added at run time (the YAML file holds the static ones)."""

    __tablename__ = "compute_pools"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    # The same fields as a YAML entry, validated by the same schema (dizuo.config.PoolConfig).
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class PoolSample(Base):
    """A pool as the reconciler read it, once a minute: what its cluster has and what of it is free,
    and how many jobs run and wait on it (the console's utilization over time). Kept 30 days."""

    __tablename__ = "pool_samples"
    __table_args__ = (Index("ix_pool_samples_at", "at"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    pool: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    up: Mapped[bool] = mapped_column(Boolean)
    accelerators_total: Mapped[float] = mapped_column(Float)
    accelerators_free: Mapped[float] = mapped_column(Float)
    cpus_total: Mapped[float] = mapped_column(Float)
    cpus_free: Mapped[float] = mapped_column(Float)
    running: Mapped[int] = mapped_column(Integer)
    waiting: Mapped[int] = mapped_column(Integer)
