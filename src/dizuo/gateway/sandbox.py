"""``/v1/sandbox``: the data sandbox reached with an organization's API key (scope ``sandbox``): the
catalog, its own requests and grants, queries on the datasets granted to it, and its query log.

No ``from __future__ import annotations`` here: FastAPI reads the route annotations at run time.
"""

import asyncio
from typing import Annotated, Any

from fastapi import Depends, FastAPI

from dizuo.sandbox.service import Grantee, Sandbox, SandboxQueryIn, SandboxRequestIn

__all__ = ["PREFIX", "install_sandbox_routes"]

PREFIX = "/v1/sandbox"


def install_sandbox_routes(app: FastAPI, scoped: Any, sandbox: Sandbox) -> None:
    """Add the sandbox routes to *app* (the knowledge-base app: its *scoped* makes the API-key
    dependency)."""
    Who = Annotated[Any, Depends(scoped("sandbox"))]

    def grantee(who: Any) -> Grantee:
        return Grantee(who.info.org_id, f"key:{who.info.key_id}")

    @app.get(PREFIX + "/datasets")
    async def list_datasets(who: Who) -> dict[str, Any]:
        return {"object": "list", "data": await asyncio.to_thread(sandbox.datasets)}

    @app.get(PREFIX + "/datasets/{name}")
    async def show_dataset(name: str, who: Who) -> dict[str, Any]:
        return await asyncio.to_thread(sandbox.dataset, name)

    @app.post(PREFIX + "/requests", status_code=201)
    async def request_dataset(body: SandboxRequestIn, who: Who) -> dict[str, Any]:
        return await asyncio.to_thread(sandbox.request, body.dataset, grantee(who), body.purpose, body.until)

    @app.get(PREFIX + "/requests")
    async def list_requests(who: Who) -> dict[str, Any]:
        return {"object": "list", "data": await asyncio.to_thread(sandbox.requests, who.info.org_id)}

    @app.get(PREFIX + "/grants")
    async def list_grants(who: Who) -> dict[str, Any]:
        return {"object": "list", "data": await asyncio.to_thread(sandbox.grants, who.info.org_id)}

    @app.get(PREFIX + "/grants/{grant_id}")
    async def show_grant(grant_id: str, who: Who) -> dict[str, Any]:
        return await asyncio.to_thread(sandbox.show_grant, grant_id, who.info.org_id)

    @app.post(PREFIX + "/query")
    async def run_query(body: SandboxQueryIn, who: Who) -> dict[str, Any]:
        return await asyncio.to_thread(sandbox.query, body.dataset, body.sql, grantee(who), body.epsilon)

    @app.get(PREFIX + "/queries")
    async def list_queries(who: Who, limit: int = 200) -> dict[str, Any]:
        listed = await asyncio.to_thread(sandbox.queries, who.info.org_id, None, max(1, min(limit, 5000)))
        return {"object": "list", "data": listed}
