"""Agents (智能体): the agents an organization's members see (their own and those listed for every
organization) with owner, description, tools, version, grade, and calls and calling organizations in
the last 30 days; platform admins and auditors see every organization's, and the adoption indicator:
active agents and the share of organizations that called at least one, by industry and district."""

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from dizuo.accounts.permissions import sees_all_orgs
from dizuo.accounts.service import visible_orgs
from dizuo.accounts.sessions import SignedIn
from dizuo.agents.service import Agents, adoption
from dizuo.console.web import PREFIX, Console

__all__ = ["routes"]


def routes(console: Console, agents: Agents) -> APIRouter:
    router = APIRouter()
    Signed = Annotated[SignedIn, Depends(console.signed_in)]

    @router.get(f"{PREFIX}/agents")
    async def listed(request: Request, signed: Signed, org: str = "") -> Response:
        org, org_id = await asyncio.to_thread(console.scoped_org, signed, org, "read agents")
        everyone = sees_all_orgs(signed.actor)
        found = await asyncio.to_thread(agents.catalog, org_id)
        indicator = await asyncio.to_thread(adoption, agents.db) if everyone and not org else None
        names = [o["name"] for o in await asyncio.to_thread(visible_orgs, console.db, signed.actor)]
        return console.render(
            request,
            "agents.html",
            signed,
            agents=found,
            org=org,
            orgs=sorted(names) if everyone else [],
            adoption=indicator,
        )

    return router
