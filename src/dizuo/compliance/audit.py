"""Checking the audit trail, signing checkpoints of it, and reading it out for an auditor.

The trail (``dizuo.store.audit``) is a hash chain: a record changed in place, removed or put out of
order no longer fits the chain, and :func:`verify` names the first record that does not. Someone
with write access to the database could rewrite a record and recompute every hash after it; the
checkpoints catch that: each holds the chain's hash at a record, signed (HMAC-SHA256) with the
platform's key, which lives outside the database (``DIZUO_SIGNING_KEY``, or a file in the data
directory). The server signs one daily; ``dizuo audit checkpoint`` signs one at once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Select, delete, func, select, update

from dizuo.settings import Settings
from dizuo.store import Database, iso, utc, utcnow
from dizuo.store.audit import GENESIS, AuditCheckpoint, AuditHead, AuditRecord, append, digest
from dizuo.store.pruning import BATCH, Prune, Pruned

__all__ = [
    "Problem",
    "checkpoint",
    "detail_text",
    "latest",
    "prune_trail",
    "records",
    "sheet_rows",
    "signing_key",
    "verify",
]

PAGE = 5_000


def signing_key(settings: Settings) -> bytes:
    """The platform's signing key: ``DIZUO_SIGNING_KEY``, else the data directory's ``signing.key``,
    made (32 random bytes, readable by the owner alone) when missing. Several replicas must share
    one: set the variable."""
    if settings.signing_key is not None:
        return settings.signing_key.get_secret_value().encode()
    path = Path(settings.data_dir) / "signing.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def _sign(key: bytes, seq: int, chain: str, at: dt.datetime) -> str:
    return hmac.new(key, f"{seq}:{chain}:{iso(at)}".encode(), hashlib.sha256).hexdigest()


def checkpoint(db: Database, key: bytes) -> AuditCheckpoint | None:
    """Sign the chain's hash at its last record (None when there is no record, or that one is signed
    already); the signing is itself recorded in the trail, after the record it signs."""
    with db.session() as session:
        head = session.get(AuditHead, 1)
        if head is None or head.seq == 0 or session.get(AuditCheckpoint, head.seq) is not None:
            return None
        at = utcnow()
        made = AuditCheckpoint(
            seq=head.seq, hash=head.hash, at=at, signature=_sign(key, head.seq, head.hash, at)
        )
        session.add(made)
        append(session, "audit.checkpoint", str(head.seq), actor="system", detail={"hash": head.hash})
    return made


@dataclass(frozen=True, slots=True)
class Problem:
    """The first place the trail does not hold together."""

    seq: int
    zh: str
    en: str

    def __str__(self) -> str:
        return f"{self.zh} / {self.en}"


def _within(query: Select[Any], since: dt.datetime | None, until: dt.datetime | None) -> Select[Any]:
    """*query* kept to the records of [*since*, *until*)."""
    if since is not None:
        query = query.where(AuditRecord.at >= utc(since))
    if until is not None:
        query = query.where(AuditRecord.at < utc(until))
    return query


def _pages(
    db: Database, since: dt.datetime | None = None, until: dt.datetime | None = None
) -> Iterator[AuditRecord]:
    """The records (of [*since*, *until*)) in order, a page per short transaction."""
    after = 0
    while True:
        query = _within(select(AuditRecord).where(AuditRecord.seq > after), since, until)
        with db.session() as session:
            page = list(session.scalars(query.order_by(AuditRecord.seq).limit(PAGE)))
        yield from page
        if len(page) < PAGE:
            return
        after = page[-1].seq


def verify(db: Database, key: bytes) -> tuple[int, Problem | None]:
    """Walk the chain from its first record; return how many records hold together and the first
    problem (None: the whole trail, its head and every checkpoint agree)."""
    with db.session() as session:
        checkpoints = {c.seq: c for c in session.scalars(select(AuditCheckpoint))}
        head = session.get(AuditHead, 1)
        first = session.scalar(select(func.min(AuditRecord.seq)))
    start, prev = 1, GENESIS
    if first is not None and first > 1:
        # Records before *first* were removed by retention: the checkpoint signed at the record just
        # before it is where the rest of the chain starts.
        anchor = checkpoints.get(first - 1)
        if anchor is None or not hmac.compare_digest(
            anchor.signature, _sign(key, anchor.seq, anchor.hash, utc(anchor.at))
        ):
            return 0, Problem(
                1,
                f"第 1 至 {first - 1} 条记录缺失，且第 {first - 1} 条处没有有效的签名检查点（留存清理只删除到检查点为止）",
                f"records 1 to {first - 1} are missing with no valid signed checkpoint at {first - 1} (retention"
                " removes records up to a checkpoint only)",
            )
        start, prev = first, anchor.hash
        checkpoints = {seq: c for seq, c in checkpoints.items() if seq >= first}
    held, problem = _walk(db, key, start, prev, checkpoints, head)
    return held, problem


def _walk(
    db: Database,
    key: bytes,
    start: int,
    prev: str,
    checkpoints: dict[int, AuditCheckpoint],
    head: AuditHead | None,
) -> tuple[int, Problem | None]:
    """Walk the records from *start* (whose predecessor's hash is *prev*); return how many hold."""
    expected = start
    for record in _pages(db):
        if record.seq != expected:
            return expected - start, Problem(
                expected,
                f"第 {expected} 至 {record.seq - 1} 条记录缺失（链从第 {expected - 1} 条跳到第 {record.seq} 条）",
                f"records {expected} to {record.seq - 1} are missing (the chain jumps from {expected - 1}"
                f" to {record.seq})",
            )
        if record.prev != prev:
            return expected - start, Problem(
                record.seq,
                f"第 {record.seq} 条记录接不上前一条（前一条被改动、删除，或记录被调换了顺序）",
                f"record {record.seq} does not follow the one before it (that one was changed or removed,"
                " or records were put out of order)",
            )
        fields = (record.actor, record.action, record.target, record.org_id, record.detail)
        if digest(record.prev, record.seq, utc(record.at), *fields) != record.hash:
            return expected - start, Problem(
                record.seq,
                f"第 {record.seq} 条记录被改动（内容与其哈希不符）",
                f"record {record.seq} was changed (its contents do not match its hash)",
            )
        signed = checkpoints.pop(record.seq, None)
        if signed is not None:
            good = hmac.compare_digest(signed.signature, _sign(key, signed.seq, signed.hash, utc(signed.at)))
            if not good:
                return expected - start, Problem(
                    record.seq,
                    f"第 {record.seq} 条记录处的检查点签名无效（检查点被伪造，或签名密钥不同）",
                    f"the checkpoint at record {record.seq} has a bad signature (forged, or signed with"
                    " another key)",
                )
            if signed.hash != record.hash:
                return expected - start, Problem(
                    record.seq,
                    f"链在第 {record.seq} 条记录处与 {iso(signed.at)} 签名的检查点不符：此前的记录被改写后重新计算了哈希",
                    f"the chain at record {record.seq} differs from the checkpoint signed at {iso(signed.at)}:"
                    " a record up to it was rewritten and the hashes recomputed",
                )
        prev = record.hash
        expected += 1
    last = expected - 1
    if head is not None and (head.seq != last or head.hash != prev):
        return last - start + 1, Problem(
            last + 1,
            f"第 {last} 条之后的记录被删除（链头记录到第 {head.seq} 条）",
            f"records after {last} were removed (the chain's head says {head.seq})",
        )
    if checkpoints:
        seq = min(checkpoints)
        return last - start + 1, Problem(
            seq,
            f"第 {seq} 条记录已不存在，但有它的签名检查点：记录被删除",
            f"there is a signed checkpoint at record {seq}, which no longer exists: records were removed",
        )
    return last - start + 1, None


def prune_trail(
    db: Database, table: str, column: str, before: dt.datetime, *, dry_run: bool = False
) -> Pruned:
    """Remove the audit records created before *before*, up to the last signed checkpoint among them
    (the records after it still chain to its hash, which :func:`verify` starts from); checkpoints are
    kept. Recorded in ``prunes`` before the first record goes."""
    before = utc(before)
    with db.session() as session:
        anchor = session.scalar(
            select(func.max(AuditCheckpoint.seq))
            .join(AuditRecord, AuditRecord.seq == AuditCheckpoint.seq)
            .where(AuditRecord.at < before)
        )
        rows = 0 if anchor is None else session.scalar(select(func.count()).where(AuditRecord.seq <= anchor))
    done = Pruned(table, before, rows=int(rows or 0))
    if dry_run or not done.rows:
        return done
    with db.session() as session:
        prune_row = Prune(table_name=table, cutoff=before)
        session.add(prune_row)
        session.flush()
        prune_id = prune_row.id
    removed = 0
    while True:
        with db.session() as session:
            lowest = session.scalar(select(func.min(AuditRecord.seq)))
            if lowest is None or lowest > anchor:
                break
            top = min(lowest + BATCH - 1, anchor)
            result = session.execute(delete(AuditRecord).where(AuditRecord.seq <= top))
            removed += int(getattr(result, "rowcount", 0) or 0)
    with db.session() as session:
        session.execute(update(Prune).where(Prune.id == prune_id).values(rows=removed, finished_at=utcnow()))
    done.rows = removed
    return done


def _row(record: AuditRecord) -> dict[str, Any]:
    return {
        "seq": record.seq,
        "at": iso(record.at),
        "actor": record.actor,
        "action": record.action,
        "target": record.target,
        "org_id": record.org_id,
        "detail": record.detail,
        "prev": record.prev,
        "hash": record.hash,
    }


def records(
    db: Database, since: dt.datetime | None = None, until: dt.datetime | None = None
) -> Iterator[dict[str, Any]]:
    """The records of [*since*, *until*) in order, as the export writes them."""
    for record in _pages(db, since, until):
        yield _row(record)


def detail_text(detail: dict[str, Any] | None) -> str:
    """A record's detail as a spreadsheet cell or a page shows it: compact JSON, or nothing."""
    return orjson.dumps(detail).decode() if detail else ""


def sheet_rows(
    db: Database, since: dt.datetime | None = None, until: dt.datetime | None = None
) -> Iterator[dict[str, Any]]:
    """:func:`records`, each detail as text: the rows of the spreadsheet an auditor gets."""
    for row in records(db, since, until):
        yield {**row, "detail": detail_text(row["detail"])}


def latest(
    db: Database,
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    actor: str | None = None,
    action: str | None = None,
    org_id: str | None = None,
    limit: int = 500,
) -> tuple[int, list[dict[str, Any]]]:
    """The records matching every filter given (*action*: the action or its family, ``key`` for
    ``key.create`` and ``key.revoke``), newest first, at most *limit*; and how many match."""
    query = _within(select(AuditRecord), since, until)
    if actor:
        query = query.where(AuditRecord.actor == actor)
    if action:
        query = query.where((AuditRecord.action == action) | AuditRecord.action.startswith(f"{action}."))
    if org_id is not None:
        query = query.where(AuditRecord.org_id == org_id)
    with db.session() as session:
        count = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        shown = session.scalars(query.order_by(AuditRecord.seq.desc()).limit(limit))
        return int(count), [_row(record) for record in shown]
