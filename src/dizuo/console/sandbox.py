"""The data sandbox in the console: the catalog (description, classification, each column's
sensitivity, owner; never a row), the grants and requests a member may see (an organization's own
and those on the datasets it owns; the platform and auditors: all), the query editor for the
datasets granted to the member's organization, with its results and the groups withheld, and the
query log for owners and auditors. Owners revoke grants here."""

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from dizuo.accounts.permissions import allowed, authorize, sees_all_orgs
from dizuo.accounts.sessions import SignedIn
from dizuo.console.web import PREFIX, Console, redirect
from dizuo.errors import DizuoError
from dizuo.sandbox.service import Grantee, Sandbox

__all__ = ["routes"]

PAGE = f"{PREFIX}/sandbox"


def routes(console: Console, sandbox: Sandbox) -> APIRouter:
    router = APIRouter()
    Signed = Annotated[SignedIn, Depends(console.signed_in)]
    Posted = Annotated[SignedIn, Depends(console.posted)]

    def page(request: Request, signed: SignedIn, status: int = 200, **context: Any) -> Response:
        actor = signed.actor
        authorize(actor, "read the sandbox catalog")
        scope = {} if sees_all_orgs(actor) else {"org_id": actor.org_id, "owner_org_id": actor.org_id}
        records = allowed(actor, "read sandbox records")
        grants = sandbox.grants(**scope) if records else []
        mine = [g for g in grants if g["organization"] == signed.org_name and g["state"] == "active"]
        return console.render(
            request,
            "sandbox.html",
            signed,
            status,
            datasets=sandbox.datasets(),
            grants=grants,
            requests=sandbox.requests(**scope) if records else [],
            queries=sandbox.queries(**scope, limit=50) if records else [],
            usable=sorted({g["dataset"] for g in mine}),
            may_query=actor.org_id is not None and allowed(actor, "query sandbox data", org_id=actor.org_id),
            may_grant=allowed(actor, "grant sandbox data"),
            own_org=signed.org_name,
            **context,
        )

    @router.get(PAGE)
    async def show(request: Request, signed: Signed, dataset: str = "") -> Response:
        return await asyncio.to_thread(page, request, signed, form={"dataset": dataset})

    @router.post(f"{PAGE}/query")
    async def query(
        request: Request,
        signed: Posted,
        dataset: Annotated[str, Form()] = "",
        sql: Annotated[str, Form()] = "",
    ) -> Response:
        actor = signed.actor
        authorize(actor, "query sandbox data", org_id=actor.org_id)
        typed = {"dataset": dataset, "sql": sql}
        try:
            answer = await asyncio.to_thread(
                sandbox.query, dataset, sql, Grantee(actor.org_id or "", actor.username)
            )
        except DizuoError as exc:
            message = exc.message(console.words(request).lang)
            return await asyncio.to_thread(
                page, request, signed, exc.status, form=typed, refused=message, failed="query"
            )
        return await asyncio.to_thread(page, request, signed, form=typed, answer=answer)

    @router.post(f"{PAGE}/grants/{{grant_id}}/revoke")
    async def revoke(signed: Posted, grant_id: str) -> Response:
        actor = signed.actor
        authorize(actor, "grant sandbox data")
        owner = "" if actor.role == "platform-admin" else actor.org_id or ""
        await asyncio.to_thread(sandbox.revoke, grant_id, Grantee(owner, actor.username))
        return redirect(PAGE)

    return router
