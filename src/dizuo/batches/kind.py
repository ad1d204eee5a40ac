"""The compute job of a batch: its worker (:mod:`dizuo.batches.worker`) sends the lines through the
gateway, each charged as a call at the deployment's batch price; the job's pool time is not
charged. Only the platform submits these (:meth:`dizuo.batches.service.Batches.run`)."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Any

from dizuo.accounts.keys import KeyInfo
from dizuo.compute.ray_jobs import RayJobs
from dizuo.compute.tables import ComputeJob
from dizuo.errors import InvalidRequest

if TYPE_CHECKING:
    from dizuo.batches.service import Batches
    from dizuo.compute.jobs import JobBody

__all__ = ["BatchKind"]


class BatchKind:
    """``{"kind": "batch", "batch": id}``, submitted by the platform for a batch of ``/v1/batches``."""

    name = "batch"
    charges_time = False
    logs_private = False

    def __init__(self, batches: Batches | None) -> None:
        self.batches = batches

    def check(self, key: KeyInfo, body: JobBody) -> tuple[str, dict[str, Any]]:
        if self.batches is None or not body.batch:
            raise InvalidRequest(
                "invalid_param",
                param="kind",
                reason_zh="本平台未启用批处理",
                reason_en="this platform has no batches",
            )
        batch = self.batches.running(body.batch)
        return f"POST /v1/batches ({batch.endpoint}, {batch.total} lines)", {
            "batch": {"id": batch.id, "model": batch.model}
        }

    def command(self, job: ComputeJob, python: str) -> str:
        return shlex.join([python, "-m", "dizuo.batches.worker", "--job", job.id])

    def model(self, job: ComputeJob) -> str:
        return str(job.spec["batch"]["model"])

    async def ending(self, client: RayJobs, job: ComputeJob, state: str) -> str | None:
        if state != "succeeded":
            return None
        return f"批处理 / batch {job.spec['batch']['id']}"

    def ended(self, job_id: str) -> None:
        return None
