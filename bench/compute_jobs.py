"""Compute jobs: what dizuo adds to submitting a job, and what following 1,000 jobs in flight costs.

    .venv/bin/python bench/compute_jobs.py [--submits 30] [--jobs 1000]

1. **Submission.** A real single-node Ray head on loopback. The same tiny job is submitted alternately
   through ``POST /v1/compute/jobs`` of an in-process platform (SQLite; key check, placement with the
   pool's inventory, the durable hold, the job's record, the submission to Ray, the first sync) and
   straight to Ray with Ray's own ``JobSubmissionClient.submit_job``. Each dizuo submission must answer
   200 with the job placed on the pool and sent (pending, running or ended), else the run stops.
2. **Reconciling.** 1,000 jobs in flight (running) on a pool whose Ray Jobs API is a local HTTP server
   answering each job's state as Ray does: one reconciler round (take the lease, list the live jobs,
   read each record and its job's state) against the bare minimum in the same run, the 1,000 HTTP
   reads alone at the same concurrency. Every job must still be running and unsettled afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import httpx
import yaml
from aiohttp import web

from dizuo.accounts import create_key, create_org
from dizuo.accounts.service import change_org
from dizuo.app import create_app, load_settings
from dizuo.billing.meter import Meter
from dizuo.billing.service import topup
from dizuo.compute.head import EmbeddedHead
from dizuo.compute.inventory import Inventories
from dizuo.compute.jobs import Jobs
from dizuo.compute.reconciler import Reconciler
from dizuo.compute.tables import ComputeJob
from dizuo.config import PoolConfig
from dizuo.store import Database, utcnow

REQUEST = {"cpus": 0.01, "memory": 0.01, "max_hours": 1}


async def submissions(count: int, folder: Path) -> None:
    head = EmbeddedHead(resources={"NPU": 2}, cpus=2)
    address = head.start(120)
    try:
        from ray.job_submission import JobSubmissionClient

        config = folder / "dizuo.yaml"
        pool = {"name": "local", "ray": address, "price": {"cpu_hour": "0.1"}}
        config.write_text(yaml.safe_dump({"local": False, "pools": [pool]}), encoding="utf-8")
        settings = load_settings(config, data_dir=folder, database_url=f"sqlite:///{folder}/bench.db")
        db = Database(settings.resolved_database_url)
        db.upgrade()
        create_org(db, "bench")
        topup(db, "bench", 1_000_000_000)
        change_org(db, "bench", allow_scripts=True)
        key = create_key(db, "bench", scopes=["compute"]).key
        platform = create_app(settings)
        await platform.gateway.startup()
        direct = JobSubmissionClient(address)
        through: list[float] = []
        bare: list[float] = []
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=platform),
            base_url="http://bench",
            headers={"authorization": f"Bearer {key}"},
            timeout=60,
        ) as client:

            async def via_dizuo() -> None:
                started = time.perf_counter()
                answer = await client.post("/v1/compute/jobs", json={"entrypoint": "true", **REQUEST})
                through.append(time.perf_counter() - started)
                job = answer.json()
                if answer.status_code != 200 or job.get("pool") != "local" or job.get("state") == "placing":
                    sys.exit(f"dizuo answered {answer.status_code}: {answer.text[:300]}; nothing timed")

            def via_ray() -> None:
                started = time.perf_counter()
                direct.submit_job(
                    entrypoint="true",
                    submission_id=f"bench-{uuid.uuid4().hex[:12]}",
                    entrypoint_num_cpus=0.01,
                    entrypoint_memory=int(0.01 * 2**30),
                )
                bare.append(time.perf_counter() - started)

            await via_dizuo()  # warm up both (the first reads the pool's inventory, imports, connects)
            via_ray()
            through.clear()
            bare.clear()
            for _ in range(count // 5):  # alternated, five at a time: the machine's speed drifts
                for _ in range(5):
                    await via_dizuo()
                for _ in range(5):
                    await asyncio.to_thread(via_ray)
        await platform.gateway.shutdown()
        p50, base = statistics.median(through) * 1e3, statistics.median(bare) * 1e3
        print(f"submitting a job ({len(through)} each, alternated, one Ray head on loopback):")
        print(f"  through dizuo           p50 {p50:.1f} ms  max {max(through) * 1e3:.1f} ms")
        print(f"  Ray's JobSubmissionClient p50 {base:.1f} ms  max {max(bare) * 1e3:.1f} ms")
        print(
            f"  dizuo adds              {p50 - base:+.1f} ms at the median ({p50 / base:.2f}x; goal <= +50 ms)"
        )
    finally:
        head.stop()


async def reconciling(count: int, folder: Path) -> None:
    started_ms = int(time.time() * 1000)

    async def job(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "status": "RUNNING",
                "start_time": started_ms,
                "end_time": None,
                "message": "",
                "driver_node_id": "node",
                "submission_id": request.match_info["id"],
            }
        )

    app = web.Application()
    app.router.add_get("/api/jobs/{id}", job)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    address = f"http://127.0.0.1:{port}"
    db = Database(f"sqlite:///{folder}/reconcile.db")
    db.upgrade()
    org = create_org(db, "bench")
    pool = PoolConfig.model_validate({"name": "fake", "ray": address, "start_timeout_seconds": 3600})
    now = utcnow()
    with db.session() as session:
        session.add_all(
            ComputeJob(
                id=uuid.uuid4().hex,
                org_id=org.id,
                key_id="k",
                kind="script",
                entrypoint="true",
                spec={"request": {"cpus": 1, "memory_gb": 1, "max_hours": 24}},
                data_class="general",
                state="running",
                pool="fake",
                region="default",
                considered=[],
                blocked=[],
                attempts=1,
                hourly="0.1",
                held=0,
                held_own=0,
                held_vouchers=[],
                submitted_at=now,
                started_at=now,
                created_at=now,
                updated_at=now,
            )
            for _ in range(count)
        )
    async with aiohttp.ClientSession() as http:
        jobs = Jobs(db, Meter(db), [pool], Inventories([pool], {}), lambda: http)
        reconciler = Reconciler(jobs)
        ids = [job.id for job in await jobs.live()]

        async def bare() -> None:
            gate = asyncio.Semaphore(reconciler.concurrency)

            async def one(job_id: str) -> None:
                async with gate, http.get(f"{address}/api/jobs/{job_id}") as response:
                    await response.read()

            await asyncio.gather(*(one(job_id) for job_id in ids))

        await reconciler.round()  # warm up
        await bare()
        rounds, baseline = [], []
        for _ in range(5):
            started = time.perf_counter()
            synced = await reconciler.round()
            rounds.append(time.perf_counter() - started)
            started = time.perf_counter()
            await bare()
            baseline.append(time.perf_counter() - started)
            if synced != count:
                sys.exit(f"the round synced {synced} jobs of {count}: nothing timed")
    with db.session() as session:
        states = {j.state for j in session.query(ComputeJob)}
        settled = session.query(ComputeJob).filter(ComputeJob.settled_at.isnot(None)).count()
    if states != {"running"} or settled:
        sys.exit(f"after the rounds the jobs are {states}, {settled} settled: nothing timed")
    await runner.cleanup()
    db.dispose()
    took, base = statistics.median(rounds), statistics.median(baseline)
    print(f"reconciling {count} running jobs (one round, 5 rounds each, SQLite):")
    print(f"  a reconciler round      {took * 1e3:.0f} ms  ({took / count * 1e3:.2f} ms a job)")
    print(f"  the HTTP reads alone    {base * 1e3:.0f} ms  ({base / count * 1e3:.2f} ms a job)")
    print(f"  ratio                   {took / base:.2f}x the bare reads")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--submits", type=int, default=30)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--skip-ray", action="store_true", help="Only the reconciler (no Ray head needed).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dizuo-bench-") as folder:
        if not args.skip_ray:
            asyncio.run(submissions(args.submits, Path(folder)))
        asyncio.run(reconciling(args.jobs, Path(folder)))


if __name__ == "__main__":
    main()
