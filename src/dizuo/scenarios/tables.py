"""Tables of the scenario lists: each scenario (its demand side, what it needs, where it is in its
life) and every move it made, who made it and why; and the supply catalog's entries."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from dizuo.store import Base, utcnow

__all__ = [
    "NoticeSeen",
    "Scenario",
    "ScenarioApplication",
    "ScenarioMilestone",
    "ScenarioMove",
    "ScenarioNotice",
    "ScenarioReview",
    "ScenarioRubric",
    "Supplier",
]


class Scenario(Base):
    """An application scenario (应用场景) a demand side submitted, and where it is in its life."""

    __tablename__ = "scenarios"
    __table_args__ = (Index("ix_scenarios_status", "status"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # scn_<hex>
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), index=True)  # the demand side
    title: Mapped[str] = mapped_column(String(200))
    industry: Mapped[str] = mapped_column(String(8))  # a GB/T 4754 section letter
    division: Mapped[str | None] = mapped_column(String(2))  # one of its divisions (37), if named
    district: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text)
    data_available: Mapped[str] = mapped_column(Text, default="")
    budget_min: Mapped[str | None] = mapped_column(String(32))  # CNY, exact decimal strings
    budget_max: Mapped[str | None] = mapped_column(String(32))
    expected: Mapped[str] = mapped_column(Text, default="")
    contact: Mapped[str] = mapped_column(String(200), default="")  # hidden outside the platform
    status: Mapped[str] = mapped_column(String(24))
    list_name: Mapped[str | None] = mapped_column(String(64))  # the published list (2026年第一批)
    taker_org_id: Mapped[str | None] = mapped_column(String(32))  # who took it (揭榜)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ScenarioMove(Base):
    """One move of a scenario from one stage to the next."""

    __tablename__ = "scenario_moves"

    scenario_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    from_status: Mapped[str] = mapped_column(String(24))
    to_status: Mapped[str] = mapped_column(String(24))
    actor: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ScenarioApplication(Base):
    """An organization's application to take a published scenario (揭榜), with its proposal, and
    what the demand side decided: applied → shortlisted → awarded | declined."""

    __tablename__ = "scenario_applications"
    __table_args__ = (
        UniqueConstraint("scenario_id", "org_id", name="uq_scenario_applications_scenario_org"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # app_<hex>
    scenario_id: Mapped[str] = mapped_column(ForeignKey("scenarios.id"), index=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"))  # the supplier
    proposal: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    decided_by: Mapped[str | None] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ScenarioRubric(Base):
    """One criterion of the program office's review rubric (评分表), with its weight out of 100."""

    __tablename__ = "scenario_rubric"

    key: Mapped[str] = mapped_column(String(32), primary_key=True)
    name_zh: Mapped[str] = mapped_column(String(64))
    name_en: Mapped[str] = mapped_column(String(64))
    weight: Mapped[int] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer)


class ScenarioReview(Base):
    """One reviewer's scores of a scenario under review, against the rubric of the day (kept)."""

    __tablename__ = "scenario_reviews"
    __table_args__ = (
        UniqueConstraint("scenario_id", "reviewer", name="uq_scenario_reviews_scenario_reviewer"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # rev_<hex>
    scenario_id: Mapped[str] = mapped_column(ForeignKey("scenarios.id"), index=True)
    reviewer: Mapped[str] = mapped_column(String(128))  # the member's username
    scores: Mapped[dict[str, float]] = mapped_column(JSON)  # criterion key -> 0..10
    total: Mapped[float] = mapped_column(Float)  # weighted, out of 100
    comment: Mapped[str] = mapped_column(Text, default="")
    rubric: Mapped[list[dict[str, Any]]] = mapped_column(JSON)  # [{"key", "weight"}] scored against
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ScenarioMilestone(Base):
    """A milestone of a taken scenario's construction: what is due when, and when it was done, with
    the evidence."""

    __tablename__ = "scenario_milestones"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # ms_<hex>
    scenario_id: Mapped[str] = mapped_column(ForeignKey("scenarios.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    due: Mapped[dt.date] = mapped_column(Date)
    done_on: Mapped[dt.date | None] = mapped_column(Date)
    evidence: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(128))
    done_by: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ScenarioNotice(Base):
    """A notice of the scenario lists for an organization's members, the program office or the
    reviewers (:mod:`dizuo.scenarios.notices`)."""

    __tablename__ = "scenario_notices"
    __table_args__ = (Index("ix_scenario_notices_audience_org_id", "audience", "org_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    audience: Mapped[str] = mapped_column(String(16))  # org | office | reviewers
    org_id: Mapped[str | None] = mapped_column(String(32))
    scenario_id: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(32))
    text_zh: Mapped[str] = mapped_column(Text)
    text_en: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class NoticeSeen(Base):
    """When a member last opened their notices: those after it are unread."""

    __tablename__ = "notice_seen"

    member_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    seen_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class Supplier(Base):
    """An organization's entry in the supply catalog (本地人工智能供给能力目录): what it offers, to
    which industries and regions, the cases it delivered, and the platform's models and agents it
    names (shown with their real grades, not a claim)."""

    __tablename__ = "suppliers"

    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))  # the capability's name (机器视觉工业检测)
    summary: Mapped[str] = mapped_column(Text)
    industries: Mapped[list[str]] = mapped_column(JSON)  # GB/T 4754 section letters; [] serves all
    regions: Mapped[list[str]] = mapped_column(JSON)  # districts; [] or 全市 serves every district
    cases: Mapped[list[dict[str, Any]]] = mapped_column(JSON)  # [{"title", "industry", "year"}]
    certifications: Mapped[list[str]] = mapped_column(JSON)
    models: Mapped[list[str]] = mapped_column(JSON)  # model aliases or agent/NAME on this platform
    vector: Mapped[bytes | None] = mapped_column(LargeBinary)  # the text's embedding (float32)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
