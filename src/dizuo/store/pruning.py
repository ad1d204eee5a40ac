"""Removing a table's rows older than a moment, and the record of every removal.

PostgreSQL drops the table's whole months first (``dizuo.store.partitions``), then deletes the rest
of the expired rows, a few thousand per short transaction; SQLite deletes them all that way. Each
removal is written to ``prunes`` *before* any row goes, so :func:`horizon` never says a table is
whole where it is not: what was summed from the removed rows (the hourly rollups) is kept, and
rebuilding or checking the sums leaves the hours before the horizon alone.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import BigInteger, DateTime, Integer, String, func, insert, select, text, update
from sqlalchemy.orm import Mapped, mapped_column

from dizuo.store import partitions
from dizuo.store.db import Base, Database, utc, utcnow

__all__ = ["Prune", "Pruned", "horizon", "prune"]

BATCH = 5_000  # rows deleted per transaction: short enough that writers never wait long


class Prune(Base):
    """One removal of expired rows: which table, everything created before when, how many rows."""

    __tablename__ = "prunes"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    table_name: Mapped[str] = mapped_column(String(64))
    cutoff: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))  # rows before it removed
    rows: Mapped[int | None] = mapped_column(BigInteger)  # None while it runs (or if it was cut short)
    partitions: Mapped[str | None] = mapped_column(String(2000))  # the months dropped whole
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


@dataclass
class Pruned:
    """What a removal took (or, dry, would take)."""

    table: str
    before: dt.datetime
    rows: int = 0
    partitions: list[str] = field(default_factory=list)


def horizon(db: Database, table: str) -> dt.datetime | None:
    """The moment before which *table* may have lost rows to retention (None: it has all of them)."""
    with db.session() as session:
        moment = session.scalar(select(func.max(Prune.cutoff)).where(Prune.table_name == table))
    return None if moment is None else utc(moment)


def prune(
    db: Database, table: str, column: str, before: dt.datetime, *, key: str = "id", dry_run: bool = False
) -> Pruned:
    """Remove *table*'s rows whose *column* is before *before* (or, *dry_run*, count them)."""
    before = utc(before)
    done = Pruned(table, before)
    if dry_run:
        with db.engine.connect() as connection:
            if not db.is_sqlite and partitions.is_partitioned(connection, table):
                done.partitions = [p.name for p in partitions.expired(connection, table, before)]
            query = text(f"SELECT count(*) FROM {table} WHERE {column} < :before")
            done.rows = int(connection.execute(query, {"before": before}).scalar_one())
        return done
    with db.engine.begin() as connection:
        record = connection.execute(
            insert(Prune).values(table_name=table, cutoff=before, started_at=utcnow()).returning(Prune.id)
        ).scalar_one()
    with db.engine.begin() as connection:
        if not db.is_sqlite and partitions.is_partitioned(connection, table):
            for name, rows in partitions.drop_before(connection, table, before):
                done.partitions.append(name)
                done.rows += rows
    # The rest, a batch per transaction. The outer condition keeps PostgreSQL to the months that can
    # hold such rows.
    delete = text(
        f"DELETE FROM {table} WHERE {key} IN"
        f" (SELECT {key} FROM {table} WHERE {column} < :before LIMIT {BATCH}) AND {column} < :before"
    )
    while True:
        with db.engine.begin() as connection:
            count = connection.execute(delete, {"before": before}).rowcount
        done.rows += count
        if count < BATCH:
            break
    with db.engine.begin() as connection:
        connection.execute(
            update(Prune)
            .where(Prune.id == record)
            .values(rows=done.rows, partitions=", ".join(done.partitions) or None, finished_at=utcnow())
        )
    return done
