"""Rows that calls queue without waiting, inserted in batches by one background thread.

Used for records that must not slow a call down and may trail it by a fraction of a second: the
guard's audit events and the failed calls the console charts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, insert

from dizuo.store.db import Base, Database
from dizuo.store.writer import GroupWriter

__all__ = ["BatchWriter", "row_groups"]

log = logging.getLogger("dizuo.store")
FLUSH_SECONDS = 0.2
MAX_BATCH = 1000


def row_groups(count: int, most: int) -> Iterator[tuple[int, int]]:
    """The rows ``0..count`` as groups for multi-row statements: ``(start, size)`` with sizes that are
    powers of two, none above *most* (itself a power of two), largest first.

    A database driver keeps each statement text it has prepared (SQLite's: the last 128), and a
    statement of many rows is large (one of 256 usage records, about half a megabyte prepared). Groups
    of any size made a new statement for nearly every commit, and a server's memory grew by the
    40 MB of those it kept; sizes that are powers of two make at most log2(*most*) + 1 texts, each
    reused, and as few statements per commit as the count has bits set."""
    assert most > 0 and most & (most - 1) == 0, "most must be a power of two"
    start = 0
    while start < count:
        size = min(most, 1 << ((count - start).bit_length() - 1))
        yield start, size
        start += size


class BatchWriter:
    """Insert rows of *table* in batches; ``start`` before use, ``stop`` writes what is queued."""

    def __init__(self, db: Database, table: type[Base], name: str) -> None:
        self.db = db
        self.table = table
        self.name = name
        # Rows gather, then go in together: one wake-up and one commit per interval. Waking on every
        # row cost each call a thread switch (+0.2 ms at p50, docs/benchmarks.md).
        self._writer: GroupWriter[dict[str, Any]] = GroupWriter(
            name, self._sink, most=MAX_BATCH, gather=FLUSH_SECONDS
        )

    def start(self) -> None:
        self._writer.start()

    def stop(self) -> None:
        """Write what is queued, then stop."""
        self._writer.stop()

    def add(self, row: dict[str, Any]) -> None:
        """Queue one row (returns at once)."""
        self._writer.put(row)

    def also(self, connection: Connection, batch: list[dict[str, Any]]) -> None:
        """Write what else *batch* changes, in the transaction that inserts it (nothing here)."""

    def _sink(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for attempt in range(3):
            try:
                with self.db.engine.begin() as connection:
                    connection.execute(insert(self.table), batch)
                    self.also(connection, batch)
                return []
            except Exception:  # a background writer must outlive a database hiccup
                log.exception("writing %d %s failed (attempt %d of 3)", len(batch), self.name, attempt + 1)
        log.error("dropped %d %s after 3 attempts", len(batch), self.name)
        return []
