"""Tables of the compliance features: each check of an AIGC label, for the regulator's figures."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from dizuo.store import Base, utcnow

__all__ = ["LabelCheck"]


class LabelCheck(Base):
    """One verification of a label: what was checked, and what it found."""

    __tablename__ = "label_checks"
    __table_args__ = (Index("ix_label_checks_at", "at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    source: Mapped[str] = mapped_column(String(16))  # body | stream | docx | xlsx | pdf | html | id
    # genuine (the platform's, content unchanged) | changed | forged | unlabeled | unknown (an id it
    # never produced) | genuine-unchecked (no content given)
    result: Mapped[str] = mapped_column(String(24))
    content_id: Mapped[str | None] = mapped_column(String(64))
    org_id: Mapped[str | None] = mapped_column(String(32))  # whose content it is, when known
    checked_by: Mapped[str] = mapped_column(String(128))  # "key:<prefix>", "member:<name>", "cli"
