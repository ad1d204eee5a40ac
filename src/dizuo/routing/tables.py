"""Deployments added or changed at run time by operators (the YAML file holds the static ones)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, DateTime, String
from sqlalchemy.orm import Mapped, mapped_column

from dizuo.store import Base, utcnow

__all__ = ["DeploymentRow"]


class DeploymentRow(Base):
    __tablename__ = "deployments"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    # The same fields as a YAML entry, validated by the same schema (dizuo.config.DeploymentConfig).
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
