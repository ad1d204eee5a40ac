"""The compute API: ``GET /v1/compute/pools`` (the pools an API key may use, with prices and free
capacity) and the jobs: ``POST /v1/compute/jobs``, ``GET /v1/compute/jobs[/{id}]``,
``GET /v1/compute/jobs/{id}/logs`` (``?follow=true`` streams until the job ends),
``POST /v1/compute/jobs/{id}/cancel``. A key sees and acts on its own organization's jobs only
(another's answer 404, as a job that does not exist).

No ``from __future__ import annotations`` here: FastAPI reads the route annotations at run time.

A key sees the pools cleared for its data class (and, for core data, those in its organization's
region), each with its prices per hour and what its Ray cluster has now (nodes, accelerators, CPUs,
memory: total and free), read live and kept a few seconds; a pool whose cluster does not answer is
listed as down. Needs the ``compute`` scope.
"""

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import aiohttp
from fastapi import Depends, FastAPI
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict

from dizuo.accounts.keys import KeyInfo
from dizuo.compute.jobs import ENDED, JobBody, Jobs, pool_view
from dizuo.compute.placement import clearance
from dizuo.config import PoolConfig

__all__ = ["PREFIX", "install_compute_routes"]


class VectorsIn(BaseModel):
    """``POST /v1/compute/jobs/{id}/kb/vectors``: ``{"data": [{"id": chunk id, "embedding": base64
    float32}]}``."""

    model_config = ConfigDict(extra="forbid")

    data: list[dict[str, Any]]


PREFIX = "/v1/compute"


def usable(key: KeyInfo, pool: PoolConfig) -> bool:
    """Whether *key*'s jobs may run on *pool*, by the rule placement applies."""
    return clearance(pool, key.data_class, key.org_region) is None


def install_compute_routes(app: FastAPI, scoped: Any, jobs: Jobs) -> None:
    """Add the compute routes to *app* (the knowledge-base app: its *scoped* makes the API-key
    dependency, its HTTP client reads the clusters)."""
    auth = scoped("compute")
    session: Callable[[], aiohttp.ClientSession] = app.state.session
    inventories = jobs.inventories
    Who = Annotated[Any, Depends(auth)]

    @app.get(PREFIX + "/pools")
    async def list_pools(who: Who) -> dict[str, Any]:
        await jobs.refresh_pools()
        shown = [pool for pool in jobs.pools.values() if usable(who.info, pool)]
        current = await inventories.current(session()) if shown else {}
        return {"object": "list", "data": [pool_view(pool, current.get(pool.name)) for pool in shown]}

    @app.post(PREFIX + "/jobs")
    async def submit(body: JobBody, who: Who) -> dict[str, Any]:
        return await jobs.submit(who.info, body)

    @app.get(PREFIX + "/jobs")
    async def list_jobs(who: Who, limit: int = 100) -> dict[str, Any]:
        listed = await asyncio.to_thread(jobs.listed, who.info, max(1, min(limit, 1000)))
        return {"object": "list", "data": listed}

    @app.get(PREFIX + "/jobs/{job_id}")
    async def show(job_id: str, who: Who) -> dict[str, Any]:
        return await asyncio.to_thread(jobs.get, who.info, job_id)

    @app.post(PREFIX + "/jobs/{job_id}/cancel")
    async def cancel(job_id: str, who: Who) -> dict[str, Any]:
        return await jobs.cancel(who.info, job_id)

    @app.get(PREFIX + "/jobs/{job_id}/logs")
    async def logs(job_id: str, who: Who, follow: bool = False) -> StreamingResponse:
        key = who.info
        first = await jobs.logs(key, job_id)  # 404 before the stream starts, for another's job

        async def stream() -> AsyncIterator[bytes]:
            sent = first
            yield first.encode()
            while follow:
                state = (await asyncio.to_thread(jobs.get, key, job_id))["state"]
                await asyncio.sleep(0.5)
                text = await jobs.logs(key, job_id)
                if len(text) > len(sent):
                    yield text[len(sent) :].encode()
                    sent = text
                if state in ENDED:
                    break

        return StreamingResponse(stream(), media_type="text/plain; charset=utf-8")

    # ---- a re-embedding job's worker: its own key only ---------------------------------------

    Worker = Annotated[Any, Depends(scoped(None))]

    @app.get(PREFIX + "/jobs/{job_id}/kb/chunks")
    async def kb_pending(job_id: str, who: Worker, limit: int = 512) -> dict[str, Any]:
        kb_id = await asyncio.to_thread(jobs.reindexing, who.info, job_id)
        return await asyncio.to_thread(jobs.reindex.pending, kb_id, job_id, limit)

    @app.post(PREFIX + "/jobs/{job_id}/kb/vectors")
    async def kb_stage(job_id: str, body: VectorsIn, who: Worker) -> dict[str, Any]:
        kb_id = await asyncio.to_thread(jobs.reindexing, who.info, job_id)
        return await asyncio.to_thread(jobs.reindex.stage, kb_id, job_id, body.data)

    @app.post(PREFIX + "/jobs/{job_id}/kb/commit")
    async def kb_commit(job_id: str, who: Worker) -> dict[str, Any]:
        return await asyncio.to_thread(jobs.commit_reindex, who.info, job_id)
