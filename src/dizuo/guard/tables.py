"""The guard's audit trail: one row per detection event, never the detected values themselves."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, BigInteger, DateTime, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from dizuo.store import Base, utcnow
from dizuo.store.partitions import PARTITIONED

__all__ = ["GuardEvent"]


class GuardEvent(Base):
    __tablename__ = "guard_events"
    __table_args__ = ({"info": {PARTITIONED: "created_at"}},)  # by month on PostgreSQL

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    org_id: Mapped[str] = mapped_column(String(32), index=True)
    key_id: Mapped[str | None] = mapped_column(String(32))
    request_id: Mapped[str | None] = mapped_column(String(64), index=True)
    direction: Mapped[str] = mapped_column(String(8))  # prompt | answer
    action: Mapped[str] = mapped_column(String(8))  # log | redact | block
    # {"CN_MOBILE": 2, "EMAIL": 1}: entity types and how many of each, never the values.
    counts: Mapped[dict[str, int]] = mapped_column(JSON)
    model: Mapped[str | None] = mapped_column(String(256))
