"""The audit trail: one append-only record of every administrative act, each chained by hash to the
one before it, so that a record changed, removed or put out of order shows.

A record is written in the transaction of the act it records: the act and its record commit together
or not at all. ``audit_head`` holds the last sequence number and hash; an append moves it first,
which takes its row's lock (PostgreSQL) or the database's write lock (SQLite) until the commit, so
appends from every process and replica form one chain, in commit order.

Each record's ``hash`` is SHA-256 over the previous record's hash and the record's own fields in a
canonical form (:func:`digest`). Checking the chain, and the signed checkpoints that make rewriting
it from some record on detectable too, are ``dizuo.compliance.audit``'s.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import orjson
from sqlalchemy import JSON, BigInteger, DateTime, Integer, String, insert, text
from sqlalchemy.orm import Mapped, Session, mapped_column

from dizuo.store.db import Base, iso, utcnow

__all__ = ["GENESIS", "AuditCheckpoint", "AuditHead", "AuditRecord", "append", "digest"]

GENESIS = "0" * 64  # the "previous hash" of the first record


class AuditRecord(Base):
    """One administrative act: who, what, on what, when."""

    __tablename__ = "audit_trail"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)  # 1, 2, 3 …
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    actor: Mapped[str] = mapped_column(String(64))  # a member's username; "cli"; "system"
    action: Mapped[str] = mapped_column(String(48), index=True)  # e.g. key.create, sign-in.failed
    target: Mapped[str] = mapped_column(String(256))  # what it acted on: an organization, a key prefix …
    org_id: Mapped[str | None] = mapped_column(String(32), index=True)  # the organization concerned
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    prev: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The chain's end: one row, moved by every append."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class AuditCheckpoint(Base):
    """The chain's hash at a sequence number, signed with the platform's key at a moment: a record
    rewritten at or before ``seq`` (and the chain recomputed after it) no longer gives this hash."""

    __tablename__ = "audit_checkpoints"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    signature: Mapped[str] = mapped_column(String(64))


def digest(
    prev: str,
    seq: int,
    at: dt.datetime,
    actor: str,
    action: str,
    target: str,
    org_id: str | None,
    detail: dict[str, Any] | None,
) -> str:
    """A record's hash: SHA-256 of the previous hash and the record's fields as canonical JSON
    (keys sorted, UTF-8, the moment in ISO 8601 UTC with microseconds)."""
    fields = [seq, iso(at), actor, action, target, org_id, detail]
    return hashlib.sha256(prev.encode() + orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)).hexdigest()


def append(
    session: Session,
    action: str,
    target: str,
    *,
    actor: str,
    org_id: str | None = None,
    detail: dict[str, Any] | None = None,
) -> int:
    """Add a record of *action* to the trail, in *session*'s transaction; returns its sequence number.

    Call it last in the transaction: every append waits for the chain's head, so taking it after the
    act's own locks keeps two acts from waiting on each other. The act's pending rows are written
    first, for that reason."""
    session.flush()
    target = target[:256]
    if detail is not None:  # as it will read back from the database's JSON
        detail = orjson.loads(orjson.dumps(detail))
    seq, prev = session.execute(
        text("UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash")
    ).one()
    at = utcnow()
    digested = digest(prev, seq, at, actor, action, target, org_id, detail)
    session.execute(
        insert(AuditRecord).values(
            seq=seq,
            at=at,
            actor=actor,
            action=action,
            target=target,
            org_id=org_id,
            detail=detail,
            prev=prev,
            hash=digested,
        )
    )
    session.execute(text("UPDATE audit_head SET hash = :h WHERE id = 1"), {"h": digested})
    return int(seq)
