"""Compute: the pools with their prices, clearance and what is free now, the jobs with their progress
and cost, and one job's placement table, charge and logs. An organization's members see its own jobs;
platform admins and auditors see every organization's."""

import asyncio
import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from dizuo.accounts.permissions import sees_all_orgs
from dizuo.accounts.service import visible_orgs
from dizuo.accounts.sessions import SignedIn
from dizuo.compute.jobs import Jobs, pool_view
from dizuo.console.web import PREFIX, Console
from dizuo.store import utcnow

__all__ = ["routes"]

DAY = dt.timedelta(hours=24)  # the utilization chart's span, in buckets of a quarter hour
BUCKET = dt.timedelta(minutes=15)


def routes(console: Console, jobs: Jobs) -> APIRouter:
    router = APIRouter()
    Signed = Annotated[SignedIn, Depends(console.signed_in)]

    def names(signed: SignedIn) -> dict[str, str]:
        return {o["id"]: o["name"] for o in visible_orgs(console.db, signed.actor)}

    @router.get(f"{PREFIX}/compute")
    async def compute(request: Request, signed: Signed, org: str = "") -> Response:
        org, org_id = await asyncio.to_thread(console.scoped_org, signed, org, "read compute jobs")
        await jobs.refresh_pools()
        current = await jobs.inventories.current(jobs.session())
        in_use = await asyncio.to_thread(jobs.in_use)
        pools = [
            {**pool_view(pool, current.get(pool.name)), **in_use.get(pool.name, {"running": 0, "waiting": 0})}
            for pool in jobs.pools.values()
        ]
        listed = await asyncio.to_thread(jobs.of, org_id)
        orgs = await asyncio.to_thread(names, signed)
        until = utcnow()
        starts, series = await asyncio.to_thread(jobs.utilization, until - DAY, until, BUCKET)
        chart = {
            "labels": [moment.astimezone(console.zone).strftime("%H:%M") for moment in starts],
            "series": {"pools": series},
        }
        return console.render(
            request,
            "compute.html",
            signed,
            pools=pools,
            jobs=listed,
            org=org,
            names=orgs,
            orgs=sorted(orgs.values()) if sees_all_orgs(signed.actor) else [],
            chart=chart,
        )

    @router.get(f"{PREFIX}/compute/jobs/{{job_id}}")
    async def job(request: Request, signed: Signed, job_id: str) -> Response:
        _, org_id = await asyncio.to_thread(console.scoped_org, signed, "", "read compute jobs")
        found: dict[str, Any] = await asyncio.to_thread(jobs.one, job_id, org_id)
        await jobs.refresh_pools()
        logs = await jobs.logs_of(found)
        orgs = await asyncio.to_thread(names, signed)
        return console.render(request, "compute_job.html", signed, job=found, logs=logs, names=orgs)

    return router
