"""The data sandbox in the console: the catalog (description, classification, each column's
sensitivity, owner; never a row), the grants and requests a member may see (an organization's own
and those on the datasets it owns; the platform and auditors: all), the query editor for the
datasets granted to the member's organization, with its results and the groups withheld, and the
query log for owners and auditors, and the releases of sandbox compute jobs (what they wrote and
printed). Enterprises request datasets here and download released files; owners grant or refuse
the requests, revoke grants, and review releases: read, download, approve or refuse."""

import asyncio
import functools
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import Response

from dizuo.accounts.permissions import allowed, authorize, sees_all_orgs
from dizuo.accounts.sessions import SignedIn
from dizuo.console.forms import listed, parse_date
from dizuo.console.web import PREFIX, Console, redirect
from dizuo.errors import DizuoError, InvalidRequest
from dizuo.sandbox.jobs import SandboxJobs, download_headers
from dizuo.sandbox.service import Grantee, Sandbox

__all__ = ["routes"]

PAGE = f"{PREFIX}/sandbox"


def routes(console: Console, sandbox: Sandbox, releases: SandboxJobs | None = None) -> APIRouter:
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
        datasets = sandbox.datasets()
        return console.render(
            request,
            "sandbox.html",
            signed,
            status,
            datasets=datasets,
            grants=grants,
            requests=sandbox.requests(**scope) if records else [],
            queries=sandbox.queries(**scope, limit=50) if records else [],
            releases=releases.releases(**scope) if records and releases is not None else [],
            may_release=allowed(actor, "release sandbox results"),
            may_register=actor.org_id is not None
            and allowed(actor, "register sandbox datasets", org_id=actor.org_id),
            reg=context.pop("reg", {}),
            usable=sorted({g["dataset"] for g in mine}),
            may_query=actor.org_id is not None and allowed(actor, "query sandbox data", org_id=actor.org_id),
            may_grant=allowed(actor, "grant sandbox data"),
            may_request=actor.org_id is not None
            and allowed(actor, "request sandbox data", org_id=actor.org_id),
            owned={d["name"] for d in datasets if d["owner"] == signed.org_name}
            if actor.role != "platform-admin"
            else {d["name"] for d in datasets},
            by_name={d["name"]: d for d in datasets},
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

    @router.post(f"{PAGE}/datasets")
    async def register(
        request: Request,
        signed: Posted,
        file: Annotated[UploadFile | None, File()] = None,
        name: Annotated[str, Form()] = "",
        classification: Annotated[str, Form()] = "general",
        personal: Annotated[bool, Form()] = False,
        identifiers: Annotated[str, Form()] = "",
        quasi: Annotated[str, Form()] = "",
        sensitive: Annotated[str, Form()] = "",
        description: Annotated[str, Form()] = "",
        schedule: Annotated[str, Form()] = "",
    ) -> Response:
        """Register a dataset of the member's organization from the file sent with the form (or
        load new rows into one it registered); the page, or the form again with the error."""
        actor = signed.actor
        authorize(actor, "register sandbox datasets", org_id=actor.org_id)
        typed = {"name": name, "classification": classification, "personal": personal, "identifiers": identifiers, "quasi": quasi, "sensitive": sensitive, "description": description, "schedule": schedule}  # fmt: skip
        spec = {
            **typed,
            **{kind: listed(str(typed[kind])) for kind in ("identifiers", "quasi", "sensitive")},
        }
        try:
            if file is None or not file.filename:
                raise InvalidRequest("missing_param", param="file")
            with tempfile.TemporaryDirectory() as scratch:
                path = Path(scratch) / "upload"
                with path.open("wb") as out:
                    while chunk := await file.read(1 << 20):
                        out.write(chunk)
                await asyncio.to_thread(
                    sandbox.add_dataset, actor.org_id or "", spec, path, file.filename, actor.username
                )
        except DizuoError as exc:
            words = console.words(request)
            return await asyncio.to_thread(page, request, signed, exc.status, problem=exc.message(words.lang), failed="register", reg=typed)  # fmt: skip
        return redirect(PAGE)

    def owner(signed: SignedIn) -> Grantee:
        """The owner's act: a platform admin acts for any owner."""
        actor = signed.actor
        authorize(actor, "grant sandbox data")
        return Grantee("" if actor.role == "platform-admin" else actor.org_id or "", actor.username)

    async def acted(request: Request, signed: SignedIn, act: Any, *args: Any) -> Response:
        """Do *act*; back to the page, or the page with the error by its form."""

        def refused(status: int, problem: str) -> Response:
            return page(request, signed, status, problem=problem)

        return await console.acted(request, functools.partial(act, *args), refused, PAGE)

    @router.post(f"{PAGE}/requests")
    async def request_dataset(
        request: Request,
        signed: Posted,
        dataset: Annotated[str, Form()] = "",
        purpose: Annotated[str, Form()] = "",
    ) -> Response:
        actor = signed.actor
        authorize(actor, "request sandbox data", org_id=actor.org_id)
        who = Grantee(actor.org_id or "", actor.username)
        return await acted(request, signed, sandbox.request, dataset, who, purpose)

    @router.post(f"{PAGE}/requests/{{request_id}}/grant")
    async def grant_request(
        request: Request,
        signed: Posted,
        request_id: str,
        columns: Annotated[list[str], Form()] = [],  # noqa: B006  (FastAPI copies form defaults)
        k: Annotated[int, Form()] = 10,
        rows: Annotated[bool, Form()] = False,
        jobs: Annotated[bool, Form()] = False,
        epsilon: Annotated[str, Form()] = "",
        expires: Annotated[str, Form()] = "",
    ) -> Response:
        words = console.words(request)
        try:
            end = parse_date(expires, "expires", console.zone, end_of_day=True)
            budget = float(epsilon) if epsilon.strip() else None
        except (DizuoError, ValueError) as exc:
            problem = exc.message(words.lang) if isinstance(exc, DizuoError) else str(exc)
            return await asyncio.to_thread(page, request, signed, 400, problem=problem)
        conditions = {
            "columns": columns,
            "k": k,
            "rows": rows,
            "jobs": jobs,
            "epsilon": budget,
            "expires": end,
        }
        return await acted(request, signed, sandbox.grant_request, request_id, conditions, owner(signed))

    @router.post(f"{PAGE}/requests/{{request_id}}/refuse")
    async def refuse_request(
        request: Request, signed: Posted, request_id: str, reason: Annotated[str, Form()] = ""
    ) -> Response:
        return await acted(request, signed, sandbox.refuse, request_id, owner(signed), reason)

    @router.post(f"{PAGE}/grants/{{grant_id}}/revoke")
    async def revoke(request: Request, signed: Posted, grant_id: str) -> Response:
        return await acted(request, signed, sandbox.revoke, grant_id, owner(signed))

    if releases is None:
        return router
    reviewed = releases

    def reviewer(signed: SignedIn) -> Grantee:
        actor = signed.actor
        authorize(actor, "release sandbox results")
        return Grantee("" if actor.role == "platform-admin" else actor.org_id or "", actor.username)

    @router.post(f"{PAGE}/releases/{{release_id}}/approve")
    async def approve(request: Request, signed: Posted, release_id: str) -> Response:
        return await acted(
            request, signed, functools.partial(reviewed.decide, approve=True), release_id, reviewer(signed)
        )

    @router.post(f"{PAGE}/releases/{{release_id}}/refuse")
    async def refuse_release(
        request: Request, signed: Posted, release_id: str, reason: Annotated[str, Form()] = ""
    ) -> Response:
        decide = functools.partial(reviewed.decide, approve=False, reason=reason)
        return await acted(request, signed, decide, release_id, reviewer(signed))

    @router.get(f"{PAGE}/releases/{{release_id}}/files/{{name}}")
    async def release_file(request: Request, signed: Signed, release_id: str, name: str) -> Response:
        actor = signed.actor
        authorize(actor, "read sandbox records")
        viewer = None if sees_all_orgs(actor) else actor.org_id
        content, digest = await asyncio.to_thread(reviewed.file, release_id, name, viewer)
        return Response(
            content,
            media_type="application/octet-stream",
            headers=download_headers(name, digest),
        )

    return router
