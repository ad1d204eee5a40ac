"""Compute jobs: submitted by an organization's key, placed on a pool, run by that pool's Ray, followed
to their end and charged for the time they ran.

A job's life: ``queued → placing → pending → running → succeeded | failed | cancelled``. The record
in the database is the platform's truth; Ray's own record (under the same id) is what the job did.
Submission places the job (a request no pool can ever run is refused with each pool's reason, 400,
nothing written), holds its worst case durably (402 when the wallet cannot cover it, nothing written),
writes the record and sends it to the chosen pool. :mod:`dizuo.compute.reconciler` follows it from
there (:meth:`Jobs.sync`): a job not started within its pool's start timeout, or whose pool's cluster
forgot it or stopped answering before it started, is placed again on another pool (that one blocked
for it), up to :data:`MAX_ATTEMPTS`; an ended job is charged, once, for the seconds it ran.

Charged time: from the later of Ray's start time (when the job was submitted to its cluster) and the
last moment the platform saw it still waiting for resources, to Ray's end time; at most its maximum
duration (the reconciler stops a job that reaches it). A job that never ran costs nothing.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import datetime as dt
import hashlib
import io
import logging
import math
import re
import sys
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import aiohttp
import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from dizuo.accounts.keys import KeyInfo
from dizuo.accounts.service import create_key, revoke_key
from dizuo.accounts.tables import Organization
from dizuo.billing.holds import Scope
from dizuo.billing.meter import Meter
from dizuo.billing.money import format_cny
from dizuo.billing.standing import Held, close, open_hold, parts
from dizuo.compute import packages
from dizuo.compute.catalog import PoolCatalog
from dizuo.compute.inventory import Inventories
from dizuo.compute.kinds import EvalKind, KbIndexKind, Kind
from dizuo.compute.placement import MICRO, Inventory, JobRequest, Placement, hourly, place
from dizuo.compute.ray_jobs import RayJob, RayJobs, RayState
from dizuo.compute.tables import ComputeJob, PoolSample
from dizuo.config import DATA_CLASSES, PoolConfig
from dizuo.errors import (
    ComputeUnavailable,
    ConfigError,
    DataRiskBlocked,
    DizuoError,
    InsufficientQuota,
    InvalidRequest,
    Lang,
    PermissionDenied,
    invalid_param,
)
from dizuo.evalbench.service import EvalService
from dizuo.guard.events import EventLog
from dizuo.guard.policy import Guard
from dizuo.kb.reindex import Reindex
from dizuo.kb.service import KnowledgeBases
from dizuo.store import Database, ordered_id, utc, utcnow

__all__ = [
    "ENDED",
    "MAX_ATTEMPTS",
    "PROVIDER",
    "JobBody",
    "JobNotFound",
    "Jobs",
    "NoPool",
    "parse_memory",
    "pool_view",
]

log = logging.getLogger("dizuo.compute")

PROVIDER = "compute"  # the provider of every compute charge: a voucher naming it pays for compute
ENDED = frozenset({"succeeded", "failed", "cancelled"})
PRIVATE_LOGS = (
    "此类作业的输出不直接返回给提交方：作业结束后连同结果文件一起交数据所有方审核，批准后可在发放记录中查看。\n"
    "What this kind of job prints is not shown to its submitter: when it ends, it goes with the job's "
    "result files to the data owner's review, and can be read in the release once approved.\n"
)
OWN_CODE = frozenset({"script", "sandbox"})  # kinds that run the organization's own code: allow-scripts
MAX_ATTEMPTS = 3  # placements of one job, the first included
SAMPLES_KEPT_DAYS = 30  # the pools' utilization over time
_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1 / 2**30, "b": 1 / 2**30, "k": 1 / 2**20, "m": 1 / 2**10, "g": 1, "t": 2**10}


class JobNotFound(DizuoError):
    """No job of that id in this key's organization (another organization's is not found either)."""

    status = 404
    type = "invalid_request_error"
    default_code = "compute_job_not_found"


class NoPool(InvalidRequest):
    """No pool can ever run the job: each pool's reason is in the message and in ``considered``."""

    default_code = "compute_no_pool"

    def __init__(self, placement: Placement) -> None:
        self.reasons = {"zh": _reasons(placement, "zh"), "en": _reasons(placement, "en")}
        super().__init__(reasons=self.reasons["en"])
        self.considered = [c.public() for c in placement.considered]

    def message(self, lang: Lang = "zh") -> str:
        self.params["reasons"] = self.reasons[lang]
        return super().message(lang)

    def body(self, lang: Lang = "zh") -> bytes:
        """The error envelope with every pool's verdict beside the message (``error.considered``)."""
        answer = orjson.loads(super().body(lang))
        answer["error"]["considered"] = self.considered
        return orjson.dumps(answer)


def _reasons(placement: Placement, lang: str) -> str:
    if not placement.considered:
        return "没有配置资源池" if lang == "zh" else "no pools are configured"
    return "; ".join(
        f"{c.pool}: {c.reason_zh if lang == 'zh' else c.reason_en}"
        for c in placement.considered
        if not c.feasible
    )


def parse_memory(value: str | float | int | None) -> float | None:
    """Memory as GiB: a number is GiB; a text may say its unit (``8G``, ``512Mi``, ``2T``, bytes bare)."""
    if value is None or isinstance(value, int | float):
        return None if value is None else float(value)
    found = _MEMORY.match(value)
    if found is None:
        raise invalid_param(
            "memory", f"{value!r} 不是内存大小（如 8G、512M）", f"{value!r} is not a size (8G, 512M …)"
        )
    number, unit = found.groups()
    if unit is None:  # a bare number in a text: GiB, as a bare JSON number is
        return float(number)
    return float(number) * _UNITS[unit[0].lower()]


class JobBody(BaseModel):
    """``POST /v1/compute/jobs``: what to run, with what, where, for how long."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["script", "eval", "kb-index", "batch", "sandbox"] = "script"
    name: str | None = Field(None, max_length=200)
    entrypoint: str | None = Field(None, min_length=1, max_length=10_000)
    working_dir: str | None = Field(None, description="A zip archive of the working directory, base64.")
    suite: str | None = Field(None, max_length=200)
    model: str | None = Field(None, max_length=256)
    kb: str | None = Field(None, max_length=200)
    batch: str | None = Field(None, max_length=64)
    dataset: str | None = Field(None, max_length=64, description="A sandbox job's dataset.")
    accelerators: int = 0
    accelerator_type: str | None = None
    cpus: float = 1
    memory: str | float | None = None
    max_hours: float = 1
    expected_hours: float | None = None
    regions: list[str] | None = None
    pools: list[str] | None = None
    data_class: str | None = None


def _request(body: JobBody, data_class: str) -> JobRequest:
    memory = parse_memory(body.memory)
    fields: dict[str, Any] = {
        "accelerators": body.accelerators,
        "accelerator_type": body.accelerator_type,
        "cpus": body.cpus,
        "max_hours": body.max_hours,
        "expected_hours": body.expected_hours,
        "regions": tuple(body.regions) if body.regions is not None else None,
        "pools": tuple(body.pools) if body.pools is not None else None,
        "data_class": data_class,
    }
    if memory is not None:
        fields["memory_gb"] = memory
    try:
        return JobRequest(**fields)
    except ValidationError as exc:
        error = exc.errors()[0]
        param = ".".join(str(p) for p in error["loc"]) or "body"
        message = str(error["msg"])
        raise invalid_param(param, message, message) from None


def _package(text: str, limit: int) -> bytes:
    """The working directory's zip archive from its base64, checked: within *limit* bytes, a zip, no
    path leaving the directory."""
    if len(text) > limit * 4 // 3 + 4:
        raise _working_dir_too_large(limit)
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise invalid_param(
            "working_dir", "不是 base64 编码的 zip 文件", "is not a zip archive in base64"
        ) from None
    if len(data) > limit:
        raise _working_dir_too_large(limit)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile:
        raise invalid_param("working_dir", "不是 zip 文件", "is not a zip archive") from None
    for name in names:
        if name.startswith(("/", "\\")) or ".." in Path(name).parts:
            raise invalid_param(
                "working_dir", f"路径 {name!r} 越出了工作目录", f"the path {name!r} leaves the directory"
            )
    return data


def _working_dir_too_large(limit: int) -> InvalidRequest:
    mib = f"{limit / 2**20:g}"
    return invalid_param(
        "working_dir",
        f"工作目录压缩后超过 {mib} MiB 的上限（DIZUO_COMPUTE_MAX_WORKING_DIR_MB）",
        f"the zipped working directory is over the {mib} MiB limit (DIZUO_COMPUTE_MAX_WORKING_DIR_MB)",
    )


def package_uri(data: bytes) -> str:
    """The Ray runtime-environment URI a working directory's archive is uploaded under (its digest)."""
    return f"gcs://_ray_pkg_{hashlib.sha256(data).hexdigest()[:32]}.zip"


def charge_for(hourly_cny: Decimal, seconds: float) -> int:
    """Micro-yuan for *seconds* at *hourly_cny*, per second (whole seconds, rounded up), rounded up."""
    whole = math.ceil(max(seconds, 0))
    return math.ceil(hourly_cny * whole * MICRO / 3600)


def _ms(moment: dt.datetime | None) -> int | None:
    return None if moment is None else int(utc(moment).timestamp() * 1000)


def _at(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


def view(job: ComputeJob) -> dict[str, Any]:
    """A job as the API, the CLI and the console show it."""
    spec = job.spec or {}
    request = spec.get("request") or {}
    return {
        "id": job.id,
        "object": "compute.job",
        "kind": job.kind,
        "name": job.name,
        "state": job.state,
        "pool": job.pool,
        "region": job.region,
        "accelerator": job.accelerator,
        "entrypoint": job.entrypoint,
        "request": request,
        "data_class": job.data_class,
        "considered": job.considered,
        "attempts": job.attempts,
        "held": format_cny(job.held),
        "price_cny_per_hour": job.hourly,
        "created": _iso(job.created_at),
        "submitted": _iso(job.submitted_at),
        "started": _iso(job.started_at),
        "ended": _iso(job.ended_at),
        "seconds": _seconds(job),
        "cost": None if job.cost is None else format_cny(job.cost),
        "voucher_paid": None if job.voucher_paid is None else format_cny(job.voucher_paid),
        "own_paid": None if job.own_paid is None else format_cny(job.own_paid),
        "settled": job.settled_at is not None,
        "cancel_requested": job.cancel_requested,
        "message": job.message,
    }


def _sum(inventory: Inventory, field: str) -> dict[str, float]:
    return {
        "total": sum(getattr(node, field) for node in inventory.total),
        "free": sum(getattr(node, field) for node in inventory.free),
    }


def pool_view(pool: PoolConfig, inventory: Inventory | None) -> dict[str, Any]:
    """A pool as the API and the CLI show it."""
    up = inventory is not None and inventory.up
    return {
        "name": pool.name,
        "region": pool.region,
        "accelerator": pool.accelerator,
        "accelerator_resource": pool.resources.accelerator_resource,
        "data_class_max": pool.data_class_max,
        "max_job_hours": pool.max_job_hours,
        "price_cny_per_hour": {
            "accelerator": str(pool.price.accelerator_hour),
            "cpu": str(pool.price.cpu_hour),
            "memory_gb": str(pool.price.memory_gb_hour),
        },
        "up": up,
        "capacity": None
        if not up or inventory is None
        else {
            "nodes": len(inventory.total),
            "accelerators": _sum(inventory, "accelerators"),
            "cpus": _sum(inventory, "cpus"),
            "memory_gb": {k: round(v, 2) for k, v in _sum(inventory, "memory_gb").items()},
        },
    }


def _iso(moment: dt.datetime | None) -> str | None:
    return None if moment is None else utc(moment).isoformat()


def _seconds(job: ComputeJob) -> int | None:
    """The seconds a job has run (charged, once it ended); None before it ran, or when it ended
    with its time unknown (its cluster lost it: nothing charged)."""
    if job.started_at is None or (job.settled_at is not None and job.ended_at is None):
        return None
    end = job.ended_at or utcnow()
    return max(0, math.ceil((utc(end) - utc(job.started_at)).total_seconds()))


class Jobs:
    """Submits, follows, cancels and charges the compute jobs of every organization."""

    def __init__(
        self,
        db: Database,
        meter: Meter,
        pools: Sequence[PoolConfig],
        inventories: Inventories,
        session: Callable[[], aiohttp.ClientSession],
        *,
        guard: Guard | None = None,
        events: EventLog | None = None,
        max_working_dir_bytes: int = 20 * 2**20,
        catalog: PoolCatalog | None = None,
        evals: EvalService | None = None,
        kbs: KnowledgeBases | None = None,
        kinds: Sequence[Kind] = (),
        gateway_url: str = "http://127.0.0.1:8000/v1",
    ) -> None:
        self.db = db
        self.reindex = Reindex(db)
        # The platform's own kinds of job (a script is the organization's code and has none); *kinds*
        # adds those of features built on compute (a batch's).
        own: list[Kind] = [EvalKind(evals), KbIndexKind(kbs, self.reindex if kbs else None), *kinds]
        self.kinds: dict[str, Kind] = {kind.name: kind for kind in own}
        self.gateway_url = (
            gateway_url  # this platform's /v1 as the pools reach it (the kinds' workers call it)
        )
        self.catalog = catalog
        self._pools_seen: Any = None  # the catalog's stamp when the pools were last taken up
        self.meter = meter
        self.pools = {pool.name: pool for pool in pools}
        self.inventories = inventories
        self.session = session
        self.guard = guard
        self.events = events
        self.max_working_dir_bytes = max_working_dir_bytes
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}

    async def refresh_pools(self) -> None:
        """Take up pools platform admins added, changed or removed since the last look."""
        catalog = self.catalog
        if catalog is None:
            return
        stamp = await asyncio.to_thread(catalog.stamp)
        if stamp == self._pools_seen:
            return
        try:
            pools = await asyncio.to_thread(catalog.effective)
            self.inventories.set_pools(pools)
        except ConfigError:  # a run-time pool's token names a variable this worker lacks: keep the last
            log.exception("the compute pools changed, but cannot be taken up")
            return
        self.pools = {pool.name: pool for pool in pools}
        self._pools_seen = stamp

    # ---- reading ---------------------------------------------------------------------------

    def _owned(self, org_id: str | None, job_id: str) -> ComputeJob:
        """The job *job_id* of *org_id* (None: of any organization), detached; 404 when it is
        another's, as when it does not exist."""
        with self.db.session() as session:
            job = session.get(ComputeJob, job_id)
            if job is None or (org_id is not None and job.org_id != org_id):
                raise JobNotFound(id=job_id)
            session.expunge(job)
            return job

    def worker_of(self, key: KeyInfo, job_id: str, kind: str) -> ComputeJob:
        """A running job of *kind*, for that job's own worker (its key); 404 for any other key, as
        for a job that does not exist or has ended."""
        job = self._owned(key.org_id, job_id)
        if (
            job.kind != kind
            or job.spec.get("key_id") != key.key_id
            or job.settled_at is not None
            or job.cancel_requested
        ):
            raise JobNotFound(id=job_id)
        return job

    def reindexing(self, key: KeyInfo, job_id: str) -> str:
        """The knowledge base a running ``kb-index`` job re-embeds, for its worker."""
        return str(self.worker_of(key, job_id, "kb-index").spec["kb"]["id"])

    def batch_of(self, key: KeyInfo, job_id: str) -> str:
        """The batch a running ``batch`` job runs, for its worker."""
        return str(self.worker_of(key, job_id, "batch").spec["batch"]["id"])

    def settled(self, job_id: str) -> bool:
        """Whether *job_id* ended and was settled (a job that does not exist: True)."""
        with self.db.session() as session:
            job = session.get(ComputeJob, job_id)
            return job is None or job.settled_at is not None

    def commit_reindex(self, key: KeyInfo, job_id: str) -> dict[str, Any]:
        """Move the job's knowledge base to the vectors its worker staged, and note it on the job."""
        job = self._owned(key.org_id, job_id)
        kb_id = self.reindexing(key, job_id)
        model = job.spec["kb"]["model"]

        def note(session: Session, result: dict[str, Any]) -> None:
            job = session.get(ComputeJob, job_id)
            assert job is not None
            job.spec = {**job.spec, "kb": {**job.spec["kb"], "committed": result}}

        return self.reindex.commit(kb_id, job_id, model, note)

    def _newest(self, org_id: str | None, limit: int) -> list[ComputeJob]:
        """Jobs of *org_id* (None: of every organization), newest first, detached."""
        with self.db.session() as session:
            query = (
                select(ComputeJob).order_by(ComputeJob.created_at.desc(), ComputeJob.id.desc()).limit(limit)
            )
            if org_id is not None:
                query = query.where(ComputeJob.org_id == org_id)
            jobs = list(session.scalars(query))
            session.expunge_all()
            return jobs

    def get(self, key: KeyInfo, job_id: str) -> dict[str, Any]:
        return view(self._owned(key.org_id, job_id))

    def listed(self, key: KeyInfo, limit: int = 100) -> list[dict[str, Any]]:
        return [view(job) for job in self._newest(key.org_id, limit)]

    def of(self, org_id: str | None, limit: int = 200) -> list[dict[str, Any]]:
        """Jobs of an organization (None: every organization's, each with ``org_id``), newest first:
        what the console shows."""
        return [{**view(job), "org_id": job.org_id} for job in self._newest(org_id, limit)]

    def one(self, job_id: str, org_id: str | None) -> dict[str, Any]:
        """One job as the console shows it; 404 when it is not *org_id*'s (None: any organization's)."""
        job = self._owned(org_id, job_id)
        return {**view(job), "org_id": job.org_id}

    def in_use(self) -> dict[str, dict[str, int]]:
        """Per pool, how many jobs run and how many wait (placing or pending)."""
        with self.db.session() as session:
            rows = session.execute(
                select(ComputeJob.pool, ComputeJob.state, func.count())
                .where(ComputeJob.settled_at.is_(None))
                .group_by(ComputeJob.pool, ComputeJob.state)
            )
            counts: dict[str, dict[str, int]] = {}
            for pool, state, count in rows:
                line = counts.setdefault(pool or "", {"running": 0, "waiting": 0})
                line["running" if state == "running" else "waiting"] += int(count)
            return counts

    async def sample(self, keep_days: int = SAMPLES_KEPT_DAYS) -> int:
        """Record each pool as its cluster answers now (and forget samples older than *keep_days*);
        how many were recorded. The reconciler does it once a minute."""
        current = await self.inventories.current(self.session())
        in_use = await asyncio.to_thread(self.in_use)
        now = utcnow()
        rows = []
        for pool in self.pools.values():
            seen = current.get(pool.name)
            up = seen is not None and seen.up
            reading = seen if up and seen is not None else Inventory()  # down: nothing to count
            accelerators, cpus = _sum(reading, "accelerators"), _sum(reading, "cpus")
            use = in_use.get(pool.name, {"running": 0, "waiting": 0})
            rows.append(
                PoolSample(
                    pool=pool.name,
                    at=now,
                    up=up,
                    accelerators_total=accelerators["total"],
                    accelerators_free=accelerators["free"],
                    cpus_total=cpus["total"],
                    cpus_free=cpus["free"],
                    running=use["running"],
                    waiting=use["waiting"],
                )
            )

        def write() -> None:
            with self.db.session() as session:
                session.add_all(rows)
                session.execute(delete(PoolSample).where(PoolSample.at < now - dt.timedelta(days=keep_days)))

        await asyncio.to_thread(write)
        return len(rows)

    def utilization(
        self, since: dt.datetime, until: dt.datetime, bucket: dt.timedelta
    ) -> tuple[list[dt.datetime], dict[str, list[float | None]]]:
        """Each pool's utilization (per cent of its accelerators in use; of its CPUs for a pool without
        accelerators) per *bucket* from *since* to *until*, the mean of its samples in the bucket;
        None where the pool was not sampled or its cluster did not answer."""
        starts = []
        moment = since
        while moment < until:
            starts.append(moment)
            moment += bucket
        sums: dict[str, list[list[float]]] = {}
        with self.db.session() as session:
            query = (
                select(PoolSample)
                .where(PoolSample.at >= since, PoolSample.at < until)
                .order_by(PoolSample.at)
            )
            for s in session.scalars(query):
                if not s.up:
                    continue
                total, free = (
                    (s.accelerators_total, s.accelerators_free)
                    if s.accelerators_total
                    else (s.cpus_total, s.cpus_free)
                )
                if total <= 0:
                    continue
                index = int((utc(s.at) - since) / bucket)
                line = sums.setdefault(s.pool, [[0.0, 0.0] for _ in starts])
                if 0 <= index < len(starts):
                    line[index][0] += 100 * (total - free) / total
                    line[index][1] += 1
        series = {
            pool: [round(total / count, 1) if count else None for total, count in line]
            for pool, line in sorted(sums.items())
        }
        return starts, series

    async def logs_of(self, job: dict[str, Any]) -> str | None:
        """What a job printed, for the console (the platform's guard policy for its data class);
        None when its pool's cluster cannot be reached now."""
        if self._private(job["kind"]):
            return PRIVATE_LOGS
        try:
            text = await self._printed(job["pool"], job["id"], job["submitted"] is not None or job["settled"])
        except ComputeUnavailable:
            return None
        if self.guard is None or not text:
            return text
        text, _ = self.guard.inspect_output(None, job["data_class"], text)
        return text

    async def _printed(self, pool_name: str | None, job_id: str, sent: bool) -> str:
        """What a job printed so far, as its pool's Ray keeps it ("" before it was sent to one)."""
        pool = self.pools.get(pool_name or "")
        if pool is None or not sent:
            return ""
        return await self.client(pool).logs(job_id)

    def client(self, pool: PoolConfig) -> RayJobs:
        address = self.inventories.address(pool)
        if address is None:
            raise ComputeUnavailable(pool=pool.name, detail="its embedded Ray head is not running")
        return RayJobs(self.session(), pool.name, address, token=self.inventories.token(pool))

    # ---- submitting ------------------------------------------------------------------------

    async def submit(self, key: KeyInfo, body: JobBody, *, internal: bool = False) -> dict[str, Any]:
        """Place, hold, record and send a job; its view (``considered`` has every pool's verdict).
        *internal*: the platform submits it for its own work (a batch)."""
        await self.refresh_pools()
        if body.kind == "batch" and not internal:
            raise invalid_param("kind", "批处理请用 /v1/batches 提交", "submit batches through /v1/batches")
        entrypoint, extra = await asyncio.to_thread(self._entrypoint, key, body)
        floor = str(extra.pop("data_class", key.data_class))  # what the kind's data needs
        data_class = max(body.data_class or key.data_class, key.data_class, floor, key=_rank)
        if data_class not in DATA_CLASSES:
            raise invalid_param(
                "data_class", "只能是 general、important 或 core", "must be general, important or core"
            )
        request = _request(body, data_class)
        self._known(request)
        package = _package(body.working_dir, self.max_working_dir_bytes) if body.working_dir else None
        if body.kind in OWN_CODE:
            await asyncio.to_thread(self._may_run_scripts, key)
        self._audit(key, body)
        placement = await self._place(request, key, ())
        if placement.chosen is None:
            raise NoPool(placement)
        pool = self.pools[placement.chosen]
        job_id = ordered_id()
        spec: dict[str, Any] = {"request": request.model_dump(mode="json"), **extra}
        if package is not None:
            spec["package"] = package_uri(package)

        def record(session: Session, held: Held) -> None:
            now = utcnow()
            if package is not None:  # kept until the job ends: sent again if it is placed again
                packages.keep(session, spec["package"], package)
            session.add(
                ComputeJob(
                    id=job_id,
                    org_id=key.org_id,
                    key_id=key.key_id,
                    kind=body.kind,
                    name=body.name,
                    entrypoint=entrypoint,
                    spec=spec,
                    data_class=data_class,
                    state="placing",
                    pool=pool.name,
                    region=pool.region,
                    accelerator=pool.accelerator,
                    considered=[c.public() for c in placement.considered],
                    blocked=[],
                    attempts=1,
                    hourly=str(self._hourly(body.kind, pool, request)),
                    held=held.amount,
                    held_own=held.own,
                    held_vouchers=[list(part) for part in held.vouchers],
                    created_at=now,
                    updated_at=now,
                )
            )

        worst = self._worst(body.kind, pool, request)
        await open_hold(self.meter, self.db, key.org_id, worst, _scope(pool, body.kind), record)
        await self.sync(job_id)
        return await asyncio.to_thread(self._view, job_id)

    def _entrypoint(self, key: KeyInfo, body: JobBody) -> tuple[str, dict[str, Any]]:
        """What the job runs, as its record shows it, and what its spec keeps for its kind; refuses
        what a kind does not take."""
        kind = self.kinds.get(body.kind)
        if kind is not None:
            return kind.check(key, body)
        for name in ("suite", "model", "kb", "dataset"):
            if getattr(body, name) is not None:
                raise invalid_param(name, "脚本作业不接受此参数", "a script job takes no " + name)
        if body.entrypoint is None:
            raise InvalidRequest("missing_param", param="entrypoint")
        return body.entrypoint, {}

    def _worst(self, kind_name: str, pool: PoolConfig, request: JobRequest) -> int:
        """What a job holds for its pool time: nothing for a kind charged as it goes."""
        kind = self.kinds.get(kind_name)
        return 0 if kind is not None and not kind.charges_time else _worst(pool, request)

    def _hourly(self, kind_name: str, pool: PoolConfig, request: JobRequest) -> Decimal:
        kind = self.kinds.get(kind_name)
        return Decimal(0) if kind is not None and not kind.charges_time else hourly(pool, request)

    def _view(self, job_id: str) -> dict[str, Any]:
        with self.db.session() as session:
            job = session.get(ComputeJob, job_id)
            assert job is not None
            return view(job)

    def _known(self, request: JobRequest) -> None:
        if request.pools is not None:
            unknown = [name for name in request.pools if name not in self.pools]
            if unknown:
                raise invalid_param(
                    "pools",
                    f"没有资源池 {', '.join(unknown)}（有：{', '.join(self.pools) or '无'}）",
                    f"no pool {', '.join(unknown)} (there are: {', '.join(self.pools) or 'none'})",
                )
        if request.accelerators and request.accelerator_type is not None:
            types = sorted({p.accelerator for p in self.pools.values() if p.accelerator})
            if request.accelerator_type not in types:
                raise invalid_param(
                    "accelerator_type",
                    f"没有资源池提供加速卡 {request.accelerator_type}（有：{', '.join(types) or '无'}）",
                    f"no pool has {request.accelerator_type} accelerators (there are: {', '.join(types) or 'none'})",
                )

    def _may_run_scripts(self, key: KeyInfo) -> None:
        with self.db.session() as session:
            allowed = session.scalar(select(Organization.allow_scripts).where(Organization.id == key.org_id))
        if not allowed:
            raise PermissionDenied("scripts_not_allowed", org=key.org_name)

    def _audit(self, key: KeyInfo, body: JobBody) -> None:
        """The guard reads the job's name and entrypoint as it reads a prompt: logged, or refused."""
        if self.guard is None:
            return
        inspection = self.guard.inspect_texts(
            key.guard, key.data_class, [body.name or "", body.entrypoint or ""]
        )
        if not inspection.prompt_counts:
            return
        self._event(key, body.kind, "prompt", inspection.policy.action, inspection.prompt_counts)
        if inspection.blocks_prompt:
            raise DataRiskBlocked(sorted(inspection.prompt_counts))

    async def _place(
        self,
        request: JobRequest,
        key: KeyInfo | None,
        blocked: Iterable[str],
        *,
        org_region: str | None = None,
    ) -> Placement:
        inventories = await self.inventories.current(self.session())
        in_use = await asyncio.to_thread(self.in_use)
        inventories = {
            name: Inventory(inv.total, inv.free, inv.up, in_use.get(name, {}).get("waiting", 0))
            for name, inv in inventories.items()
        }
        pools = list(self.pools.values())
        return place(
            request,
            pools,
            inventories,
            org_region=key.org_region if key is not None else org_region,
            blocked=blocked,
        )

    # ---- following a job -------------------------------------------------------------------

    async def sync(self, job_id: str, job: ComputeJob | None = None) -> None:
        """Bring one job's record up to date with its pool's Ray: send it, adopt its state, place it
        again, stop it, charge it. One at a time for a job in this process; safe beside another
        replica's (charging is guarded in the database, a second submission refused by Ray)."""
        entry = self._locks.setdefault(job_id, (asyncio.Lock(), [0]))
        entry[1][0] += 1
        try:
            async with entry[0]:
                await self._sync(job_id, job if entry[1][0] == 1 else None)
        finally:
            entry[1][0] -= 1
            if not entry[1][0]:
                self._locks.pop(job_id, None)

    async def _sync(self, job_id: str, job: ComputeJob | None = None) -> None:
        if job is None:  # read now (the reconciler hands in the round's reading of every live job)
            job = await asyncio.to_thread(self._load, job_id)
        if job is None or job.settled_at is not None:
            return
        pool = self.pools.get(job.pool or "")
        if pool is None and job.state == "running":  # its cluster is no longer known: cannot follow it
            await self._unpaid(
                job_id,
                "failed",
                f"资源池 {job.pool} 已从配置中移除，无法跟踪，不计费 / the pool {job.pool} was removed from the "
                "configuration while the job ran: it cannot be followed; nothing charged",
            )
            return
        if pool is None:
            await self._again(job, f"资源池 {job.pool} 已不存在", f"the pool {job.pool} no longer exists")
            return
        try:
            client = self.client(pool)
            found = await client.get(job_id)
            if found is None and job.state == "placing" and job.cancel_requested:
                await self._unpaid(job_id, "cancelled", "cancelled before it started")
                return
            if found is None and job.state == "placing":
                found = await self._send(client, job, pool)
        except ComputeUnavailable as exc:
            await self._unreachable(job, pool, exc)
            return
        if found is None:
            if job.state == "running":
                await self._unpaid(
                    job_id,
                    "failed",
                    "资源池的集群已没有该作业的记录（重启过？），不计费 / the pool's cluster no longer knows "
                    "the job (restarted?); nothing charged",
                )
            else:
                await self._again(job, "资源池的集群丢失了该作业", "the pool's cluster lost the job")
            return
        await self._follow(job, pool, client, found)

    def _load(self, job_id: str) -> ComputeJob | None:
        with self.db.session() as session:
            job = session.get(ComputeJob, job_id)
            if job is not None:
                session.expunge(job)
            return job

    async def _send(self, client: RayJobs, job: ComputeJob, pool: PoolConfig) -> RayJob | None:
        request = JobRequest(**job.spec["request"])
        runtime_env: dict[str, Any] = {}
        entrypoint = job.entrypoint
        kind = self.kinds.get(job.kind)
        if kind is not None:
            plain = await asyncio.to_thread(self._job_key, job, kind.model(job))
            runtime_env["env_vars"] = {"DIZUO_BASE_URL": self.gateway_url, "DIZUO_API_KEY": plain}
            entrypoint = kind.command(job, sys.executable if pool.ray == "embedded" else pool.python)
        package = job.spec.get("package")
        if package:
            data = await asyncio.to_thread(packages.load, self.db, package)
            await client.upload(package, data)
            runtime_env["working_dir"] = package
        try:
            await client.submit(
                job.id,
                entrypoint,
                request,
                pool.resources.accelerator_resource,
                runtime_env=runtime_env,
                metadata={"dizuo_org": job.org_id, "dizuo_kind": job.kind},
            )
        except ComputeUnavailable:
            # Sent already (by another replica, or an answer lost on the way): Ray keeps one per id.
            if await client.get(job.id) is None:
                raise
        now = utcnow()
        await asyncio.to_thread(self._update, job.id, state="pending", submitted_at=now, waiting_seen_at=now)
        return await client.get(job.id)

    def _job_key(self, job: ComputeJob, model: str | None) -> str:
        """A key for this job alone: *model* (None: no model), calls only, its data class, expiring an
        hour after the job's longest run; one made for an earlier placement is revoked. Returns the
        plain key."""
        hours = JobRequest(**job.spec["request"]).max_hours + 1
        with self.db.session() as session:
            org_name = session.scalar(select(Organization.name).where(Organization.id == job.org_id))
        assert org_name is not None
        previous = job.spec.get("key_id")
        if previous:
            revoke_key(self.db, previous)
        made = create_key(
            self.db,
            org_name,
            name=f"compute job {job.id}",
            models=[model] if model is not None else [],
            data_class=job.data_class,
            expires_at=utcnow() + dt.timedelta(hours=hours),
            scopes=["models"],
            batch_id=job.spec.get("batch", {}).get("id"),
        )
        job.spec = {**job.spec, "key_id": made.record.id}
        self._update(job.id, spec=job.spec)
        return made.key

    def _update(self, job_id: str, **values: Any) -> None:
        values.setdefault("updated_at", utcnow())
        with self.db.session() as session:
            session.execute(
                update(ComputeJob)
                .where(ComputeJob.id == job_id, ComputeJob.settled_at.is_(None))
                .values(**values)
            )

    async def _follow(self, job: ComputeJob, pool: PoolConfig, client: RayJobs, found: RayJob) -> None:
        now = utcnow()
        if found.state is RayState.PENDING:
            if job.cancel_requested:
                await client.stop(job.id)
                await self._unpaid(job.id, "cancelled", "cancelled before it started")
                return
            submitted = job.submitted_at or job.created_at
            if (now - utc(submitted)).total_seconds() > pool.start_timeout_seconds:
                await client.stop(job.id)
                await self._again(
                    job,
                    f"在 {pool.start_timeout_seconds:g} 秒内未能启动",
                    f"did not start within {pool.start_timeout_seconds:g} s",
                )
                return
            await asyncio.to_thread(self._update, job.id, state="pending", waiting_seen_at=now)
            return
        start_ms = self._start_ms(job, found)
        if found.state is RayState.RUNNING:
            changes: dict[str, Any] = {}
            if job.state != "running":
                changes = {"state": "running", "started_at": _at(start_ms) if start_ms else now}
            if changes:
                await asyncio.to_thread(self._update, job.id, **changes)
            limit = JobRequest(**job.spec["request"]).max_hours * 3600
            ran = (now.timestamp() * 1000 - (start_ms or now.timestamp() * 1000)) / 1000
            if job.cancel_requested or ran >= limit:
                await client.stop(job.id)
                if not job.cancel_requested:
                    await asyncio.to_thread(
                        self._update, job.id, message="stopped at its maximum duration / 已达最长时长，已停止"
                    )
            return
        # Ended on Ray: charge it.
        state = {
            RayState.SUCCEEDED: "succeeded",
            RayState.FAILED: "failed",
            RayState.STOPPED: "cancelled" if job.cancel_requested else "failed",
        }[found.state]
        ran = found.ran and start_ms is not None and found.end_ms is not None
        kind = self.kinds.get(job.kind)
        if kind is not None:
            current = await asyncio.to_thread(self._load, job.id)  # with what its worker wrote meanwhile
            said = await kind.ending(client, current or job, state)
            if said is not None:
                job.message = said
        await asyncio.to_thread(
            self._settle,
            job.id,
            state,
            start_ms if ran else None,
            found.end_ms if ran else None,
            job.message or found.message[:900] or None,
        )

    @staticmethod
    def _start_ms(job: ComputeJob, found: RayJob) -> int | None:
        """When the job's charged time starts: the later of Ray's start time and the last moment the
        platform saw it waiting (Ray's start time is when it was submitted, not when it got its
        resources)."""
        if found.start_ms is None:
            return None
        waiting = _ms(job.waiting_seen_at)
        return max(found.start_ms, waiting) if waiting is not None else found.start_ms

    async def _unreachable(self, job: ComputeJob, pool: PoolConfig, error: ComputeUnavailable) -> None:
        """The pool's cluster does not answer: a job not started is placed again once its start
        timeout passed (or at once, if it was never sent); a running job waits for the cluster."""
        submitted = job.submitted_at
        late = submitted is None or (utcnow() - utc(submitted)).total_seconds() > pool.start_timeout_seconds
        if job.state in ("placing", "pending") and late:
            await self._again(job, "资源池的集群无响应", "the pool's cluster does not answer")
            return
        await asyncio.to_thread(self._update, job.id, message=f"{error.params.get('detail', '')}"[:900])

    async def _again(self, job: ComputeJob, why_zh: str, why_en: str) -> None:
        """Place *job* again with its pool blocked; when no pool is left (or it was tried too often),
        it fails and costs nothing."""
        blocked = [*job.blocked, *([job.pool] if job.pool else [])]
        request = JobRequest(**job.spec["request"])
        org_region = await asyncio.to_thread(self._org_region, job.org_id)
        placement = None
        if job.attempts < MAX_ATTEMPTS:
            placement = await self._place(request, None, blocked, org_region=org_region)
        if placement is None or placement.chosen is None:
            why = f"{job.pool}: {why_zh} / {why_en}"
            tail = (
                "没有其他资源池可用 / no other pool can run it"
                if placement is not None
                else f"已尝试 {job.attempts} 次 / tried {job.attempts} times"
            )
            await self._unpaid(job.id, "failed", f"{why}; {tail}")
            return
        pool = self.pools[placement.chosen]
        extra = self._worst(job.kind, pool, request) - job.held if self.meter.enabled else 0
        if extra > 0:  # a dearer pool: its worst case is held too, or the job cannot go there
            try:
                await open_hold(self.meter, self.db, job.org_id, extra, _scope(pool, job.kind), _more(job.id))
            except InsufficientQuota as exc:
                await self._unpaid(
                    job.id,
                    "failed",
                    f"{job.pool}: {why_zh} / {why_en}; {pool.name}: {exc.message('zh')} / {exc.message('en')}",
                )
                return
        await asyncio.to_thread(
            self._update,
            job.id,
            state="placing",
            pool=pool.name,
            region=pool.region,
            accelerator=pool.accelerator,
            considered=[c.public() for c in placement.considered],
            blocked=blocked,
            attempts=job.attempts + 1,
            hourly=str(self._hourly(job.kind, pool, request)),
            submitted_at=None,
            waiting_seen_at=None,
            message=f"{job.pool}: {why_zh} / {why_en}; placed again",
        )
        await self._sync(job.id)

    async def _unpaid(self, job_id: str, state: str, message: str) -> None:
        """End a job that never ran (or cannot be followed) in *state*: nothing is charged."""
        await asyncio.to_thread(self._settle, job_id, state, None, None, message)

    def _org_region(self, org_id: str) -> str | None:
        with self.db.session() as session:
            return session.scalar(select(Organization.region).where(Organization.id == org_id))

    def _settle(
        self, job_id: str, state: str, start_ms: int | None, end_ms: int | None, message: str | None
    ) -> None:
        """End *job_id* in *state* and charge it for the time from *start_ms* to *end_ms* (nothing
        when it never ran), exactly once: the first transaction to mark it settled charges it."""
        now = utcnow()
        with self.db.session() as session:
            result = session.execute(
                update(ComputeJob)
                .where(ComputeJob.id == job_id, ComputeJob.settled_at.is_(None))
                .values(settled_at=now, state=state, updated_at=now)
            )
            if not getattr(result, "rowcount", 0):
                return
            job = session.get(ComputeJob, job_id, populate_existing=True)
            assert job is not None
            request = JobRequest(**job.spec["request"])
            seconds = 0.0
            if start_ms is not None and end_ms is not None:
                # In whole milliseconds: the time shown (ended_at - started_at) is the time charged
                # (1.001 s as a float, times 1000, truncates to 1,000 ms: shown 1 s, charged 2).
                ran_ms = min(max(end_ms - start_ms, 0), int(request.max_hours * 3600 * 1000))
                seconds = ran_ms / 1000
                job.started_at = _at(start_ms)
                job.ended_at = _at(start_ms + ran_ms)
            elif job.started_at is None:
                job.ended_at = None
            cost = charge_for(Decimal(job.hourly or "0"), seconds) if seconds else 0
            held = Held(job.held, job.held_own, parts(job.held_vouchers))
            usage = {
                "request_id": job.id,
                "key_id": job.key_id,
                "model": f"compute:{job.kind}",
                "deployment": job.pool or "",
                "region": job.region or "",
                "endpoint": "compute.jobs",
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "latency_ms": 0,
                "data_class": job.data_class,
                "stream": False,
                "status": {"succeeded": "ok"}.get(state, state),
                "attempts": [{"deployment": name, "error": "did not start"} for name in job.blocked] or None,
            }
            kind = self.kinds.get(job.kind)
            if kind is None or kind.charges_time or held.amount:
                outcome = close(
                    session, org_id=job.org_id, held=held, cost=cost, usage=usage, provider=PROVIDER, at=now
                )
                job.cost = outcome.cost
                job.voucher_paid = outcome.voucher_total
                job.own_paid = outcome.own
                job.uncollected = outcome.uncollected
            else:  # its work is charged as it goes (a batch's lines): no charge of its own
                job.cost, job.voucher_paid, job.own_paid, job.uncollected = 0, 0, 0, 0
            if message is not None:
                job.message = message[:1000]
            package = job.spec.get("package")
            job_key = job.spec.get("key_id")
        if job_key:  # the key of a platform job's worker ends with it
            with contextlib.suppress(DizuoError):
                revoke_key(self.db, job_key)
        kind = self.kinds.get(job.kind)
        if kind is not None:
            kind.ended(job_id)
        if self.meter.enabled:
            self.meter.journal.refresh(job.org_id)
        if package:
            packages.forget(self.db, package)

    # ---- acting on a job -------------------------------------------------------------------

    async def cancel(self, key: KeyInfo, job_id: str) -> dict[str, Any]:
        """Stop a job; it is charged for what ran. Cancelling an ended job changes nothing."""
        await self.stop(job_id, key.org_id)
        return await asyncio.to_thread(self.get, key, job_id)

    async def stop(self, job_id: str, org_id: str | None = None) -> None:
        """Stop *job_id* (of *org_id*; None: the platform's own doing) and follow it to its end."""
        job = await asyncio.to_thread(self._owned, org_id, job_id)
        if job.state not in ENDED:
            await asyncio.to_thread(self._update, job_id, cancel_requested=True)
            pool = self.pools.get(job.pool or "")
            if pool is not None:
                with contextlib.suppress(ComputeUnavailable):  # else the reconciler stops it later
                    await self.client(pool).stop(job_id)
                for _ in range(20):  # Ray reports a stopped job within a moment
                    await self.sync(job_id)
                    current = await asyncio.to_thread(self._owned, org_id, job_id)
                    if current.state in ENDED:
                        break
                    await asyncio.sleep(0.25)

    async def logs(self, key: KeyInfo, job_id: str) -> str:
        """What the job printed so far (empty before it was sent to a pool)."""
        job = await asyncio.to_thread(self._owned, key.org_id, job_id)
        if self._private(job.kind):
            return PRIVATE_LOGS
        try:
            text = await self._printed(job.pool, job_id, job.submitted_at is not None or job.state in ENDED)
        except ComputeUnavailable:
            if job.state in ENDED:
                return ""
            raise
        return self.guarded(key, job.kind, text)

    def _private(self, kind_name: str) -> bool:
        kind = self.kinds.get(kind_name)
        return kind is not None and kind.logs_private

    async def printed(self, job_id: str) -> str:
        """What a job printed, whatever its kind, for the platform's own use (a kind whose logs are
        private keeps them for their reviewer); "" when its pool cannot be reached."""
        job = await asyncio.to_thread(self._owned, None, job_id)
        try:
            return await self._printed(job.pool, job_id, job.submitted_at is not None or job.state in ENDED)
        except ComputeUnavailable:
            return ""

    def guarded(self, key: KeyInfo, kind: str, text: str) -> str:
        """*text* of a job's logs as the guard passes it: audited like an answer, redacted or refused
        as the key's policy says."""
        if self.guard is None or not text:
            return text
        text, inspection = self.guard.inspect_output(key.guard, key.data_class, text)
        if inspection.answer_counts:
            self._event(key, kind, "answer", inspection.policy.action, inspection.answer_counts)
        return text

    def _event(self, key: KeyInfo, kind: str, direction: str, action: str, counts: Mapping[str, int]) -> None:
        """One guard audit event about a job (its command: ``prompt``; its logs: ``answer``)."""
        if self.events is not None:
            self.events.record(
                org_id=key.org_id,
                key_id=key.key_id,
                request_id=None,
                direction=direction,
                action=action,
                counts=dict(counts),
                model=f"compute:{kind}",
            )

    async def live(self) -> list[ComputeJob]:
        """The jobs not yet charged, as one query reads them (what the reconciler follows)."""
        return await asyncio.to_thread(self._live)

    def any_live(self) -> bool:
        """Whether any job is not yet charged."""
        with self.db.session() as session:
            return (
                session.scalar(select(ComputeJob.id).where(ComputeJob.settled_at.is_(None)).limit(1))
                is not None
            )

    def _live(self) -> list[ComputeJob]:
        with self.db.session() as session:
            jobs = list(
                session.scalars(
                    select(ComputeJob).where(ComputeJob.settled_at.is_(None)).order_by(ComputeJob.id)
                )
            )
            session.expunge_all()
            return jobs


def _rank(data_class: str) -> int:
    return DATA_CLASSES.index(data_class) if data_class in DATA_CLASSES else len(DATA_CLASSES)


def _worst(pool: PoolConfig, request: JobRequest) -> int:
    """The most *request* can cost on *pool*: its resources for its maximum duration."""
    return charge_for(hourly(pool, request), request.max_hours * 3600)


def _more(job_id: str) -> Callable[[Session, Held], None]:
    """Add a further standing hold to the job's record (placed again on a dearer pool)."""

    def record(session: Session, held: Held) -> None:
        job = session.get(ComputeJob, job_id, with_for_update=True)
        assert job is not None
        merged: dict[str, int] = dict(parts(job.held_vouchers))
        for voucher_id, part in held.vouchers:
            merged[voucher_id] = merged.get(voucher_id, 0) + part
        job.held += held.amount
        job.held_own += held.own
        job.held_vouchers = [[voucher_id, part] for voucher_id, part in merged.items()]

    return record


def _scope(pool: PoolConfig, kind: str) -> Scope:
    return Scope(PROVIDER, pool.region, f"compute:{kind}", pool.name, pool.accelerator)
