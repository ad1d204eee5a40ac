"""A pool's Ray cluster through its Jobs API over HTTP: submit a job, read its state, stop it, read
its logs.

The REST API that Ray's ``JobSubmissionClient`` itself calls (``/api/jobs/``), spoken with aiohttp,
so the server does not import ray and one client serves clusters of several Ray versions. A job's
resources travel as Ray's entrypoint resources: its CPUs, its memory in bytes, and its accelerators
as the pool's accelerator resource (``NPU``, ``GPU`` …), so Ray starts it only on a node that has
them. The submission id is dizuo's job id: submitting it twice (a retry after a lost answer) is
refused by Ray, never run twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import aiohttp
import orjson

from dizuo.compute.inventory import bearer
from dizuo.compute.placement import JobRequest
from dizuo.errors import ComputeUnavailable

__all__ = ["RayJob", "RayJobs", "RayState"]

GIB = 2**30


class RayState(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    STOPPED = "STOPPED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"

    @property
    def ended(self) -> bool:
        return self in (RayState.STOPPED, RayState.SUCCEEDED, RayState.FAILED)


@dataclass(frozen=True, slots=True)
class RayJob:
    """A job as its cluster reports it; times are Ray's own (epoch milliseconds), what is charged."""

    submission_id: str
    state: RayState
    start_ms: int | None
    end_ms: int | None
    message: str
    driver_node: str | None = None  # where its entrypoint ran; None while (and if only ever) pending

    @property
    def ran(self) -> bool:
        """Whether its entrypoint ever ran (a job stopped while pending never did)."""
        return self.driver_node is not None

    @property
    def seconds(self) -> float | None:
        """How long it ran, by Ray's clock; None before it started."""
        if self.start_ms is None:
            return None
        return max(0, (self.end_ms or self.start_ms) - self.start_ms) / 1000


class RayJobs:
    """The Jobs API of the cluster at *address* (``http://head:8265``), for the pool *pool*."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        pool: str,
        address: str,
        *,
        timeout: float = 10.0,
        token: str | None = None,
    ) -> None:
        self.session = session
        self.pool = pool
        self.address = address.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.auth = bearer(token)

    async def _request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        data = orjson.dumps(body) if body is not None else None
        headers = {**self.auth, **({"content-type": "application/json"} if data is not None else {})}
        try:
            async with self.session.request(
                method, self.address + path, data=data, headers=headers, timeout=self.timeout
            ) as response:
                return response.status, await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ComputeUnavailable(pool=self.pool, detail=f"{type(exc).__name__}: {exc}") from exc

    def _parsed(self, status: int, raw: bytes) -> Any:
        if status >= 400:
            raise ComputeUnavailable(
                pool=self.pool, detail=f"HTTP {status} {raw[:300].decode('utf-8', 'replace')}"
            )
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ComputeUnavailable(pool=self.pool, detail=f"not JSON: {raw[:100]!r}") from exc

    async def _json(self, method: str, path: str, body: Any = None) -> Any:
        return self._parsed(*await self._request(method, path, body))

    async def submit(
        self,
        submission_id: str,
        entrypoint: str,
        request: JobRequest,
        accelerator_resource: str,
        *,
        runtime_env: Mapping[str, Any] | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> str:
        """Start *entrypoint* with *request*'s resources; return Ray's submission id (ours)."""
        body: dict[str, Any] = {
            "entrypoint": entrypoint,
            "submission_id": submission_id,
            "entrypoint_num_cpus": request.cpus,
            "entrypoint_memory": int(request.memory_gb * GIB),
            "metadata": dict(metadata or {}),
        }
        if request.accelerators:
            body["entrypoint_resources"] = {accelerator_resource: float(request.accelerators)}
        if runtime_env:
            body["runtime_env"] = dict(runtime_env)
        answer = await self._json("POST", "/api/jobs/", body)
        return str(answer.get("submission_id") or submission_id)

    async def get(self, submission_id: str) -> RayJob | None:
        """The job as the cluster knows it; None when it knows no such job."""
        status, raw = await self._request("GET", f"/api/jobs/{submission_id}")
        if status == 404:
            return None
        details = self._parsed(status, raw)
        return RayJob(
            submission_id,
            RayState(details["status"]),
            details.get("start_time"),
            details.get("end_time"),
            str(details.get("message") or ""),
            details.get("driver_node_id") or None,
        )

    async def upload(self, uri: str, data: bytes) -> None:
        """Upload a working directory's zip archive under *uri* (``gcs://_ray_pkg_….zip``), unless the
        cluster has it already: what Ray's own client does before submitting with a ``working_dir``."""
        protocol, _, name = uri.partition("://")
        path = f"/api/packages/{protocol}/{name}"
        status, _ = await self._request("GET", path)
        if status == 200:
            return
        try:
            async with self.session.put(
                self.address + path, data=data, timeout=self.timeout, headers=self.auth
            ) as response:
                if response.status != 200:
                    detail = (await response.read())[:300].decode("utf-8", "replace")
                    raise ComputeUnavailable(pool=self.pool, detail=f"HTTP {response.status} {detail}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ComputeUnavailable(pool=self.pool, detail=f"{type(exc).__name__}: {exc}") from exc

    async def stop(self, submission_id: str) -> bool:
        """Ask the cluster to stop the job; whether it was still running to be stopped."""
        answer = await self._json("POST", f"/api/jobs/{submission_id}/stop")
        return bool(answer.get("stopped"))

    async def logs(self, submission_id: str) -> str:
        """What the job printed so far."""
        answer = await self._json("GET", f"/api/jobs/{submission_id}/logs")
        return str(answer.get("logs") or "")
