"""Scenario lists in the console: the scenarios a member may see (the office and auditors: all; an
organization's members: their own and every published one), and the public list of published
scenarios, served without sign-in, contacts hidden."""

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from dizuo.accounts.permissions import authorize, sees_all_orgs
from dizuo.accounts.sessions import SignedIn
from dizuo.console.web import PREFIX, Console
from dizuo.scenarios.service import STAGES, Scenarios

__all__ = ["routes"]


def routes(console: Console) -> APIRouter:
    router = APIRouter()
    Signed = Annotated[SignedIn, Depends(console.signed_in)]
    scenarios = Scenarios(console.db)

    @router.get(f"{PREFIX}/scenarios")
    async def listed(request: Request, signed: Signed, status: str = "") -> Response:
        authorize(signed.actor, "read scenarios")
        org_id = None if sees_all_orgs(signed.actor) else signed.actor.org_id
        found = await asyncio.to_thread(scenarios.listed, org_id, status or None)
        return console.render(
            request, "scenarios.html", signed, scenarios=found, stage=status, stages=STAGES, public=False
        )

    @router.get(f"{PREFIX}/scenarios/public")
    async def public(request: Request) -> Response:
        """Anyone may read the published lists: no sign-in, no contacts."""
        found = await asyncio.to_thread(scenarios.public)
        return console.render(
            request, "scenarios.html", None, scenarios=found, stage="", stages=STAGES, public=True
        )

    return router
