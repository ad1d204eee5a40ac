"""Admin routes of the data sandbox: ``/admin/v1/sandbox``. A data owner's admins register datasets
and grant or refuse requests for them; an enterprise's members request datasets and query them;
auditors read every record. The catalog (never rows) is open to every member.

No ``from __future__ import annotations``: FastAPI reads the route annotations at run time.
"""

import asyncio
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from dizuo.accounts import get_org
from dizuo.accounts.members import Actor
from dizuo.accounts.permissions import authorize, sees_all_orgs
from dizuo.errors import InvalidRequest
from dizuo.sandbox.jobs import SandboxJobs, download_headers
from dizuo.sandbox.service import Grantee, GrantIn, Sandbox, SandboxQueryIn, SandboxRequestIn

__all__ = ["sandbox_routes"]


class SandboxGrantIn(GrantIn):
    dataset: str
    org: str


class SandboxRefuseIn(BaseModel):
    reason: str = Field("", max_length=2000)


def _names(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def sandbox_routes(
    prefix: str,
    sandbox: Sandbox,
    actor: Callable[..., Actor],
    may: Callable[..., None],
    db: Any,
    jobs: SandboxJobs | None = None,
) -> APIRouter:
    router = APIRouter()
    Caller = Annotated[Actor, Depends(actor)]
    base = f"{prefix}/sandbox"

    def as_owner(who: Actor) -> Grantee:
        """An owner's act: a platform admin acts for any owner (no organization to check)."""
        return Grantee("" if who.role == "platform-admin" else who.org_id or "", who.username)

    def scope(who: Actor) -> dict[str, str | None]:
        """Whose records *who* reads: all (the platform, auditors), or an organization's own and
        those on the datasets it owns."""
        return {} if sees_all_orgs(who) else {"org_id": who.org_id, "owner_org_id": who.org_id}

    @router.get(f"{base}/datasets")
    def list_datasets(who: Caller) -> list[dict[str, Any]]:
        """The catalog: each dataset's description, classification, columns and owner (never rows)."""
        may(who, "read the sandbox catalog")
        return sandbox.datasets()

    @router.post(f"{base}/datasets", status_code=201)
    async def add_dataset(
        request: Request,
        who: Caller,
        name: str,
        owner: str,
        filename: Annotated[str, Query(description="The file's name: its suffix gives the format.")],
        classification: Literal["general", "important", "core"],
        personal: bool = False,
        identifiers: str = "",
        quasi: str = "",
        sensitive: str = "",
        bounds: Annotated[str, Query(description='JSON: {"column": [low, high]}')] = "{}",
        description: str = "",
        schedule: str = "",
    ) -> dict[str, Any]:
        """Register a dataset of ``owner`` from the file sent as the raw body (``?filename=`` names
        it: CSV in UTF-8 or GB18030, XLSX, Parquet), or load new rows into one it registered (the
        file must have the registered columns). Core data is refused. The body is read only once the
        caller may register for ``owner``."""
        org = get_org(db, owner)
        may(who, "register sandbox datasets", org=org)
        try:
            parsed = json.loads(bounds or "{}")
        except ValueError:
            raise InvalidRequest("invalid_param", param="bounds", reason_zh="须是 JSON", reason_en="must be JSON") from None  # fmt: skip
        spec = {
            "name": name,
            "classification": classification,
            "personal": personal,
            "identifiers": _names(identifiers),
            "quasi": _names(quasi),
            "sensitive": _names(sensitive),
            "bounds": parsed,
            "description": description,
            "schedule": schedule,
        }
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "upload"
            with path.open("wb") as out:
                async for chunk in request.stream():
                    out.write(chunk)
            return await asyncio.to_thread(sandbox.add_dataset, org.id, spec, path, filename, who.username)

    @router.get(f"{base}/datasets/{{name}}")
    def show_dataset(name: str, who: Caller) -> dict[str, Any]:
        """One dataset's catalog entry."""
        may(who, "read the sandbox catalog")
        return sandbox.dataset(name)

    @router.post(f"{base}/requests", status_code=201)
    def request_dataset(body: SandboxRequestIn, who: Caller) -> dict[str, Any]:
        """``org`` asks to use a dataset for a purpose (until a date)."""
        org = get_org(db, body.org or "")
        may(who, "request sandbox data", org=org)
        return sandbox.request(body.dataset, Grantee(org.id, who.username), body.purpose, body.until)

    @router.get(f"{base}/requests")
    def list_requests(who: Caller) -> list[dict[str, Any]]:
        """Requests, newest first: all for the platform and auditors; an organization's own and
        those for the datasets it owns for its members."""
        may(who, "read sandbox records")
        return sandbox.requests(**scope(who))

    @router.post(f"{base}/requests/{{request_id}}/refuse")
    def refuse_request(request_id: str, body: SandboxRefuseIn, who: Caller) -> dict[str, Any]:
        """The dataset's owner refuses a request."""
        may(who, "grant sandbox data")
        return sandbox.refuse(request_id, as_owner(who), body.reason)

    @router.post(f"{base}/grants", status_code=201)
    def grant_dataset(body: SandboxGrantIn, who: Caller) -> dict[str, Any]:
        """The dataset's owner grants it to ``org`` with conditions: ``columns``, ``k`` (the fewest
        rows an aggregate describes), ``rows`` (row-level results may leave), ``epsilon`` (privacy
        budget), ``query_budget``, ``expires``."""
        owner = sandbox.owner_of(body.dataset)
        authorize(who, "grant sandbox data", org_id=owner)
        org = get_org(db, body.org)
        conditions = GrantIn.model_validate(body.model_dump(exclude={"dataset", "org"}))
        return sandbox.grant(body.dataset, org.id, conditions, Grantee(owner, who.username))

    @router.get(f"{base}/grants")
    def list_grants(who: Caller) -> list[dict[str, Any]]:
        """Grants, newest first, each with what it has used (queries, ε) and its state."""
        may(who, "read sandbox records")
        return sandbox.grants(**scope(who))

    @router.get(f"{base}/grants/{{grant_id}}")
    def show_grant(grant_id: str, who: Caller) -> dict[str, Any]:
        """One grant (404 outside its grantee, its owner, the platform and auditors)."""
        may(who, "read sandbox records")
        return sandbox.show_grant(grant_id, None if sees_all_orgs(who) else who.org_id)

    @router.post(f"{base}/grants/{{grant_id}}/revoke")
    def revoke_grant(grant_id: str, who: Caller) -> dict[str, Any]:
        """The dataset's owner revokes a grant; its next query is refused with 403."""
        may(who, "grant sandbox data")
        return sandbox.revoke(grant_id, as_owner(who))

    @router.post(f"{base}/query")
    async def run_query(body: SandboxQueryIn, who: Caller) -> dict[str, Any]:
        """Run SQL on a granted dataset for ``org``: ``{"columns", "rows", "suppressed", "notes"}``;
        a refused query is 400 with where in the SQL."""
        org = get_org(db, body.org or "")
        may(who, "query sandbox data", org=org)
        return await asyncio.to_thread(
            sandbox.query, body.dataset, body.sql, Grantee(org.id, who.username), body.epsilon
        )

    @router.get(f"{base}/queries")
    def list_queries(who: Caller, limit: int = 200) -> list[dict[str, Any]]:
        """The query log, newest first: each query, its decision, what left, what it spent."""
        may(who, "read sandbox records")
        return sandbox.queries(**scope(who), limit=max(1, min(limit, 5000)))

    if jobs is None:
        return router
    released = jobs

    @router.get(f"{base}/releases")
    def list_releases(who: Caller) -> list[dict[str, Any]]:
        """What sandbox compute jobs wrote out, newest first: all for the platform and auditors; an
        organization's own and those on the datasets it owns for its members."""
        may(who, "read sandbox records")
        return released.releases(**scope(who))

    @router.get(f"{base}/releases/{{release_id}}")
    def show_release(release_id: str, who: Caller) -> dict[str, Any]:
        """One release: its files (size, SHA-256, what the guard found) and, for the owner, what the
        job printed."""
        may(who, "read sandbox records")
        return released.release(release_id, None if sees_all_orgs(who) else who.org_id)

    @router.get(f"{base}/releases/{{release_id}}/files/{{name}}")
    def release_file(release_id: str, name: str, who: Caller) -> Response:
        """A file of a release: the owner's members read it to review it; the job's organization
        once it is released (403 before)."""
        may(who, "read sandbox records")
        content, digest = released.file(release_id, name, None if sees_all_orgs(who) else who.org_id)
        return Response(
            content,
            media_type="application/octet-stream",
            headers=download_headers(name, digest),
        )

    @router.post(f"{base}/releases/{{release_id}}/approve")
    def approve_release(release_id: str, who: Caller) -> dict[str, Any]:
        """The dataset's owner releases a job's files and what it printed to the job's organization."""
        may(who, "release sandbox results")
        return released.decide(release_id, as_owner(who), approve=True)

    @router.post(f"{base}/releases/{{release_id}}/refuse")
    def refuse_release(release_id: str, body: SandboxRefuseIn, who: Caller) -> dict[str, Any]:
        """The dataset's owner refuses a release (a reason is required); its files are deleted."""
        may(who, "release sandbox results")
        return released.decide(release_id, as_owner(who), approve=False, reason=body.reason)

    return router
