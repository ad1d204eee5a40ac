"""Retention: how long the platform keeps what is not money, and the daily job that removes what
has outlived it.

Kept a number of days each (settings; at least 180, as the Cybersecurity Law's article 21 asks of a
network service's logs: no less than six months):

- failed calls (``failed_calls``): ``DIZUO_RETAIN_FAILED_CALLS_DAYS``, 365 by default;
- the guard's detection events (``guard_events``): ``DIZUO_RETAIN_GUARD_EVENTS_DAYS``, 365 by default;
- the audit trail (``audit_trail``): ``DIZUO_RETAIN_AUDIT_DAYS``, 1,095 by default, removed up to the
  last signed checkpoint before the cutoff, so that the rest of the chain still starts from a
  signed hash (its checkpoints are kept).

Never removed: the ledger and the usage records (accounting records, kept as the accounting archive
rules keep vouchers and books), and the hourly rollups, which keep the sums of removed rows. The ledger
lives in tables of its own, so removing logs never touches money.

The job also makes the coming months' partitions on PostgreSQL (``dizuo.store.partitions``). The
server runs it a minute after it starts and then daily (``dizuo admin prune`` runs it at once); each
removal is recorded in ``prunes`` before its first row goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import func, select

import dizuo.billing.tables
import dizuo.guard.tables  # noqa: F401  (their tables, in the metadata the partitions are read from)
from dizuo.compliance.audit import checkpoint, prune_trail
from dizuo.settings import Settings
from dizuo.store import Base, Database, iso, utc, utcnow
from dizuo.store import partitions as months
from dizuo.store.audit import append
from dizuo.store.pruning import Prune, Pruned, prune

__all__ = ["Housekeeper", "Kept", "Report", "kept", "make_months", "run"]

log = logging.getLogger(__name__)

DAY = 86_400.0


class Remover(Protocol):
    def __call__(
        self, db: Database, table: str, column: str, before: dt.datetime, *, dry_run: bool = False
    ) -> Pruned: ...


@dataclass(frozen=True, slots=True)
class Kept:
    """One kind of record and how long it is kept."""

    table: str
    days: int
    zh: str
    en: str
    column: str = "created_at"
    remove: Remover = prune  # how expired rows go: by date, or (the audit trail) up to a checkpoint


def kept(settings: Settings) -> list[Kept]:
    return [
        Kept("failed_calls", settings.retain_failed_calls_days, "失败调用", "failed calls"),
        Kept("guard_events", settings.retain_guard_events_days, "数据风险事件", "guard events"),
        Kept("audit_trail", settings.retain_audit_days, "审计记录", "audit records", "at", prune_trail),
    ]


@dataclass(frozen=True, slots=True)
class Report:
    made: list[str]  # partitions made
    pruned: list[tuple[Kept, Pruned]]


def make_months(db: Database, now: dt.datetime | None = None, *, move: bool = True) -> list[str]:
    """Make the partitions PostgreSQL lacks for the coming months, and (*move*) for the months whose
    rows wait in a default partition, moving them in (nothing on SQLite)."""
    if db.is_sqlite:
        return []
    with db.engine.begin() as connection:
        tables = months.partitioned_tables(Base.metadata)
        return months.ensure(connection, tables, now or utcnow(), move=move)


def run(
    db: Database,
    policy: list[Kept],
    now: dt.datetime | None = None,
    *,
    dry_run: bool = False,
    actor: str = "system",
) -> Report:
    """Remove every record older than its retention (*dry_run*: count them), after making the coming
    months' partitions; each removal is in the audit trail as *actor*'s."""
    now = utc(now or utcnow())
    made = [] if dry_run else make_months(db, now)
    pruned = []
    for rule in policy:
        done = rule.remove(db, rule.table, rule.column, now - dt.timedelta(days=rule.days), dry_run=dry_run)
        pruned.append((rule, done))
        if dry_run:
            continue
        if done.rows:
            log.info("retention removed %d %s created before %s", done.rows, rule.en, done.before.isoformat())
        with db.session() as session:
            detail = {"before": iso(done.before), "rows": done.rows, "partitions": done.partitions}
            append(session, "retention.prune", rule.table, actor=actor, detail=detail)
    return Report(made, pruned)


class Housekeeper:
    """Runs :func:`run` in the server, then signs a checkpoint of the audit trail with *key* (called
    when first needed): *first* seconds after start, then every *every* seconds. With several
    workers or replicas, a worker whose peers ran it less than most of a period ago skips its turn.
    *chores* run after it, each time (features above compliance hand theirs in)."""

    def __init__(
        self,
        db: Database,
        policy: list[Kept],
        key: Callable[[], bytes],
        *,
        first: float = 60.0,
        every: float = DAY,
        chores: Sequence[Callable[[], object]] = (),
    ) -> None:
        self.db = db
        self.chores = chores  # other features' daily work (the indicators' monthly snapshot)
        self.policy = policy
        self.key = key
        self.first = first
        self.every = every
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="dizuo-retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _due(self) -> bool:
        with self.db.session() as session:
            last = session.scalar(select(func.max(Prune.started_at)))
        return last is None or (utcnow() - utc(last)).total_seconds() >= self.every * 0.8

    async def _loop(self) -> None:
        delay = self.first
        while True:
            await asyncio.sleep(delay)
            delay = self.every
            try:
                if await asyncio.to_thread(self._due):
                    await asyncio.to_thread(run, self.db, self.policy)
                    await asyncio.to_thread(lambda: checkpoint(self.db, self.key()))
                    for chore in self.chores:
                        await asyncio.to_thread(chore)
            except Exception:  # a background runner must survive a database hiccup
                log.exception("the retention job failed; it runs again in an hour")
                delay = min(self.every, 3600.0)
