"""``/v1/sandbox``: the data sandbox reached with an organization's API key (scope ``sandbox``): the
catalog, its own requests and grants, queries on the datasets granted to it, its query log, and the
releases of its sandbox compute jobs (their files once the data owner released them). The worker of a
sandbox job reaches its data and sends its files through ``/v1/compute/jobs/{id}/sandbox/…`` with
the job's own key.

No ``from __future__ import annotations`` here: FastAPI reads the route annotations at run time.
"""

import asyncio
import shutil
import tempfile
import urllib.parse
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import FileResponse, Response
from starlette.background import BackgroundTask

from dizuo.compute.jobs import Jobs
from dizuo.gateway.http import read_body
from dizuo.sandbox.jobs import SandboxJobs, download_headers
from dizuo.sandbox.service import Grantee, Sandbox, SandboxQueryIn, SandboxRequestIn

__all__ = ["PREFIX", "install_sandbox_routes"]

PREFIX = "/v1/sandbox"


def install_sandbox_routes(
    app: FastAPI, scoped: Any, sandbox: Sandbox, sandbox_jobs: SandboxJobs, jobs: Jobs
) -> None:
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

    @app.get(PREFIX + "/releases")
    async def list_releases(who: Who) -> dict[str, Any]:
        return {"object": "list", "data": await asyncio.to_thread(sandbox_jobs.releases, who.info.org_id)}

    @app.get(PREFIX + "/releases/{release_id}")
    async def show_release(release_id: str, who: Who) -> dict[str, Any]:
        return await asyncio.to_thread(sandbox_jobs.release, release_id, who.info.org_id)

    @app.get(PREFIX + "/releases/{release_id}/files/{name}")
    async def release_file(release_id: str, name: str, who: Who) -> Response:
        content, digest = await asyncio.to_thread(sandbox_jobs.file, release_id, name, who.info.org_id)
        return _attachment(content, digest, name)

    # ---- a sandbox job's worker: its own key only --------------------------------------------

    Worker = Annotated[Any, Depends(scoped(None))]

    @app.get("/v1/compute/jobs/{job_id}/sandbox/data")
    async def job_data(job_id: str, who: Worker) -> FileResponse:
        job = await asyncio.to_thread(jobs.worker_of, who.info, job_id, "sandbox")
        folder = Path(tempfile.mkdtemp(prefix="dizuo-sandbox-"))
        try:
            path = await asyncio.to_thread(sandbox_jobs.export, job, folder)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return FileResponse(
            path,
            media_type="application/vnd.apache.parquet",
            headers={"x-dizuo-dataset": urllib.parse.quote(job.spec["sandbox"]["dataset"])},
            background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
        )

    @app.post("/v1/compute/jobs/{job_id}/sandbox/outputs")
    async def job_output(job_id: str, name: str, request: Request, who: Worker) -> dict[str, Any]:
        job = await asyncio.to_thread(jobs.worker_of, who.info, job_id, "sandbox")
        declared = int(request.headers.get("content-length") or 0)
        content = await read_body(request.receive, declared, sandbox_jobs.output_bytes)  # 413 past the limit
        return await asyncio.to_thread(sandbox_jobs.stage, job, name, content)


def _attachment(content: bytes, digest: str, name: str) -> Response:
    return Response(
        content,
        media_type="application/octet-stream",
        headers=download_headers(name, digest),
    )
