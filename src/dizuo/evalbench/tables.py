"""Evaluation runs started through the admin API; their files live under ``DIZUO_DATA_DIR/evals/ID``."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, DateTime, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from dizuo.store import Base, utcnow

__all__ = ["EvalRun"]


class EvalRun(Base):
    __tablename__ = "eval_runs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(256), index=True)
    suite: Mapped[str] = mapped_column(String(256))
    kind: Mapped[str] = mapped_column(String(16))
    base_url: Mapped[str] = mapped_column(String(1024))
    # The replica that runs it (host and data directory): only it may declare the run interrupted.
    owner: Mapped[str] = mapped_column(String(1024), default="")
    # queued → running → done | failed; a run whose process died is marked interrupted at start-up.
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    # Overall score, grade and requirement verdicts: what lists and the model catalog need.
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON)
