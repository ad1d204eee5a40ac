"""Tables of the data sandbox: the datasets (their description, classification and columns; the data
itself is in the sandbox store), the access requests and grants, every query with its decision, and
what compute jobs next to the data wrote, held until the owner releases it."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from dizuo.store import Base, utcnow

__all__ = [
    "SandboxDataset",
    "SandboxGrant",
    "SandboxOutput",
    "SandboxQuery",
    "SandboxRelease",
    "SandboxRequest",
]


class SandboxDataset(Base):
    """A dataset a data owner registered: what it is, how it is classified, each column's
    sensitivity, and which file of the sandbox store holds its rows now."""

    __tablename__ = "sandbox_datasets"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # sds_<hex>
    name: Mapped[str] = mapped_column(String(64), unique=True)  # the table name its SQL uses
    owner_org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), index=True)
    description: Mapped[str] = mapped_column(Text, default="")
    classification: Mapped[str] = mapped_column(String(16))  # general | important
    personal: Mapped[bool] = mapped_column(Boolean, default=False)  # contains personal information
    # [{"name", "type", "sensitivity": identifier|quasi|sensitive|public, "bounds": [lo, hi] | None}]
    columns: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    row_count: Mapped[int] = mapped_column(Integer, default=0)
    schedule: Mapped[str] = mapped_column(String(64), default="")  # 每月更新, daily …
    store_file: Mapped[str] = mapped_column(String(256))  # under the data directory's sandbox/
    version: Mapped[int] = mapped_column(Integer, default=1)  # each load of new rows
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SandboxRequest(Base):
    """An enterprise's request to use a dataset for a stated purpose and period."""

    __tablename__ = "sandbox_requests"
    __table_args__ = (Index("ix_sandbox_requests_dataset_status", "dataset_id", "status"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # sdr_<hex>
    dataset_id: Mapped[str] = mapped_column(ForeignKey("sandbox_datasets.id"))
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), index=True)
    purpose: Mapped[str] = mapped_column(Text)
    until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))  # the period asked for
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | granted | refused
    actor: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SandboxGrant(Base):
    """What the owner allowed one organization to do with one dataset, until when; what it used."""

    __tablename__ = "sandbox_grants"
    __table_args__ = (Index("ix_sandbox_grants_dataset_org", "dataset_id", "org_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # sdg_<hex>
    dataset_id: Mapped[str] = mapped_column(ForeignKey("sandbox_datasets.id"))
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), index=True)
    request_id: Mapped[str | None] = mapped_column(String(32))
    purpose: Mapped[str] = mapped_column(Text, default="")
    allowed_columns: Mapped[list[str]] = mapped_column(JSON)
    min_group: Mapped[int] = mapped_column(Integer)  # k: the fewest rows an aggregate may describe
    rows_allowed: Mapped[bool] = mapped_column(Boolean, default=False)  # row-level results may leave
    jobs_allowed: Mapped[bool] = mapped_column(Boolean, default=False)  # compute jobs may read it in a pool
    epsilon: Mapped[float | None] = mapped_column(Float)  # the privacy budget; None: no noise
    epsilon_spent: Mapped[float] = mapped_column(Float, default=0.0)
    query_budget: Mapped[int] = mapped_column(Integer)
    queries_used: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SandboxQuery(Base):
    """One query: its SQL, the decision (released, or refused and why), what left, what it spent. A
    released aggregate keeps its filter and groups: later queries are checked against it."""

    __tablename__ = "sandbox_queries"
    __table_args__ = (Index("ix_sandbox_queries_grant_created", "grant_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # sdq_<hex>
    grant_id: Mapped[str | None] = mapped_column(String(32))
    dataset_id: Mapped[str | None] = mapped_column(String(32), index=True)
    org_id: Mapped[str] = mapped_column(String(32), index=True)
    actor: Mapped[str] = mapped_column(String(128))
    sql: Mapped[str] = mapped_column(Text)
    decision: Mapped[str] = mapped_column(String(16))  # released | refused
    reason: Mapped[str | None] = mapped_column(String(64))  # the refusal's code
    detail: Mapped[str | None] = mapped_column(Text)  # the refusal's message (English)
    kind: Mapped[str | None] = mapped_column(String(16))  # aggregate | rows
    filter_sql: Mapped[str | None] = mapped_column(Text)  # the released aggregate's WHERE
    group_by: Mapped[list[str] | None] = mapped_column(JSON)
    rows_out: Mapped[int] = mapped_column(Integer, default=0)
    suppressed: Mapped[int] = mapped_column(Integer, default=0)
    epsilon: Mapped[float] = mapped_column(Float, default=0.0)
    ms: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SandboxRelease(Base):
    """What one compute job that read a dataset in a pool wrote out (files, and what it printed),
    held for the dataset's owner to release to the job's organization or refuse."""

    __tablename__ = "sandbox_releases"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # sdx_<hex>
    job_id: Mapped[str] = mapped_column(String(32), unique=True)
    grant_id: Mapped[str] = mapped_column(String(32))
    dataset_id: Mapped[str] = mapped_column(ForeignKey("sandbox_datasets.id"), index=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), index=True)
    # running (the job writes) | pending (ended: for the owner) | released | refused | discarded
    state: Mapped[str] = mapped_column(String(16), default="running")
    job_state: Mapped[str | None] = mapped_column(String(16))  # how the job ended
    logs: Mapped[str] = mapped_column(Text, default="")  # what the job printed (its tail)
    rows_read: Mapped[int] = mapped_column(Integer, default=0)
    decided_by: Mapped[str | None] = mapped_column(String(128))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    decided_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class SandboxOutput(Base):
    """One file a sandbox job wrote out, with what the guard found in it."""

    __tablename__ = "sandbox_outputs"

    release_id: Mapped[str] = mapped_column(ForeignKey("sandbox_releases.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    findings: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)  # {entity type: count}
    content: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
