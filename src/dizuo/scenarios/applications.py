"""Taking a published scenario (揭榜): suppliers apply with a proposal, the demand side shortlists
and awards one.

An organization applies once to a published scenario (not its own), with its proposal; it sees its
own application only, never another supplier's. The scenario's demand side sees every application
to it, shortlists some, and awards one: the scenario moves to ``taken`` with that organization as
its taker, and the other applications are declined. Each act is in the audit trail with who did it.
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import select, update

from dizuo.accounts.members import Actor
from dizuo.accounts.permissions import allowed, authorize
from dizuo.accounts.tables import Organization
from dizuo.errors import DizuoError, InvalidRequest
from dizuo.scenarios.notices import notify
from dizuo.scenarios.service import ScenarioNotFound, Scenarios
from dizuo.scenarios.tables import Scenario, ScenarioApplication
from dizuo.store import Database, iso, utcnow
from dizuo.store.audit import append

__all__ = ["ApplicationNotFound", "Applications", "NotOpen", "deciding"]

OPEN = ("applied", "shortlisted")  # what the demand side may still decide on
# Stages where a scenario is public: suppliers see it, and what they applied for stays theirs to see.
PAST_PUBLISHING = ("published", "taken", "in_construction", "accepted", "benchmark", "closed")


class ApplicationNotFound(DizuoError):
    status = 404
    type = "invalid_request_error"
    default_code = "scenario_application_not_found"


class NotOpen(DizuoError):
    """The scenario or the application is not where the act needs it (409)."""

    status = 409
    type = "invalid_request_error"
    default_code = "scenario_not_open"


def deciding(actor: Actor) -> str | None:
    """Whose decision *actor* makes on applications: the office's (None), or its organization's as the
    demand side; 403 for anyone else."""
    if allowed(actor, "run scenario lists"):
        return None
    authorize(actor, "award scenarios")
    return actor.org_id or ""


class Applications:
    """The applications to take the platform's published scenarios."""

    def __init__(self, db: Database, scenarios: Scenarios) -> None:
        self.db = db
        self.scenarios = scenarios

    def apply(self, scenario_id: str, org_id: str, proposal: str, actor: str) -> dict[str, Any]:
        """*org_id*'s application to take *scenario_id*, with its *proposal*."""
        proposal = proposal.strip()
        if not 10 <= len(proposal) <= 20000:
            raise InvalidRequest("invalid_param", param="proposal", reason_zh="方案须为 10 至 20000 个字符", reason_en="a proposal has 10 to 20,000 characters")  # fmt: skip
        with self.db.session() as session:
            scenario = session.get(Scenario, scenario_id)
            if scenario is None or (scenario.status not in PAST_PUBLISHING and scenario.org_id != org_id):
                raise ScenarioNotFound(id=scenario_id)
            if scenario.org_id == org_id:
                raise InvalidRequest("invalid_param", param="org", reason_zh="不能揭自己发布需求的榜", reason_en="an organization cannot take its own scenario")  # fmt: skip
            if scenario.status != "published":
                raise NotOpen(id=scenario_id, status=scenario.status)
            taken = session.scalar(
                select(ScenarioApplication.id).where(
                    ScenarioApplication.scenario_id == scenario_id, ScenarioApplication.org_id == org_id
                )
            )
            if taken is not None:
                raise NotOpen("scenario_applied", id=scenario_id, application=taken)
            now = utcnow()
            row = ScenarioApplication(
                id=f"app_{secrets.token_hex(8)}",
                scenario_id=scenario_id,
                org_id=org_id,
                proposal=proposal,
                status="applied",
                created_at=now,
                updated_at=now,
            )
            session.add(row)
            session.flush()
            append(
                session,
                "scenario.apply",
                scenario_id,
                actor=actor,
                org_id=org_id,
                detail={"application": row.id},
            )
            view = _view(session, row)
            who = view["organization"]
            notify(session, "org", scenario_id, "applied", f"{who} 申请揭榜您的场景「{scenario.title}」", f"{who} applied to take your scenario “{scenario.title}”", scenario.org_id)  # fmt: skip
            return view

    def listed(self, scenario_id: str, org_id: str | None) -> list[dict[str, Any]]:
        """The applications to *scenario_id* *org_id* may see: all for its demand side (and the
        office and auditors, *org_id* None); a supplier's own only."""
        with self.db.session() as session:
            scenario = session.get(Scenario, scenario_id)
            if scenario is None:
                raise ScenarioNotFound(id=scenario_id)
            query = select(ScenarioApplication).where(ScenarioApplication.scenario_id == scenario_id)
            if org_id is not None and org_id != scenario.org_id:
                if scenario.status not in PAST_PUBLISHING:
                    raise ScenarioNotFound(id=scenario_id)
                query = query.where(ScenarioApplication.org_id == org_id)
            rows = session.scalars(query.order_by(ScenarioApplication.created_at)).all()
            return [_view(session, row) for row in rows]

    def shortlist(
        self, scenario_id: str, application_id: str, org_id: str | None, actor: str
    ) -> dict[str, Any]:
        """Put an application on the shortlist (the demand side's act; *org_id* None: the office)."""
        with self.db.session() as session:
            row = self._decided(session, scenario_id, application_id, org_id)
            row.status, row.updated_at, row.decided_by = "shortlisted", utcnow(), actor
            append(session, "scenario.shortlist", scenario_id, actor=actor, org_id=row.org_id, detail={"application": row.id})  # fmt: skip
            scenario = session.get(Scenario, scenario_id)  # found by _decided
            title = scenario.title if scenario is not None else scenario_id
            notify(session, "org", scenario_id, "shortlisted", f"贵组织对场景「{title}」的揭榜申请已入围", f"Your application to take “{title}” was shortlisted", row.org_id)  # fmt: skip
            return _view(session, row)

    def award(
        self, scenario_id: str, application_id: str, org_id: str | None, actor: str, reason: str = ""
    ) -> dict[str, Any]:
        """Award the scenario to an application: the scenario is taken by its organization, the
        other applications are declined; the scenario as it is then."""
        with self.db.session() as session:
            row = self._decided(session, scenario_id, application_id, org_id)
            taker = row.org_id
        moved = self.scenarios.move(
            scenario_id, "taken", actor, office=True, reason=reason, taker_org_id=taker
        )
        with self.db.session() as session:
            now = utcnow()
            session.execute(
                update(ScenarioApplication)
                .where(ScenarioApplication.id == application_id)
                .values(status="awarded", updated_at=now, decided_by=actor, reason=reason)
            )
            declined = list(
                session.scalars(
                    select(ScenarioApplication.org_id).where(
                        ScenarioApplication.scenario_id == scenario_id,
                        ScenarioApplication.id != application_id,
                        ScenarioApplication.status.in_(OPEN),
                    )
                )
            )
            session.execute(
                update(ScenarioApplication)
                .where(
                    ScenarioApplication.scenario_id == scenario_id,
                    ScenarioApplication.id != application_id,
                    ScenarioApplication.status.in_(OPEN),
                )
                .values(status="declined", updated_at=now, decided_by=actor)
            )
            title = moved["title"]
            for org in declined:
                notify(session, "org", scenario_id, "declined", f"贵组织对场景「{title}」的揭榜申请未中标", f"Your application to take “{title}” was declined", org)  # fmt: skip
            append(session, "scenario.award", scenario_id, actor=actor, org_id=taker, detail={"application": application_id, "reason": reason})  # fmt: skip
        return moved

    @staticmethod
    def _decided(
        session: Any, scenario_id: str, application_id: str, org_id: str | None
    ) -> ScenarioApplication:
        """The application the demand side (*org_id*; None: the office) decides on, still open, of a
        scenario still published."""
        scenario = session.get(Scenario, scenario_id, with_for_update=True)
        if scenario is None or (org_id is not None and scenario.org_id != org_id):
            raise ScenarioNotFound(id=scenario_id)
        row = session.get(ScenarioApplication, application_id)
        if row is None or row.scenario_id != scenario_id:
            raise ApplicationNotFound(id=application_id)
        if scenario.status != "published" or row.status not in OPEN:
            raise NotOpen(id=scenario_id, status=f"{scenario.status} / {row.status}")
        return row  # type: ignore[no-any-return]


def _view(session: Any, row: ScenarioApplication) -> dict[str, Any]:
    org = session.get(Organization, row.org_id)
    return {
        "id": row.id,
        "object": "scenario.application",
        "scenario": row.scenario_id,
        "organization": org.name if org else row.org_id,
        "proposal": row.proposal,
        "status": row.status,
        "decided_by": row.decided_by,
        "reason": row.reason,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    }
