"""The guard's audit events: queued by calls without waiting, written in batches by one thread.

An event says who (organization, key, request), which direction, what was done and how many of
each entity type were found; the values themselves are never stored.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from dizuo.guard.tables import GuardEvent
from dizuo.store import Database, iso, utc, utcnow
from dizuo.store.batches import BatchWriter

__all__ = ["EventLog", "list_events"]


class EventLog(BatchWriter):
    def __init__(self, db: Database) -> None:
        super().__init__(db, GuardEvent, "guard events")

    def record(
        self,
        *,
        org_id: str,
        key_id: str | None,
        request_id: str | None,
        direction: str,
        action: str,
        counts: Mapping[str, int],
        model: str | None,
    ) -> None:
        """Queue one event (returns at once)."""
        self.add(
            {
                "created_at": utcnow(),
                "org_id": org_id,
                "key_id": key_id,
                "request_id": request_id,
                "direction": direction,
                "action": action,
                "counts": dict(counts),
                "model": model,
            }
        )


def list_events(
    db: Database,
    *,
    org_id: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """Events newest first, as plain dictionaries for the API and the CLI."""
    query = select(GuardEvent).order_by(GuardEvent.created_at.desc(), GuardEvent.id.desc()).limit(limit)
    if org_id is not None:
        query = query.where(GuardEvent.org_id == org_id)
    if since is not None:
        query = query.where(GuardEvent.created_at >= utc(since))
    if until is not None:
        query = query.where(GuardEvent.created_at < utc(until))
    with db.session() as session:
        return [
            {
                "id": event.id,
                "created_at": iso(event.created_at),
                "org_id": event.org_id,
                "key_id": event.key_id,
                "request_id": event.request_id,
                "direction": event.direction,
                "action": event.action,
                "counts": event.counts,
                "model": event.model,
            }
            for event in session.scalars(query)
        ]
