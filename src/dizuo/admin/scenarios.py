"""Admin routes of the scenario lists: ``/admin/v1/scenarios``. The demand side's members create,
change and submit their own; reviewers score those under review, each alone; the program office
(and platform admins) sets the rubric, reads every review with its spread, selects, publishes and
follows them; auditors read all; every organization reads the published ones (another
organization's contact hidden).

No ``from __future__ import annotations``: FastAPI reads the route annotations at run time.
"""

import datetime as dt
from collections.abc import Callable
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Body, Depends
from sqlalchemy import func, select

from dizuo.accounts import get_org
from dizuo.accounts.members import Actor
from dizuo.accounts.permissions import allowed, sees_all_orgs
from dizuo.admin.schemas import ApplicationIn, DecisionIn, MilestoneDoneIn, MilestoneIn, MoveIn, ScenarioIn
from dizuo.agents.tables import Agent, AgentStep, AgentVersion
from dizuo.billing.tables import usage_hourly
from dizuo.days import PLATFORM_ZONE
from dizuo.evalbench.service import EvalService
from dizuo.scenarios.applications import Applications, deciding
from dizuo.scenarios.milestones import Milestones, keeping
from dizuo.scenarios.reviews import ReviewIn, Reviews, RubricIn, reading
from dizuo.scenarios.service import OFFICE_MOVES, Scenarios
from dizuo.scenarios.suppliers import Suppliers
from dizuo.store import utcnow

__all__ = ["platform_grades", "platform_usage", "scenario_routes"]

USAGE_DAYS = 30


def platform_grades(db: Any, evals: EvalService | None) -> Callable[[], dict[str, str | None]]:
    """The grades the evaluation bench gave: each evaluated model's, and each agent listed for every
    organization (``agent/NAME``, its newest version's)."""

    def read() -> dict[str, str | None]:
        found: dict[str, str | None] = (
            {row["model"]: row["grade"] for row in evals.catalog()} if evals else {}
        )
        with db.session() as session:
            listed = session.execute(
                select(Agent.name, AgentVersion.grade)
                .join(AgentVersion, AgentVersion.agent_id == Agent.id)
                .where(AgentVersion.version == Agent.version, AgentVersion.visibility == "platform")
            )
            for name, grade in listed:
                found[f"agent/{name}"] = grade
        return found

    return read


def platform_usage(db: Any) -> Callable[[list[str]], dict[str, dict[str, int]]]:
    """What the platform's records say of models and agents in the last 30 days: a model's charged
    calls and the organizations that made them (the hourly rollups), an agent's calls (``agent/NAME``:
    its steps) and the organizations that called it."""

    def read(names: list[str]) -> dict[str, dict[str, int]]:
        since = utcnow() - dt.timedelta(days=USAGE_DAYS)
        table = usage_hourly.c
        models = [n for n in names if not n.startswith("agent/")]
        agents = [n.removeprefix("agent/") for n in names if n.startswith("agent/")]
        found = {name: {"calls_30d": 0, "organizations_30d": 0} for name in names}
        with db.session() as session:
            if models:
                for model, calls, orgs in session.execute(
                    select(table.model, func.sum(table.calls), func.count(func.distinct(table.org_id)))
                    .where(table.model.in_(models), table.hour >= since)
                    .group_by(table.model)
                ):
                    found[model] = {"calls_30d": int(calls or 0), "organizations_30d": int(orgs or 0)}
            if agents:
                for name, calls, orgs in session.execute(
                    select(Agent.name, func.count(func.distinct(AgentStep.request_id)), func.count(func.distinct(AgentStep.org_id)))
                    .join(AgentStep, AgentStep.agent_id == Agent.id)
                    .where(Agent.name.in_(agents), AgentStep.created_at >= since)
                    .group_by(Agent.name)
                ):  # fmt: skip
                    found[f"agent/{name}"] = {
                        "calls_30d": int(calls or 0),
                        "organizations_30d": int(orgs or 0),
                    }
        return found

    return read


def scenario_routes(
    prefix: str,
    scenarios: Scenarios,
    actor: Callable[..., Actor],
    may: Callable[..., None],
    db: Any,
    suppliers: Suppliers | None = None,
    zone: ZoneInfo = PLATFORM_ZONE,
) -> APIRouter:
    router = APIRouter()
    catalog = suppliers or Suppliers(db)
    applications = Applications(db, scenarios)
    reviews = Reviews(db)
    milestones = Milestones(db, zone)
    Caller = Annotated[Actor, Depends(actor)]

    def seen_by(who: Actor) -> str | None:
        """The organization whose view *who* has; None: every scenario (the office, auditors)."""
        return None if sees_all_orgs(who) else who.org_id

    @router.get(f"{prefix}/scenarios")
    def list_scenarios(who: Caller, status: str | None = None) -> list[dict[str, Any]]:
        """Scenarios, newest first (``?status=`` one stage): all for the office and auditors; an
        organization's own and every published one for its members."""
        may(who, "read scenarios")
        return scenarios.listed(seen_by(who), status)

    @router.post(f"{prefix}/scenarios", status_code=201)
    def create_scenario(body: ScenarioIn, who: Caller) -> dict[str, Any]:
        """A new scenario need of ``org`` (a draft): title, industry (GB/T 4754 section), district,
        description, data available, budget range, expected results, contact."""
        org = get_org(db, body.org)
        may(who, "submit scenarios", org=org)
        return scenarios.create(org.id, body.scenario, who.username)

    @router.get(f"{prefix}/scenarios/rubric")
    def read_rubric(who: Caller) -> dict[str, Any]:
        """The criteria reviewers score (0 to 10 each), with their weights out of 100."""
        may(who, "read scenarios")
        return {"criteria": reviews.rubric()}

    @router.put(f"{prefix}/scenarios/rubric")
    def set_rubric(body: RubricIn, who: Caller) -> dict[str, Any]:
        """Replace the rubric (the program office): ``criteria`` of ``key``, ``name_zh``, ``name_en``
        and an integer ``weight``, the weights summing to 100. Reviews made before keep theirs."""
        may(who, "set the review rubric")
        return {"criteria": reviews.set_rubric(body.model_dump(), who.username)}

    @router.get(f"{prefix}/scenarios/{{scenario_id}}")
    def show_scenario(scenario_id: str, who: Caller) -> dict[str, Any]:
        """One scenario with its moves."""
        may(who, "read scenarios")
        return scenarios.show(scenario_id, seen_by(who))

    @router.put(f"{prefix}/scenarios/{{scenario_id}}")
    def update_scenario(scenario_id: str, body: ScenarioIn, who: Caller) -> dict[str, Any]:
        """Change a draft (``org`` must be its demand side)."""
        org = get_org(db, body.org)
        may(who, "submit scenarios", org=org)
        return scenarios.update(scenario_id, org.id, body.scenario, who.username)

    @router.post(f"{prefix}/scenarios/{{scenario_id}}/moves")
    def move_scenario(scenario_id: str, body: MoveIn, who: Caller) -> dict[str, Any]:
        """Move the scenario to the next stage: ``submitted`` (or back to ``draft``) by its demand
        side; the rest by the program office (``list`` to publish, ``taker`` to record who took it,
        ``reason`` to reject or close). 409 with the moves there are when it cannot."""
        office = allowed(who, "run scenario lists")
        if body.to in OFFICE_MOVES and not office:
            may(who, "run scenario lists")  # 403
        if not office:
            may(who, "submit scenarios")
        taker = get_org(db, body.taker).id if body.taker else None
        return scenarios.move(
            scenario_id,
            body.to,
            who.username,
            org_id=None if office else who.org_id,
            office=office,
            reason=body.reason,
            list_name=body.list,
            taker_org_id=taker,
        )

    @router.post(f"{prefix}/scenarios/{{scenario_id}}/reviews")
    def review_scenario(scenario_id: str, body: ReviewIn, who: Caller) -> dict[str, Any]:
        """The reviewer's own review of a scenario under review: ``scores`` (every criterion of the
        rubric, 0 to 10) and a ``comment``; made again, it replaces theirs. 409
        ``scenario_not_in_review`` at any other stage."""
        may(who, "review scenarios")
        return reviews.score(scenario_id, who.username, body.model_dump())

    @router.get(f"{prefix}/scenarios/{{scenario_id}}/reviews")
    def list_reviews(scenario_id: str, who: Caller) -> dict[str, Any]:
        """The reviews: every one and their ``spread`` (each criterion's and the total's count, mean,
        min, max and standard deviation) for the office and auditors; a reviewer's own only."""
        return reviews.listed(scenario_id, reading(who))

    @router.post(f"{prefix}/scenarios/{{scenario_id}}/milestones", status_code=201)
    def add_milestone(scenario_id: str, body: MilestoneIn, who: Caller) -> dict[str, Any]:
        """A milestone of a taken scenario: ``title`` due on ``due`` (YYYY-MM-DD), by the office or
        the taker's members; 409 ``scenario_not_in_construction`` before taking or after acceptance."""
        return milestones.add(scenario_id, body.title, body.due, who.username, keeping(who))

    @router.post(f"{prefix}/scenarios/{{scenario_id}}/milestones/{{milestone_id}}/done")
    def milestone_done(
        scenario_id: str, milestone_id: str, body: MilestoneDoneIn, who: Caller
    ) -> dict[str, Any]:
        """Record a milestone done with its ``evidence`` (and ``done_on``, today by default)."""
        return milestones.done(
            scenario_id, milestone_id, body.evidence, who.username, keeping(who), body.done_on
        )

    @router.get(f"{prefix}/scenarios/{{scenario_id}}/milestones")
    def list_milestones(scenario_id: str, who: Caller) -> list[dict[str, Any]]:
        """A scenario's milestones by day, each with its ``state`` (open, late, done, done_late): for
        the office and auditors, the demand side and the taker."""
        may(who, "read scenarios")
        return milestones.listed(scenario_id, seen_by(who))

    @router.post(f"{prefix}/scenarios/{{scenario_id}}/applications", status_code=201)
    def apply_for_scenario(scenario_id: str, body: ApplicationIn, who: Caller) -> dict[str, Any]:
        """``org`` applies to take a published scenario (揭榜) with its ``proposal``; once per
        organization (409 ``scenario_applied``), never its own scenario; 409 ``scenario_not_open``
        before publication or once taken."""
        org = get_org(db, body.org)
        may(who, "apply for scenarios", org=org)
        return applications.apply(scenario_id, org.id, body.proposal, who.username)

    @router.get(f"{prefix}/scenarios/{{scenario_id}}/applications")
    def list_applications(scenario_id: str, who: Caller) -> list[dict[str, Any]]:
        """The applications the member may see: every one for the scenario's demand side, the
        office and auditors; an applicant's own only."""
        may(who, "read scenario applications")
        return applications.listed(scenario_id, seen_by(who))

    @router.post(f"{prefix}/scenarios/{{scenario_id}}/applications/{{application_id}}/shortlist")
    def shortlist_application(scenario_id: str, application_id: str, who: Caller) -> dict[str, Any]:
        """The demand side puts an application on its shortlist."""
        return applications.shortlist(scenario_id, application_id, deciding(who), who.username)

    @router.post(f"{prefix}/scenarios/{{scenario_id}}/applications/{{application_id}}/award")
    def award_application(
        scenario_id: str, application_id: str, who: Caller, body: DecisionIn | None = None
    ) -> dict[str, Any]:
        """The demand side awards the scenario to an application: the scenario is ``taken`` by its
        organization, the other applications are declined. Answers the scenario."""
        reason = body.reason if body else ""
        return applications.award(scenario_id, application_id, deciding(who), who.username, reason)

    @router.get(f"{prefix}/scenarios/{{scenario_id}}/matches")
    def scenario_matches(
        scenario_id: str, who: Caller, k: int = 10, min_grade: Literal["A", "B", "C", "D"] | None = None
    ) -> list[dict[str, Any]]:
        """The suppliers for a scenario the member may see, best first, each with its score and why
        (``matched_on``, cases in the industry, grade); ``min_grade`` keeps suppliers offering a
        platform model or agent graded at least that."""
        may(who, "read scenarios")
        scenarios.show(scenario_id, seen_by(who))  # 404 for one the member may not see
        return catalog.for_scenario(scenario_id, max(1, min(k, 100)), min_grade)

    @router.get(f"{prefix}/suppliers")
    def list_suppliers(who: Caller) -> list[dict[str, Any]]:
        """The supply catalog, by name: each supplier's capability, industries, regions, cases,
        certifications, and the platform models and agents it offers with their bench grades."""
        may(who, "read scenarios")
        return catalog.listed()

    @router.get(f"{prefix}/suppliers/{{org}}")
    def show_supplier(org: str, who: Caller) -> dict[str, Any]:
        """One supplier's entry."""
        may(who, "read scenarios")
        return catalog.show(get_org(db, org).id)

    @router.put(f"{prefix}/suppliers/{{org}}")
    def put_supplier(
        org: str, who: Caller, entry: Annotated[dict[str, Any] | None, Body()] = None
    ) -> dict[str, Any]:
        """Create or replace ``org``'s entry (its own members, or a platform admin): ``name``,
        ``summary``, ``industries``, ``regions``, ``cases``, ``certifications``, ``models``. The
        caller is checked before the body (another organization's member: 403, whatever it sent)."""
        found = get_org(db, org)
        may(who, "manage the supply catalog", org=found)
        return catalog.put(found.id, entry or {}, who.username)

    @router.get(f"{prefix}/suppliers/{{org}}/matches")
    def supplier_matches(org: str, who: Caller, k: int = 10) -> list[dict[str, Any]]:
        """The published scenarios for a supplier, best first, each with why."""
        found = get_org(db, org)
        may(who, "read scenarios")
        return catalog.for_supplier(found.id, max(1, min(k, 100)))

    return router
