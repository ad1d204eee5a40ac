"""Milestones of a scenario's construction (里程碑): once taken, what is due when, and when it was
done, with the evidence.

The program office or the organization that took the scenario (its members) plans milestones
while the scenario is ``taken`` or ``in_construction``, and records each one done with its evidence
(a report, a link, a delivery note) and the day it was done. A milestone is **late** when its day has
passed without it being done, or when it was done after its day; the office sees the late ones, and
the monthly indicators count those still open past their day. The scenario's demand side, the taker,
the office and auditors read them; every act is in the audit trail.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from dizuo.accounts.members import Actor
from dizuo.accounts.permissions import allowed, authorize
from dizuo.days import PLATFORM_ZONE
from dizuo.errors import DizuoError, invalid_param
from dizuo.scenarios.notices import notify
from dizuo.scenarios.service import ScenarioNotFound
from dizuo.scenarios.tables import Scenario, ScenarioMilestone
from dizuo.store import Database, iso, utcnow
from dizuo.store.audit import append

__all__ = ["BUILDING", "MilestoneNotFound", "Milestones", "NotInConstruction", "keeping", "late_open"]

BUILDING = ("taken", "in_construction")  # the stages whose milestones are planned and done


class MilestoneNotFound(DizuoError):
    status = 404
    type = "invalid_request_error"
    default_code = "scenario_milestone_not_found"


class NotInConstruction(DizuoError):
    """A milestone act on a scenario that is not taken or in construction (409)."""

    status = 409
    type = "invalid_request_error"
    default_code = "scenario_not_in_construction"


def keeping(actor: Actor) -> str | None:
    """Who *actor* keeps milestones as: the office (None), or its organization (the taker's, which
    :class:`Milestones` checks); 403 for anyone else."""
    if allowed(actor, "run scenario lists"):
        return None
    authorize(actor, "apply for scenarios", org_id=actor.org_id)
    return actor.org_id or ""


def _day(field: str, value: str | dt.date) -> dt.date:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise invalid_param(field, "须是日期，如 2027-03-31", "must be a date, such as 2027-03-31") from None


def _state(row: ScenarioMilestone, on: dt.date) -> str:
    if row.done_on is not None:
        return "done_late" if row.done_on > row.due else "done"
    return "late" if row.due < on else "open"


def _view(row: ScenarioMilestone, on: dt.date) -> dict[str, Any]:
    state = _state(row, on)
    return {
        "id": row.id,
        "scenario": row.scenario_id,
        "title": row.title,
        "due": row.due.isoformat(),
        "done_on": row.done_on.isoformat() if row.done_on else None,
        "evidence": row.evidence,
        "state": state,
        "late": state in ("late", "done_late"),
        "created_by": row.created_by,
        "done_by": row.done_by,
        "created_at": iso(row.created_at),
    }


def late_open(session: Any, on: dt.date) -> int:
    """Milestones that were late on the day *on*: due before it and not done by then (in the
    caller's session)."""
    undone = ScenarioMilestone.done_on.is_(None) | (ScenarioMilestone.done_on >= on)
    query = select(func.count()).where(ScenarioMilestone.due < on, undone)
    return int(session.scalar(query) or 0)


class Milestones:
    """The milestones of the platform's taken scenarios; days are those of *zone*, the platform's
    time zone (``DIZUO_TIMEZONE``)."""

    def __init__(self, db: Database, zone: ZoneInfo = PLATFORM_ZONE) -> None:
        self.db = db
        self.zone = zone

    def today(self) -> dt.date:
        return dt.datetime.now(self.zone).date()

    def _building(self, session: Any, scenario_id: str, org_id: str | None) -> Scenario:
        """The scenario, for the office (*org_id* None) or its taker's members; 409 unless it is
        being built."""
        scenario = session.get(Scenario, scenario_id)
        if scenario is None or (org_id is not None and scenario.taker_org_id != org_id):
            raise ScenarioNotFound(id=scenario_id)
        if scenario.status not in BUILDING:
            raise NotInConstruction(id=scenario_id, status=scenario.status)
        return scenario  # type: ignore[no-any-return]

    def add(self, scenario_id: str, title: str, due: str | dt.date, actor: str, org_id: str | None) -> dict[str, Any]:  # fmt: skip
        """A milestone *title* due on *due*, planned by the office (*org_id* None) or the taker."""
        title = title.strip()
        if not 2 <= len(title) <= 200:
            raise invalid_param("title", "须为 2 至 200 个字符", "2 to 200 characters")
        day = _day("due", due)
        now = utcnow()
        with self.db.session() as session:
            scenario = self._building(session, scenario_id, org_id)
            row = ScenarioMilestone(
                id=f"ms_{secrets.token_hex(8)}", scenario_id=scenario.id, title=title, due=day, evidence="",
                created_by=actor, created_at=now, updated_at=now,
            )  # fmt: skip
            session.add(row)
            session.flush()
            append(session, "scenario.milestone", scenario.id, actor=actor, org_id=scenario.org_id, detail={"id": row.id, "title": title, "due": day.isoformat()})  # fmt: skip
            return _view(row, self.today())

    def done(
        self,
        scenario_id: str,
        milestone_id: str,
        evidence: str,
        actor: str,
        org_id: str | None,
        done_on: str | dt.date | None = None,
    ) -> dict[str, Any]:
        """Record a milestone done, with its *evidence*, on *done_on* (today by default; never a day
        to come), by the office (*org_id* None) or the taker."""
        evidence = evidence.strip()
        if not 2 <= len(evidence) <= 5000:
            raise invalid_param("evidence", "须写明完成的依据（2 至 5000 个字符）", "say what shows it done (2 to 5,000 characters)")  # fmt: skip
        on = self.today()
        day = on if done_on is None else _day("done_on", done_on)
        if day > on:
            raise invalid_param("done_on", "不能是将来的日期", "cannot be a day to come")
        with self.db.session() as session:
            scenario = self._building(session, scenario_id, org_id)
            row = session.get(ScenarioMilestone, milestone_id)
            if row is None or row.scenario_id != scenario.id:
                raise MilestoneNotFound(id=milestone_id)
            if row.done_on is not None:
                raise invalid_param("milestone", f"已于 {row.done_on.isoformat()} 完成", f"done already on {row.done_on.isoformat()}")  # fmt: skip
            row.done_on, row.evidence, row.done_by, row.updated_at = day, evidence, actor, utcnow()
            append(session, "scenario.milestone_done", scenario.id, actor=actor, org_id=scenario.org_id, detail={"id": row.id, "done_on": day.isoformat(), "late": day > row.due})  # fmt: skip
            zh, en = f"场景「{scenario.title}」的里程碑「{row.title}」已完成（{day.isoformat()}）", f"The milestone “{row.title}” of “{scenario.title}” was done ({day.isoformat()})"  # fmt: skip
            notify(session, "org", scenario.id, "milestone_done", zh, en, scenario.org_id)
            notify(session, "office", scenario.id, "milestone_done", zh, en)
            return _view(row, on)

    def listed(self, scenario_id: str, org_id: str | None) -> list[dict[str, Any]]:
        """A scenario's milestones by day, for the office and auditors (*org_id* None), its demand
        side or its taker."""
        with self.db.session() as session:
            scenario = session.get(Scenario, scenario_id)
            if scenario is None or (
                org_id is not None and org_id not in (scenario.org_id, scenario.taker_org_id)
            ):
                raise ScenarioNotFound(id=scenario_id)
            rows = session.scalars(
                select(ScenarioMilestone)
                .where(ScenarioMilestone.scenario_id == scenario_id)
                .order_by(ScenarioMilestone.due, ScenarioMilestone.created_at)
            ).all()
            on = self.today()
            return [_view(row, on) for row in rows]
