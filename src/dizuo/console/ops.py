"""Deployments with health and data-class clearance, the playground (models and agents, an agent's
steps shown as they happen), and the data-risk guard's events."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from dizuo.accounts.permissions import authorize, sees_all_orgs
from dizuo.accounts.service import visible_orgs
from dizuo.accounts.sessions import SignedIn
from dizuo.agents.service import published_names
from dizuo.console.i18n import pinyin_key
from dizuo.console.web import PREFIX, Console
from dizuo.guard.events import list_events
from dizuo.routing.clearance import RANK

__all__ = ["routes"]

EVENTS_SHOWN = 500


def routes(console: Console) -> APIRouter:
    router = APIRouter()
    db = console.db
    Signed = Annotated[SignedIn, Depends(console.signed_in)]

    @router.get(f"{PREFIX}/deployments")
    def deployments(request: Request, signed: Signed) -> Response:
        authorize(signed.actor, "read deployments")
        rows = sorted(console.deployments(), key=lambda d: (d["model"], d["priority"], d["name"]))
        return console.render(request, "deployments.html", signed, deployments=rows, classes=list(RANK))

    @router.get(f"{PREFIX}/playground")
    def playground(request: Request, signed: Signed) -> Response:
        """Chat through the real /v1 with a key the member pastes: the same path every client takes."""
        authorize(signed.actor, "use the playground")
        # Agents too: the member's organization's and those listed for every organization (all of
        # them for operators: the pasted key decides what answers).
        agents = published_names(db, None if sees_all_orgs(signed.actor) else signed.actor.org_id)
        return console.render(request, "playground.html", signed, models=console.chat_models() + agents)

    @router.get(f"{PREFIX}/guard")
    def guard(request: Request, signed: Signed, org: str = "") -> Response:
        actor = signed.actor
        org, org_id = console.scoped_org(signed, org, "read guard events")
        events = list_events(db, org_id=org_id, limit=EVENTS_SHOWN)
        names = {o["id"]: o["name"] for o in visible_orgs(db, actor)}
        orgs = sorted(names.values(), key=pinyin_key) if sees_all_orgs(actor) else []
        return console.render(
            request, "guard.html", signed, events=events, org=org, orgs=orgs, names=names, shown=EVENTS_SHOWN
        )

    return router
