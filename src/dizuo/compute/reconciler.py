"""The reconciler: follows every compute job not yet charged until its pool's Ray says it ended, and
charges it. It is what finds running jobs again after ``dizuo serve`` restarts, and settles the jobs
that ended while it was down, from Ray's recorded times.

Every worker of every replica runs one; a lease in the database lets exactly one of them act at a
time (the others only keep trying to take it, so one takes over within a lease's length when the
holder stops). Each round syncs the live jobs a few at a time; a job's sync is safe to run twice
(charging is guarded in the database), so a round overlapping a cancel or a lease hand-over charges
nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Sequence

from dizuo.compute.jobs import Jobs
from dizuo.compute.tables import ComputeJob
from dizuo.store import ordered_id
from dizuo.store.leases import release, take

__all__ = ["LEASE", "Reconciler"]

log = logging.getLogger("dizuo.compute")
LEASE = "compute.reconciler"


class Reconciler:
    def __init__(
        self,
        jobs: Jobs,
        *,
        interval: float = 2.0,
        lease_seconds: float = 15.0,
        concurrency: int = 16,
        also: Sequence[Callable[[], Awaitable[None]]] = (),
    ) -> None:
        self.jobs = jobs
        self.also = tuple(also)  # what else the lease's holder follows each round (the batches)
        self.interval = interval
        self.lease_seconds = lease_seconds
        self.concurrency = concurrency
        self.sample_seconds = 60.0  # the pools' utilization over time: one reading a minute
        self._sampled = float("-inf")
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{ordered_id()[-8:]}"
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="dizuo-compute-reconciler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
            with contextlib.suppress(Exception):
                await asyncio.to_thread(release, self.jobs.db, LEASE, self.holder)

    async def _run(self) -> None:
        while True:
            try:
                await self.round()
            except asyncio.CancelledError:
                raise
            except Exception:  # a database or cluster hiccup: the next round tries again
                log.exception("compute reconciler round failed")
            await asyncio.sleep(self.interval)

    async def round(self) -> int:
        """One round, if this worker holds the lease: sync every live job; how many were synced."""
        await self.jobs.refresh_pools()
        if not self.jobs.pools and not await asyncio.to_thread(self.jobs.any_live):
            return 0  # no compute here: not even the lease is taken
        if not await asyncio.to_thread(take, self.jobs.db, LEASE, self.holder, self.lease_seconds):
            return 0
        if time.monotonic() - self._sampled >= self.sample_seconds and self.jobs.pools:
            self._sampled = time.monotonic()
            try:
                await self.jobs.sample()
            except Exception:  # a sample missed is a gap in a chart, not a reason to stop following jobs
                log.exception("sampling the compute pools failed")
        live = await self.jobs.live()  # one query for the round, not one a job
        gate = asyncio.Semaphore(self.concurrency)

        async def one(job: ComputeJob) -> None:
            async with gate:
                try:
                    await self.jobs.sync(job.id, job)
                except Exception:
                    log.exception("syncing compute job %s failed", job.id)

        await asyncio.gather(*(one(job) for job in live))
        for follow in self.also:
            try:
                await follow()
            except Exception:
                log.exception(
                    "a compute reconciler's round of %s failed", getattr(follow, "__qualname__", follow)
                )
        return len(live)
