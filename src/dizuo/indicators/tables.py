"""The indicators' monthly snapshots: a month's document as it was when the month closed, so that
months can be compared over time even as organizations change their industry, district or size, and
as scenarios move on."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, DateTime, String
from sqlalchemy.orm import Mapped, mapped_column

from dizuo.store import Base, utcnow

__all__ = ["IndicatorSnapshot"]


class IndicatorSnapshot(Base):
    """One month's indicators as taken after the month ended."""

    __tablename__ = "indicator_snapshots"

    month: Mapped[str] = mapped_column(String(7), primary_key=True)  # YYYY-MM in the platform's zone
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    taken_by: Mapped[str] = mapped_column(String(128))
    taken_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
