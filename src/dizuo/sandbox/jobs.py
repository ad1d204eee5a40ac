"""Compute jobs next to the data: an enterprise's own code runs on a pool cleared for the dataset's
class and reads the granted columns there; what it writes leaves only when the dataset's owner
releases it.

A grant allows this with ``jobs``. The job (``{"kind": "sandbox", "dataset", "entrypoint",
"working_dir"}``, with the ``sandbox`` and ``compute`` scopes and the organization allowed to run
scripts) is placed like any job, at the dataset's data class at least. On the pool the platform's
worker (:mod:`dizuo.sandbox.jobworker`) fetches the granted columns (never an identifier) as Parquet
with the key made for the job alone, runs the entrypoint without that key, and sends back the files
it wrote. What the job prints is not shown to its organization. When the job ends, its files and
what it printed wait for the owner (a *release*: ``pending``); the owner releases them to the
organization or refuses them with a reason. Every read, every file and every decision is in the
audit trail.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import shlex
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from dizuo.accounts.keys import KeyInfo
from dizuo.accounts.tables import Organization
from dizuo.compute.ray_jobs import RayJobs
from dizuo.compute.tables import ComputeJob
from dizuo.errors import ComputeUnavailable, InvalidRequest, invalid_param
from dizuo.guard.detect import scan
from dizuo.sandbox.service import Grantee, Sandbox, SandboxForbidden, SandboxNotFound
from dizuo.sandbox.tables import SandboxDataset, SandboxOutput, SandboxRelease
from dizuo.store import iso, utcnow
from dizuo.store.audit import append

if TYPE_CHECKING:
    from dizuo.compute.jobs import JobBody

__all__ = ["FILE_NAME", "SandboxJobs", "SandboxKind", "download_headers"]

FILE_NAME = re.compile(r"^[A-Za-z0-9_\u4e00-\u9fff][A-Za-z0-9_.\-\u4e00-\u9fff]{0,127}$")
MAX_FILES = 32
LOG_TAIL = 64 * 1024  # what a release keeps of what its job printed
SCANNED = 4 * 2**20  # text files up to this size are read by the guard


def download_headers(name: str, digest: str) -> dict[str, str]:
    """The headers of a release's file sent for download: its name (UTF-8) and SHA-256."""
    return {
        "content-disposition": f"attachment; filename*=UTF-8''{urllib.parse.quote(name)}",
        "x-dizuo-sha256": digest,
    }


class SandboxJobs:
    """The sandbox's side of compute jobs next to the data: the data they read, the files they
    write, and the owner's release."""

    def __init__(self, sandbox: Sandbox, output_bytes: int = 64 * 2**20) -> None:
        self.sandbox = sandbox
        self.db = sandbox.db
        self.output_bytes = output_bytes

    # ---- submission ------------------------------------------------------------------------

    def check(self, key: KeyInfo, body: JobBody) -> tuple[str, dict[str, Any]]:
        """A sandbox job's submission: the organization's active grant of the dataset must allow
        jobs. What the job's spec keeps: the dataset, the grant, the columns it may read, and the
        dataset's class (the job's data class at least)."""
        for name in ("suite", "model", "kb", "batch"):
            if getattr(body, name) is not None:
                raise invalid_param(name, "数据沙盒作业不接受此参数", f"a sandbox job takes no {name}")
        if not body.dataset:
            raise InvalidRequest("missing_param", param="dataset")
        if body.entrypoint is None:
            raise InvalidRequest("missing_param", param="entrypoint")
        key.require("sandbox")
        with self.db.session() as session:
            dataset = self.sandbox._dataset(session, body.dataset)
            grant = self.sandbox._active_grant(session, dataset, Grantee(key.org_id, f"key:{key.key_id}"))
            if not grant.jobs_allowed:
                raise SandboxForbidden("sandbox_jobs_not_allowed", id=grant.id, name=dataset.name)
            identifiers = {c["name"] for c in dataset.columns if c["sensitivity"] == "identifier"}
            columns = [c for c in grant.allowed_columns if c not in identifiers]
            spec = {
                "dataset": dataset.name,
                "dataset_id": dataset.id,
                "grant": grant.id,
                "columns": columns,
            }
            return body.entrypoint, {"sandbox": spec, "data_class": dataset.classification}

    # ---- the worker's side -----------------------------------------------------------------

    def export(self, job: ComputeJob, folder: Path) -> Path:
        """The granted columns of the job's dataset as a Parquet file in *folder*, while the grant is
        still active (403 once it is revoked or expired); the read is recorded and audited."""
        spec = job.spec["sandbox"]
        with self.db.session() as session:
            dataset = session.get(SandboxDataset, spec["dataset_id"])
            if dataset is None:
                raise SandboxNotFound(name=spec["dataset"])
            grant = self.sandbox._active_grant(session, dataset, Grantee(job.org_id, f"job:{job.id}"))
            if grant.id != spec["grant"] or not grant.jobs_allowed:
                raise SandboxForbidden("sandbox_jobs_not_allowed", id=grant.id, name=dataset.name)
            now_allowed = set(grant.allowed_columns)
            types = {c["name"]: c["type"] for c in dataset.columns}
            columns = [(c, types[c]) for c in spec["columns"] if c in now_allowed and c in types]
            file, table = dataset.store_file, dataset.name
        target = folder / "data.parquet"
        rows = self.sandbox.store.export(file, table, columns, target)
        with self.db.session() as session:
            release = self._release(session, job)
            release.rows_read += rows
            detail = {"dataset": spec["dataset"], "columns": [c for c, _ in columns], "rows": rows}
            append(
                session, "sandbox.job.read", job.id, actor=f"job:{job.id}", org_id=job.org_id, detail=detail
            )
        return target

    def stage(self, job: ComputeJob, name: str, content: bytes) -> dict[str, Any]:
        """Keep a file the job wrote (its name, at most 32 files and the output limit in all) for
        the owner's review, with what the guard finds in it; a file of the same name replaces it."""
        if not FILE_NAME.match(name) or name in (".", ".."):
            raise invalid_param(
                "name",
                "文件名只能含字母、数字、汉字、_ . -，不超过 128 个字符",
                "a file name holds letters, digits, Chinese characters, _ . - only, 128 at most",
            )
        findings: dict[str, int] = {}
        if len(content) <= SCANNED:
            try:
                text = content.decode("utf-8")
            except UnicodeDecodeError:
                text = ""
            for found in scan(text):
                findings[found.type] = findings.get(found.type, 0) + 1
        with self.db.session() as session:
            release = self._release(session, job)
            others = session.scalars(
                select(SandboxOutput).where(
                    SandboxOutput.release_id == release.id, SandboxOutput.name != name
                )
            ).all()
            if len(others) >= MAX_FILES:
                raise invalid_param(
                    "name", f"一个作业最多写出 {MAX_FILES} 个文件", f"a job writes {MAX_FILES} files at most"
                )
            if sum(o.size for o in others) + len(content) > self.output_bytes:
                raise invalid_param(
                    "content",
                    f"写出的文件合计超过 {self.output_bytes // 2**20} MB",
                    f"the files written exceed {self.output_bytes // 2**20} MB in all",
                )
            digest = hashlib.sha256(content).hexdigest()
            existing = session.get(SandboxOutput, (release.id, name))
            if existing is not None:
                session.delete(existing)
                session.flush()
            session.add(
                SandboxOutput(
                    release_id=release.id,
                    name=name,
                    size=len(content),
                    sha256=digest,
                    findings=findings,
                    content=content,
                    created_at=utcnow(),
                )
            )
            detail = {"name": name, "size": len(content), "sha256": digest, "findings": findings}
            append(
                session,
                "sandbox.job.output",
                release.id,
                actor=f"job:{job.id}",
                org_id=job.org_id,
                detail=detail,
            )
            return {"name": name, "size": len(content), "sha256": digest, "findings": findings}

    def _release(self, session: Any, job: ComputeJob) -> SandboxRelease:
        release: SandboxRelease | None = session.scalars(
            select(SandboxRelease).where(SandboxRelease.job_id == job.id)
        ).first()
        if release is None:
            spec = job.spec["sandbox"]
            release = SandboxRelease(
                id=f"sdx_{secrets.token_hex(8)}",
                job_id=job.id,
                grant_id=spec["grant"],
                dataset_id=spec["dataset_id"],
                org_id=job.org_id,
                state="running",
                logs="",
                rows_read=0,
                created_at=utcnow(),
            )
            session.add(release)
            session.flush()
        return release

    # ---- the end of a job ------------------------------------------------------------------

    def ending(self, job: ComputeJob, state: str, logs: str) -> str:
        """The job ran and ends in *state*: what it wrote and printed wait for the owner. The
        message the job's record shows (never what it printed)."""
        with self.db.session() as session:
            release = self._release(session, job)
            if release.state == "running":
                release.state = "pending"
                release.job_state = state
                release.logs = logs[-LOG_TAIL:]
                files = session.scalars(
                    select(SandboxOutput.name).where(SandboxOutput.release_id == release.id)
                ).all()
                detail = {"job_state": state, "files": list(files), "rows_read": release.rows_read}
                append(
                    session,
                    "sandbox.job.end",
                    release.id,
                    actor=f"job:{job.id}",
                    org_id=job.org_id,
                    detail=detail,
                )
            release_id = release.id
        return (
            f"结果待数据所有方审核（发放记录 {release_id}）/ "
            f"its results wait for the data owner's review (release {release_id})"
        )

    def ended(self, job_id: str) -> None:
        """However the job ended: a release it never got to (it never ran) is discarded."""
        with self.db.session() as session:
            release = session.scalars(select(SandboxRelease).where(SandboxRelease.job_id == job_id)).first()
            if release is not None and release.state == "running":
                release.state = "discarded"
                for output in session.scalars(
                    select(SandboxOutput).where(SandboxOutput.release_id == release.id)
                ):
                    session.delete(output)

    # ---- the owner's review and the organization's download ---------------------------------

    def releases(self, org_id: str | None = None, owner_org_id: str | None = None) -> list[dict[str, Any]]:
        """Releases, newest first: an organization's own (*org_id*), those of the datasets it owns
        (*owner_org_id*), or all (neither)."""
        with self.db.session() as session:
            query = select(SandboxRelease).order_by(SandboxRelease.created_at.desc())
            if org_id is not None and owner_org_id is not None:
                owned = select(SandboxDataset.id).where(SandboxDataset.owner_org_id == owner_org_id)
                query = query.where((SandboxRelease.org_id == org_id) | SandboxRelease.dataset_id.in_(owned))
            elif org_id is not None:
                query = query.where(SandboxRelease.org_id == org_id)
            return [self._view(session, row, org_id) for row in session.scalars(query)]

    def release(self, release_id: str, org_id: str | None = None) -> dict[str, Any]:
        """One release, for its organization, its dataset's owner, or anyone reading all (*org_id*
        None); 404 for anyone else."""
        with self.db.session() as session:
            row, _ = self._seen(session, release_id, org_id)
            return self._view(session, row, org_id)

    def decide(self, release_id: str, by: Grantee, approve: bool, reason: str = "") -> dict[str, Any]:
        """The dataset's owner (*by*; a platform admin: ``by.org_id`` empty) releases a pending
        release to its organization, or refuses it (its files are deleted)."""
        with self.db.session() as session:
            row, _ = self._seen(session, release_id, by.org_id or None, owner_only=True)
            if row.state != "pending":
                raise InvalidRequest("sandbox_release_not_pending", id=release_id, state=row.state)
            if not approve and len(reason.strip()) < 2:
                raise invalid_param("reason", "请写明拒绝的理由", "say why it is refused")
            row.state = "released" if approve else "refused"
            row.decided_by = by.actor
            row.reason = reason.strip() or None
            row.decided_at = utcnow()
            if not approve:
                for output in session.scalars(
                    select(SandboxOutput).where(SandboxOutput.release_id == row.id)
                ):
                    session.delete(output)
            session.flush()
            detail = {"job": row.job_id, "reason": row.reason}
            action = "sandbox.release" if approve else "sandbox.release.refuse"
            append(session, action, row.id, actor=by.actor, org_id=row.org_id, detail=detail)
            return self._view(session, row, None)

    def file(self, release_id: str, name: str, org_id: str | None = None) -> tuple[bytes, str]:
        """A file of a release and its SHA-256: for the dataset's owner (and the platform) at any
        time before a refusal, for the job's organization once it is released (403 before)."""
        with self.db.session() as session:
            row, owner = self._seen(session, release_id, org_id)
            if org_id is not None and org_id != owner and row.state != "released":
                raise SandboxForbidden("sandbox_release_held", id=release_id, state=row.state)
            output = session.get(SandboxOutput, (row.id, name))
            if output is None:
                raise SandboxNotFound("sandbox_output_not_found", id=release_id, name=name)
            if org_id is not None and org_id != owner:
                append(
                    session,
                    "sandbox.release.download",
                    row.id,
                    actor=f"org:{org_id}",
                    org_id=org_id,
                    detail={"name": name},
                )
            return output.content, output.sha256

    def _seen(
        self, session: Any, release_id: str, org_id: str | None, owner_only: bool = False
    ) -> tuple[SandboxRelease, str]:
        row = session.get(SandboxRelease, release_id)
        dataset = session.get(SandboxDataset, row.dataset_id) if row else None
        if row is None or dataset is None:
            raise SandboxNotFound("sandbox_release_not_found", id=release_id)
        allowed = (dataset.owner_org_id,) if owner_only else (dataset.owner_org_id, row.org_id)
        if org_id is not None and org_id not in allowed:
            raise SandboxNotFound("sandbox_release_not_found", id=release_id)
        return row, dataset.owner_org_id

    def _view(self, session: Any, row: SandboxRelease, viewer: str | None) -> dict[str, Any]:
        """A release as an organization's members (*viewer*) or the platform and auditors (None) see
        it: what the job printed is the owner's to read, and its organization's once released."""
        dataset = session.get(SandboxDataset, row.dataset_id)
        org = session.get(Organization, row.org_id)
        owner = dataset.owner_org_id if dataset else None
        shown_logs = viewer is None or viewer == owner or row.state == "released"
        return {
            "id": row.id,
            "object": "sandbox.release",
            "job": row.job_id,
            "dataset": dataset.name if dataset else row.dataset_id,
            "organization": org.name if org else row.org_id,
            "grant": row.grant_id,
            "state": row.state,
            "job_state": row.job_state,
            "rows_read": row.rows_read,
            "files": [
                {"name": name, "size": size, "sha256": digest, "findings": findings or {}}
                for name, size, digest, findings in session.execute(
                    select(
                        SandboxOutput.name, SandboxOutput.size, SandboxOutput.sha256, SandboxOutput.findings
                    )
                    .where(SandboxOutput.release_id == row.id)
                    .order_by(SandboxOutput.name)
                )
            ],
            "logs": row.logs if shown_logs else None,
            "decided_by": row.decided_by,
            "reason": row.reason,
            "created_at": iso(row.created_at),
            "decided_at": iso(row.decided_at) if row.decided_at else None,
        }


class SandboxKind:
    """``{"kind": "sandbox", "dataset", "entrypoint", "working_dir"?}``: the organization's own code
    next to a granted dataset (:class:`SandboxJobs`)."""

    name = "sandbox"
    charges_time = True
    logs_private = True

    def __init__(self, jobs: SandboxJobs) -> None:
        self.jobs = jobs

    def check(self, key: KeyInfo, body: JobBody) -> tuple[str, dict[str, Any]]:
        return self.jobs.check(key, body)

    def command(self, job: ComputeJob, python: str) -> str:
        return shlex.join([python, "-m", "dizuo.sandbox.jobworker", "--job", job.id, "--run", job.entrypoint])

    def model(self, job: ComputeJob) -> str | None:
        return None  # its key reaches the job's data and outputs, no model

    async def ending(self, client: RayJobs, job: ComputeJob, state: str) -> str | None:
        try:
            logs = await client.logs(job.id)
        except ComputeUnavailable:  # the pool stopped answering: the release keeps no logs
            logs = ""
        return await asyncio.to_thread(self.jobs.ending, job, state, logs)

    def ended(self, job_id: str) -> None:
        self.jobs.ended(job_id)
