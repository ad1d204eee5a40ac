"""Failed calls: queued by the gateway without waiting, written in batches for the console's charts,
with their hourly rollups in the same transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from dizuo.billing import rollups
from dizuo.billing.tables import FailedCall
from dizuo.store import Database, stamper, utcnow
from dizuo.store.batches import BatchWriter

__all__ = ["FailureLog"]


class FailureLog(BatchWriter):
    def __init__(self, db: Database) -> None:
        super().__init__(db, FailedCall, "failed calls")
        self._stamp = stamper(db.engine.dialect)

    def also(self, connection: Connection, batch: list[dict[str, Any]]) -> None:
        sums = rollups.Sums()
        for row in batch:
            sums.failed(rollups.hour_of(row["created_at"]), row["org_id"], row["key_id"], row["model"])
        cursor = connection.connection.cursor()
        try:
            rollups.upsert(cursor, self.db.engine.dialect.paramstyle, sums, self._stamp)
        finally:
            cursor.close()

    def record(
        self,
        *,
        request_id: str,
        org_id: str,
        key_id: str,
        model: str | None,
        endpoint: str,
        status: int,
        code: str | None,
        latency_ms: int,
    ) -> None:
        """Queue one failed call (returns at once)."""
        self.add(
            {
                "created_at": utcnow(),
                "request_id": request_id,
                "org_id": org_id,
                "key_id": key_id,
                "model": model,
                "endpoint": endpoint,
                "status": status,
                "code": code,
                "latency_ms": latency_ms,
            }
        )
