"""Admin routes of the scenario lists: ``/admin/v1/scenarios``. The demand side's members create,
change and submit their own; the program office (platform admins, for now) reviews, selects,
publishes and follows them; auditors read all; every organization reads the published ones
(another organization's contact hidden).

No ``from __future__ import annotations``: FastAPI reads the route annotations at run time.
"""

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from dizuo.accounts import get_org
from dizuo.accounts.members import Actor
from dizuo.accounts.permissions import allowed, sees_all_orgs
from dizuo.admin.schemas import MoveIn, ScenarioIn
from dizuo.scenarios.service import OFFICE_MOVES, Scenarios

__all__ = ["scenario_routes"]


def scenario_routes(
    prefix: str, scenarios: Scenarios, actor: Callable[..., Actor], may: Callable[..., None], db: Any
) -> APIRouter:
    router = APIRouter()
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

    return router
