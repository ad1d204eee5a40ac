"""Failed calls: queued by the gateway without waiting, written in batches for the console's charts."""

from __future__ import annotations

from dizuo.billing.tables import FailedCall
from dizuo.store import Database, utcnow
from dizuo.store.batches import BatchWriter

__all__ = ["FailureLog"]


class FailureLog(BatchWriter):
    def __init__(self, db: Database) -> None:
        super().__init__(db, FailedCall, "failed calls")

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
