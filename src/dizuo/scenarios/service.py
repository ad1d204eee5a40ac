"""Scenario lists (场景清单): a demand side submits a scenario need; the program office reviews,
selects or rejects it, publishes it in a numbered list; a supplier takes it (揭榜); it is built,
accepted, and becomes a benchmark (标杆) or is closed.

Every move is one of :data:`MOVES` from the scenario's stage; any other is refused with 409
``scenario_move_not_allowed`` naming the moves there are. Each move is recorded (who, why, when) in
``scenario_moves`` and in the platform's audit trail, in the transaction that makes it.
"""

from __future__ import annotations

import re
import secrets
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from dizuo.accounts.tables import Organization
from dizuo.errors import DizuoError, InvalidRequest, invalid_param
from dizuo.scenarios.industries import SECTIONS, classify, divisions
from dizuo.scenarios.notices import notify
from dizuo.scenarios.tables import Scenario, ScenarioMove, ScenarioReview
from dizuo.store import Database, iso, utcnow
from dizuo.store.audit import append
from dizuo.validate import validated

__all__ = [
    "MOVES",
    "OFFICE_MOVES",
    "STAGES",
    "ImportRefused",
    "MoveNotAllowed",
    "ScenarioNotFound",
    "Scenarios",
    "review_summary",
]

STAGES = (
    "draft",
    "submitted",
    "under_review",
    "selected",
    "rejected",
    "published",
    "taken",
    "in_construction",
    "accepted",
    "benchmark",
    "closed",
)
# stage → the stages it may move to.
MOVES: dict[str, tuple[str, ...]] = {
    "draft": ("submitted",),
    "submitted": ("under_review", "draft"),
    "under_review": ("selected", "rejected"),
    "selected": ("published",),
    "rejected": (),
    "published": ("taken", "closed"),
    "taken": ("in_construction", "closed"),
    "in_construction": ("accepted", "closed"),
    "accepted": ("benchmark", "closed"),
    "benchmark": (),
    "closed": (),
}
# The stages a scenario in a published list can be in.
LISTED = ("published", "taken", "in_construction", "accepted", "benchmark", "closed")
# Moves only the program office makes; the demand side submits its drafts (and takes them back).
OFFICE_MOVES = frozenset(STAGES) - {"submitted", "draft"}
LIST_NAME = re.compile(r"^\d{4}年第[一二三四五六七八九十\d]+批$")


class ScenarioNotFound(DizuoError):
    status = 404
    type = "invalid_request_error"
    default_code = "scenario_not_found"


class MoveNotAllowed(DizuoError):
    status = 409
    type = "invalid_request_error"
    default_code = "scenario_move_not_allowed"


class ImportRefused(InvalidRequest):
    """A spreadsheet with bad lines: each is in :attr:`problems`, ``line N: field: what``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(
            "invalid_param", param="rows", reason_zh="；".join(problems), reason_en="; ".join(problems)
        )
        self.problems = problems


class ScenarioIn(BaseModel):
    """A scenario need as the demand side writes it."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=2, max_length=200)
    industry: str = Field(min_length=1, max_length=40)
    district: str = Field(min_length=1, max_length=64)
    description: str = Field(min_length=10, max_length=20000)
    data_available: str = Field("", max_length=20000)
    budget_min: str | None = None
    budget_max: str | None = None
    expected: str = Field("", max_length=20000)
    contact: str = Field("", max_length=200)


def _yuan(field: str, value: str | None) -> str | None:
    if value is None or value == "":
        return None
    try:
        amount = Decimal(str(value).replace(",", ""))
    except InvalidOperation:
        raise invalid_param(
            field, "须是金额（元），如 500000", "must be an amount in CNY, such as 500000"
        ) from None
    if amount < 0 or amount >= Decimal("1e12") or amount != amount.quantize(Decimal("0.01")):
        raise invalid_param(
            field, "须是非负金额，至多两位小数", "must be a non-negative amount with at most 2 decimals"
        )
    return f"{amount:.2f}"


def checked(document: dict[str, Any]) -> dict[str, Any]:
    """The scenario's fields from *document*, checked; 400 naming the first field that is wrong."""
    need = validated(ScenarioIn, document, "scenario")
    found = classify(need.industry)
    if found is None:
        raise invalid_param("industry", f"不是 GB/T 4754 的门类或大类：{need.industry}（如 C、制造业、37 或 铁路、船舶、航空航天和其他运输设备制造业）", f"not a GB/T 4754 section or division: {need.industry} (such as C, 制造业, 37 or 铁路、船舶、航空航天和其他运输设备制造业)")  # fmt: skip
    industry, division = found
    low, high = _yuan("budget_min", need.budget_min), _yuan("budget_max", need.budget_max)
    if low is not None and high is not None and Decimal(low) > Decimal(high):
        raise invalid_param("budget_max", "不能低于 budget_min", "must not be below budget_min")
    return {
        **need.model_dump(),
        "industry": industry,
        "division": division,
        "budget_min": low,
        "budget_max": high,
    }


# What a move tells the scenario's demand side: (中文, English) after its title.
TOLD = {
    "selected": ("已入选", "was selected"),
    "rejected": ("未入选", "was not selected"),
    "published": ("已发布", "was published"),
    "taken": ("已被揭榜", "was taken"),
    "accepted": ("已验收", "was accepted"),
    "benchmark": ("被评为标杆", "was made a benchmark"),
    "closed": ("已关闭", "was closed"),
}


def _tell(session: Any, scenario: Scenario, to: str, reason: str) -> None:
    """The notices a move to *to* leaves (:mod:`dizuo.scenarios.notices`)."""
    title = scenario.title
    why_zh, why_en = (f"：{reason}", f": {reason}") if reason else ("", "")
    if to == "submitted":
        notify(session, "office", scenario.id, "submitted", f"场景「{title}」已提交，待评审", f"“{title}” was submitted for review")  # fmt: skip
    elif to == "under_review":
        notify(session, "reviewers", scenario.id, "under_review", f"场景「{title}」进入评审，请评分", f"“{title}” is under review: your scores are awaited")  # fmt: skip
    if to in TOLD:
        zh, en = TOLD[to]
        if to == "published" and scenario.list_name:
            zh, en = f"{zh}（{scenario.list_name}）", f"{en} ({scenario.list_name})"
        notify(session, "org", scenario.id, to, f"您的场景「{title}」{zh}{why_zh}", f"Your scenario “{title}” {en}{why_en}", scenario.org_id)  # fmt: skip
    if to == "taken" and scenario.taker_org_id:
        notify(session, "org", scenario.id, "you_took", f"贵组织已揭榜场景「{title}」，请制定建设里程碑", f"Your organization took “{title}”: plan its milestones", scenario.taker_org_id)  # fmt: skip


def review_summary(session: Any, scenario_id: str) -> dict[str, Any]:
    """The count and mean total of a scenario's reviews (:mod:`dizuo.scenarios.reviews`)."""
    totals = list(
        session.scalars(select(ScenarioReview.total).where(ScenarioReview.scenario_id == scenario_id))
    )
    return {"count": len(totals), "mean": round(sum(totals) / len(totals), 2) if totals else None}


class Scenarios:
    """Every organization's scenarios and the program office's lists."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, org_id: str, document: dict[str, Any], actor: str) -> dict[str, Any]:
        """A new scenario of *org_id* (the demand side), as a draft."""
        fields = checked(document)
        with self.db.session() as session:
            scenario = _draft(session, org_id, fields)
            session.flush()
            append(
                session,
                "scenario.create",
                scenario.id,
                actor=actor,
                org_id=org_id,
                detail={"title": fields["title"]},
            )
            return _view(session, scenario)

    def import_rows(self, rows: list[tuple[int, dict[str, Any]]], actor: str) -> list[str]:
        """Create a draft for each ``(line, row)``, the demand side named by its ``org`` field; all
        or nothing: every bad line is reported at once (:class:`ImportRefused`) and nothing is
        stored. Return the new scenarios' ids, in order."""
        problems: list[str] = []
        ready: list[tuple[str, dict[str, Any]]] = []
        with self.db.session() as session:
            orgs = {
                name: org_id for org_id, name in session.execute(select(Organization.id, Organization.name))
            }
        for line, row in rows:
            fields = dict(row)
            org = str(fields.pop("org", "") or "").strip()
            if org not in orgs:
                problems.append(f"line {line}: org: {'no organization ' + org if org else 'missing'}")
                continue
            try:
                ready.append((orgs[org], checked(fields)))
            except InvalidRequest as exc:
                problems.append(f"line {line}: {exc.param}: {exc.message('en')}")
        if problems:
            raise ImportRefused(problems)
        made = []
        with self.db.session() as session:
            for org_id, fields in ready:
                made.append(_draft(session, org_id, fields).id)
            session.flush()
            append(
                session, "scenario.import", f"{len(made)} scenarios", actor=actor, detail={"ids": made[:1000]}
            )
        return made

    def update(
        self, scenario_id: str, org_id: str | None, document: dict[str, Any], actor: str
    ) -> dict[str, Any]:
        """Change a draft (the demand side's); a scenario past its draft is changed by its moves only."""
        fields = checked(document)
        with self.db.session() as session:
            scenario = self._one(session, scenario_id, org_id)
            if scenario.status != "draft":
                raise MoveNotAllowed(
                    status=scenario.status, to="draft", allowed=", ".join(MOVES[scenario.status]) or "—"
                )
            for name, value in fields.items():
                setattr(scenario, name, value)
            scenario.updated_at = utcnow()
            append(session, "scenario.update", scenario.id, actor=actor, org_id=scenario.org_id)
            return _view(session, scenario)

    def move(
        self,
        scenario_id: str,
        to: str,
        actor: str,
        *,
        org_id: str | None = None,
        office: bool = False,
        reason: str = "",
        list_name: str | None = None,
        taker_org_id: str | None = None,
    ) -> dict[str, Any]:
        """Move the scenario to the stage *to*. *office*: the program office moves it (else only the
        demand side's own moves, on its own scenario, *org_id*). Publishing names the list; taking
        names the organization that took it."""
        if to not in STAGES:
            raise invalid_param("to", f"未知的阶段 {to}（可用：{', '.join(STAGES)}）", f"unknown stage {to} (one of {', '.join(STAGES)})")  # fmt: skip
        with self.db.session() as session:
            scenario = self._one(session, scenario_id, None if office else org_id, lock=True)
            allowed = MOVES[scenario.status]
            if to not in allowed or (to in OFFICE_MOVES and not office):
                mine = [stage for stage in allowed if office or stage not in OFFICE_MOVES]
                raise MoveNotAllowed(status=scenario.status, to=to, allowed=", ".join(mine) or "—")
            if to in ("rejected", "closed") and not reason.strip():
                raise invalid_param(
                    "reason", "驳回或关闭须写明理由", "a rejection or a closing needs a reason"
                )
            if to == "published":
                if not list_name or not LIST_NAME.match(list_name):
                    raise invalid_param("list", "发布须写明清单批次，如 2026年第一批", "publishing needs the list, such as 2026年第一批")  # fmt: skip
                scenario.list_name = list_name
            if to == "taken":
                if not taker_org_id or session.get(Organization, taker_org_id) is None:
                    raise invalid_param(
                        "taker", "揭榜须写明揭榜的组织", "taking needs the organization that takes it"
                    )
                if taker_org_id == scenario.org_id:
                    raise invalid_param(
                        "taker", "揭榜方不能是需求方自己", "the demand side cannot take its own scenario"
                    )
                scenario.taker_org_id = taker_org_id
            seq = int(
                session.scalar(select(func.count()).where(ScenarioMove.scenario_id == scenario.id)) or 0
            )
            session.add(
                ScenarioMove(
                    scenario_id=scenario.id, seq=seq + 1, from_status=scenario.status, to_status=to, actor=actor,
                    reason=reason.strip()[:5000], created_at=utcnow(),
                )
            )  # fmt: skip
            detail: dict[str, Any] = {"from": scenario.status, "to": to, "reason": reason.strip()[:500]}
            if to in ("selected", "rejected"):  # who decided and why, with what the reviewers said
                detail["reviews"] = review_summary(session, scenario.id)
            scenario.status, scenario.updated_at = to, utcnow()
            append(session, f"scenario.{to}", scenario.id, actor=actor, org_id=scenario.org_id, detail=detail)
            _tell(session, scenario, to, reason.strip())
            return _view(session, scenario, moves=True)

    def show(self, scenario_id: str, org_id: str | None) -> dict[str, Any]:
        """One scenario with its moves: the demand side's own (*org_id*), any published one, or any
        for the program office (*org_id* None)."""
        with self.db.session() as session:
            scenario = session.get(Scenario, scenario_id)
            visible = scenario is not None and (
                org_id is None or scenario.org_id == org_id or scenario.status in PUBLIC or scenario.taker_org_id == org_id
            )  # fmt: skip
            if not visible or scenario is None:
                raise ScenarioNotFound(id=scenario_id)
            view = _view(session, scenario, moves=True)
            if org_id is not None and scenario.org_id != org_id:
                view["contact"] = None  # another organization's contact stays with the office
            return view

    def listed(self, org_id: str | None, status: str | None = None) -> list[dict[str, Any]]:
        """The scenarios *org_id* sees (its own, and every published one; all for the office), newest
        first, of one stage when *status* is given."""
        with self.db.session() as session:
            query = select(Scenario).order_by(Scenario.created_at.desc())
            if org_id is not None:
                query = query.where((Scenario.org_id == org_id) | Scenario.status.in_(PUBLIC))
            if status is not None:
                if status not in STAGES:
                    raise invalid_param("status", f"未知的阶段 {status}", f"unknown stage {status}")
                query = query.where(Scenario.status == status)
            views = [_view(session, scenario) for scenario in session.scalars(query)]
        for view in views:
            if org_id is not None and view["org_id"] != org_id:
                view["contact"] = None
        return views

    def public(self) -> list[dict[str, Any]]:
        """The published scenarios and what became of them, for anyone (no contact), by list then
        newest first."""
        with self.db.session() as session:
            query = select(Scenario).where(Scenario.status.in_(PUBLIC))
            views = [
                _view(session, scenario)
                for scenario in session.scalars(query.order_by(Scenario.created_at.desc()))
            ]
        for view in views:
            view["contact"] = None
        return sorted(views, key=lambda view: view["list"] or "", reverse=True)

    def counts(self) -> dict[str, int]:
        """Scenarios by stage (every stage named, zero included)."""
        with self.db.session() as session:
            found = dict(
                session.execute(select(Scenario.status, func.count()).group_by(Scenario.status)).all()
            )
        return {stage: int(found.get(stage, 0)) for stage in STAGES}

    def counts_by_list(self) -> list[dict[str, Any]]:
        """The published lists (2026年第一批 …), in order, each with its scenarios by the stages a
        listed scenario can be in and their total."""
        with self.db.session() as session:
            found = session.execute(
                select(Scenario.list_name, Scenario.status, func.count())
                .where(Scenario.list_name.is_not(None))
                .group_by(Scenario.list_name, Scenario.status)
            ).all()
        lists: dict[str, dict[str, int]] = {}
        for name, status, count in found:
            lists.setdefault(str(name), dict.fromkeys(LISTED, 0))[status] = int(count)
        return [{"list": name, **counts, "total": sum(counts.values())} for name, counts in sorted(lists.items(), key=lambda item: _list_order(item[0]))]  # fmt: skip

    def _one(self, session: Any, scenario_id: str, org_id: str | None, lock: bool = False) -> Scenario:
        query = select(Scenario).where(Scenario.id == scenario_id)
        scenario = session.scalar(query.with_for_update() if lock else query)
        if scenario is None or (org_id is not None and scenario.org_id != org_id):
            raise ScenarioNotFound(id=scenario_id)
        return scenario  # type: ignore[no-any-return]


# The stages every organization sees (a published list and what became of its scenarios).
PUBLIC = ("published", "taken", "in_construction", "accepted", "benchmark")


def _draft(session: Any, org_id: str, fields: dict[str, Any]) -> Scenario:
    """A new draft of *org_id* with the checked *fields*, added to *session*."""
    now = utcnow()
    scenario = Scenario(
        id=f"scn_{secrets.token_hex(12)}",
        org_id=org_id,
        status="draft",
        created_at=now,
        updated_at=now,
        **fields,
    )
    session.add(scenario)
    return scenario


def _view(session: Any, scenario: Scenario, moves: bool = False) -> dict[str, Any]:
    org = session.get(Organization, scenario.org_id)
    taker = session.get(Organization, scenario.taker_org_id) if scenario.taker_org_id else None
    view: dict[str, Any] = {
        "id": scenario.id,
        "object": "scenario",
        "title": scenario.title,
        "org_id": scenario.org_id,
        "organization": org.name if org is not None else None,
        "industry": scenario.industry,
        "industry_name": SECTIONS[scenario.industry],
        "division": scenario.division,
        "division_name": divisions()[scenario.division].name if scenario.division else None,
        "district": scenario.district,
        "description": scenario.description,
        "data_available": scenario.data_available,
        "budget_min": scenario.budget_min,
        "budget_max": scenario.budget_max,
        "expected": scenario.expected,
        "contact": scenario.contact,
        "status": scenario.status,
        "list": scenario.list_name,
        "taker": taker.name if taker is not None else None,
        "moves_allowed": list(MOVES[scenario.status]),
        "created_at": iso(scenario.created_at),
        "updated_at": iso(scenario.updated_at),
    }
    if moves:
        rows = session.scalars(
            select(ScenarioMove).where(ScenarioMove.scenario_id == scenario.id).order_by(ScenarioMove.seq)
        )
        view["moves"] = [
            {"from": row.from_status, "to": row.to_status, "actor": row.actor, "reason": row.reason, "at": iso(row.created_at)}
            for row in rows
        ]  # fmt: skip
    return view


_NUMERALS = {c: n for n, c in enumerate("一二三四五六七八九十", start=1)}


def _list_order(name: str) -> tuple[int, int, str]:
    """Lists by year, then batch (第一批 before 第十批): 2026年第三批 → (2026, 3)."""
    match = re.match(r"^(\d{4})年第(.+)批$", name)
    if match is None:
        return (0, 0, name)
    batch = match[2]
    if batch.isdigit():
        number = int(batch)
    elif batch.startswith("十"):
        number = 10 + _NUMERALS.get(batch[1:], 0)
    elif "十" in batch:
        tens, _, ones = batch.partition("十")
        number = _NUMERALS.get(tens, 0) * 10 + _NUMERALS.get(ones, 0)
    else:
        number = _NUMERALS.get(batch, 0)
    return (int(match[1]), number, name)
