"""The Files and Batch APIs, as OpenAI's SDK calls them: ``/v1/files`` (upload, list, retrieve,
content, delete) and ``/v1/batches`` (create, retrieve, list, cancel), for an organization's API key
with the ``models`` scope; another organization's file or batch answers 404. Beside them, the routes
of a batch job's worker (its own key only): ``GET /v1/compute/jobs/{id}/batch/lines`` and
``POST /v1/compute/jobs/{id}/batch/refusals``.

No ``from __future__ import annotations`` here: FastAPI reads the route annotations at run time.
"""

import asyncio
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict

from dizuo.batches.service import Batches, BatchIn
from dizuo.compute.jobs import Jobs

__all__ = ["BATCHES", "FILES", "install_batch_routes"]

FILES = "/v1/files"
BATCHES = "/v1/batches"


class RefusalsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data: list[dict[str, Any]]


def install_batch_routes(app: FastAPI, scoped: Any, batches: Batches, jobs: Jobs | None) -> None:
    """Add the Files, Batch and batch-worker routes to *app* (the knowledge-base app)."""
    Who = Annotated[Any, Depends(scoped("models"))]
    Worker = Annotated[Any, Depends(scoped(None))]
    files = batches.files

    @app.post(FILES)
    async def upload(request: Request, who: Who) -> dict[str, Any]:
        declared = request.headers.get("content-length")
        return await files.upload(
            who.info.org_id,
            request.headers.get("content-type", ""),
            int(declared) if declared and declared.isdigit() else None,
            request.stream(),
        )

    @app.get(FILES)
    async def list_files(
        who: Who,
        purpose: str | None = None,
        limit: int = 10_000,
        after: str | None = None,
        order: str = "desc",
    ) -> dict[str, Any]:
        return await asyncio.to_thread(files.listed, who.info.org_id, purpose, limit, after, order)

    @app.get(FILES + "/{file_id}")
    async def get_file(file_id: str, who: Who) -> dict[str, Any]:
        from dizuo.batches.files import file_view

        return file_view(await asyncio.to_thread(files.get, who.info.org_id, file_id))

    @app.get(FILES + "/{file_id}/content")
    async def content(file_id: str, who: Who) -> StreamingResponse:
        row, handle = await asyncio.to_thread(files.content, who.info.org_id, file_id)

        async def stream() -> Any:
            try:
                while chunk := await asyncio.to_thread(handle.read, 1 << 20):
                    yield chunk
            finally:
                handle.close()

        headers = {
            "content-length": str(row.bytes),
            "content-disposition": f'attachment; filename="{row.id}.jsonl"',
        }
        return StreamingResponse(stream(), media_type="application/octet-stream", headers=headers)

    @app.delete(FILES + "/{file_id}")
    async def delete_file(file_id: str, who: Who) -> dict[str, Any]:
        return await asyncio.to_thread(files.delete, who.info.org_id, file_id)

    @app.post(BATCHES)
    async def create(body: BatchIn, who: Who) -> dict[str, Any]:
        return await batches.create(who.info, body)

    @app.get(BATCHES)
    async def list_batches(who: Who, limit: int = 20, after: str | None = None) -> dict[str, Any]:
        return await asyncio.to_thread(batches.listed, who.info, limit, after)

    @app.get(BATCHES + "/{batch_id}")
    async def get_batch(batch_id: str, who: Who) -> dict[str, Any]:
        return await asyncio.to_thread(batches.get, who.info, batch_id)

    @app.post(BATCHES + "/{batch_id}/cancel")
    async def cancel(batch_id: str, who: Who) -> dict[str, Any]:
        return await batches.cancel(who.info, batch_id)

    if jobs is None:
        return

    @app.get("/v1/compute/jobs/{job_id}/batch/lines")
    async def lines(job_id: str, who: Worker, limit: int = 256, after: int = -1) -> Response:
        batch_id = await asyncio.to_thread(jobs.batch_of, who.info, job_id)
        page = await asyncio.to_thread(batches.pending, batch_id, limit, after)
        # Serialized at once: a page of requests through FastAPI's encoder cost more than its lines.
        return Response(orjson.dumps(page), media_type="application/json")

    @app.post("/v1/compute/jobs/{job_id}/batch/refusals")
    async def refusals(job_id: str, body: RefusalsIn, who: Worker) -> dict[str, Any]:
        batch_id = await asyncio.to_thread(jobs.batch_of, who.info, job_id)
        return await asyncio.to_thread(batches.refusals, batch_id, body.data)
