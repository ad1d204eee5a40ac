"""Compute jobs next to the sandbox's data, on a real Ray head: an enterprise's own code reads the
granted columns (never an identifier) inside the pool; what it prints is not shown to it; what it
writes waits for the data owner, who reads it (and what the guard found in it) and releases it or
refuses it; a grant that does not allow jobs, or is revoked before the job reads, lets nothing out."""

from __future__ import annotations

import base64
import csv
import io
import json
import sys
import time
import uuid
import zipfile
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from sqlalchemy import select

from dizuo.accounts import create_key, create_org
from dizuo.accounts.members import create_member, create_token
from dizuo.accounts.service import change_org
from dizuo.app import create_app
from dizuo.billing.service import topup
from dizuo.billing.tables import Wallet
from dizuo.compute.tables import ComputeJob
from dizuo.sandbox.jobs import SandboxJobs
from dizuo.sandbox.service import Grantee, Sandbox
from dizuo.sandbox.synthetic import write_csv
from dizuo.sandbox.tables import SandboxRelease
from dizuo.store import Database
from dizuo.store.audit import AuditRecord
from tests.compute.test_jobs import pools
from tests.sandbox.conftest import Residents, register
from tests.support.cli import dizuo
from tests.support.platform import GatewayApp, pool_settings
from tests.support.ray import RayHead
from tests.support.servers import ServerThread

pytestmark = pytest.mark.xdist_group("ray")

GRANTED = ["区县", "性别", "年龄", "月收入"]
TRAIN = """\
import json, os, duckdb
data, out = os.environ["DIZUO_SANDBOX_INPUT"], os.environ["DIZUO_SANDBOX_OUTPUT"]
rows = duckdb.sql(f"SELECT * FROM read_parquet('{data}')")
print("first row:", rows.limit(1).fetchall())  # the code may print rows: only the owner reads this
means = dict(duckdb.sql(f"SELECT 区县, avg(月收入) FROM read_parquet('{data}') GROUP BY 区县").fetchall())
with open(os.path.join(out, "metrics.json"), "w", encoding="utf-8") as f:
    json.dump({"columns": rows.columns, "mean_income": means,
               "key_seen": "DIZUO_API_KEY" in os.environ, "dataset": os.environ["DIZUO_SANDBOX_DATASET"]},
              f, ensure_ascii=False)
with open(os.path.join(out, "notes.txt"), "w", encoding="utf-8") as f:
    f.write("联系人 13800138000\\n")
"""


def zipped(files: dict[str, str]) -> str:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return base64.b64encode(buffer.getvalue()).decode()


def printed(db: Database, job_id: str) -> str:
    """What a job printed, as its release keeps it for the owner."""
    with db.session() as session:
        return str(session.scalar(select(SandboxRelease.logs).where(SandboxRelease.job_id == job_id)))


def settled(client: httpx.Client, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while not (job := client.get(f"/v1/compute/jobs/{job_id}").json())["settled"]:
        assert time.monotonic() < deadline, job
        time.sleep(0.5)
    return job


def test_a_job_reads_the_granted_columns_in_the_pool_and_its_results_leave_once_the_owner_releases_them(
    tmp_path: Path, database_url: str, redis_url: str | None, ray_head: RayHead
) -> None:
    settings = pool_settings(tmp_path, pools(ray_head)[0], [], database_url=database_url, redis_url=redis_url)
    db = Database(settings.resolved_database_url)
    db.upgrade()
    tag = uuid.uuid4().hex[:6]
    owner, company, other = f"数据局-{tag}", f"保险-{tag}", f"旁人-{tag}"
    owner_id, company_id = create_org(db, owner).id, create_org(db, company).id
    create_org(db, other)
    topup(db, company, 100_000_000)
    change_org(db, company, allow_scripts=True)
    key = create_key(db, company, scopes=["compute", "sandbox"], data_class="general").key
    for user, org in ((f"owner-{tag}", owner), (f"dev-{tag}", company), (f"other-{tag}", other)):
        create_member(db, user, "correct horse battery", "org-admin", org=org)
    as_owner, as_company, as_other = (
        {"Authorization": f"Bearer {create_token(db, user)}"}
        for user in (f"owner-{tag}", f"dev-{tag}", f"other-{tag}")
    )
    residents = write_csv(tmp_path / "residents.csv", 3000)
    sandbox = Sandbox.at(db, settings.data_dir)  # the platform's own store
    name = f"居民_{tag}"
    register(sandbox, owner_id, residents, name)
    sandbox.grant(name, company_id, {"columns": GRANTED}, Grantee(owner_id, "数据局"))  # no jobs yet
    server = ServerThread(create_app(settings), port=settings.port).start()
    try:
        client = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
        body = {
            "kind": "sandbox",
            "dataset": name,
            "entrypoint": f"{sys.executable} train.py",  # the pool's Python, with DuckDB
            "working_dir": zipped({"train.py": TRAIN}),
            "cpus": 0.5,
            "accelerators": 1,
        }
        refused = client.post("/v1/compute/jobs", json=body)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "sandbox_jobs_not_allowed"
        with db.session() as session:  # nothing held for it
            assert session.scalar(select(Wallet.standing).where(Wallet.org_id == company_id)) == 0
        sandbox.grant(name, company_id, {"columns": GRANTED, "jobs": True}, Grantee(owner_id, "数据局"))

        answer = client.post("/v1/compute/jobs", json=body)
        assert answer.status_code == 200, answer.text
        job = answer.json()
        assert job["kind"] == "sandbox" and job["data_class"] == "important"  # raised to the dataset's
        # Only the job's worker reaches the data, not the key that submitted it.
        assert client.get(f"/v1/compute/jobs/{job['id']}/sandbox/data").status_code == 404
        done = settled(client, job["id"])
        assert done["state"] == "succeeded", (done, printed(db, job["id"]))
        assert Decimal(done["cost"]) > 0
        logs = client.get(f"/v1/compute/jobs/{job['id']}/logs").text
        assert "first row" not in logs and "data owner" in logs  # what it printed stays with the owner
        (release,) = client.get("/v1/sandbox/releases").json()["data"]
        assert release["id"] in done["message"] and "first row" not in done["message"]
        assert (release["state"], release["job"], release["rows_read"]) == ("pending", job["id"], 3000)
        assert [f["name"] for f in release["files"]] == ["metrics.json", "notes.txt"]
        assert release["logs"] is None
        held = client.get(f"/v1/sandbox/releases/{release['id']}/files/metrics.json")
        assert held.status_code == 403 and held.json()["error"]["code"] == "sandbox_release_held"

        # The owner reviews: what the job printed, what the guard found, the files themselves.
        admin = f"{server.url}/admin/v1/sandbox/releases/{release['id']}"
        seen = httpx.get(admin, headers=as_owner).json()
        assert "first row" in seen["logs"]
        notes = next(f for f in seen["files"] if f["name"] == "notes.txt")
        assert notes["findings"] == {"CN_MOBILE": 1}
        assert httpx.get(f"{admin}/files/metrics.json", headers=as_owner).status_code == 200
        assert httpx.get(admin, headers=as_other).status_code == 404
        assert httpx.post(f"{admin}/approve", headers=as_company).status_code == 404  # not its data
        approved = httpx.post(f"{admin}/approve", headers=as_owner).json()
        assert approved["state"] == "released" and approved["decided_by"] == f"owner-{tag}"

        got = client.get(f"/v1/sandbox/releases/{release['id']}/files/metrics.json")
        assert got.status_code == 200 and "metrics.json" in got.headers["content-disposition"]
        metrics = json.loads(got.content)
        assert metrics["columns"] == GRANTED and metrics["dataset"] == name  # never an identifier
        assert metrics["key_seen"] is False  # the code ran without the job's key
        truth: dict[str, list[float]] = defaultdict(list)
        with residents.open(encoding="utf-8") as file:
            for row in csv.DictReader(file):
                truth[row["区县"]].append(float(row["月收入"]))
        assert metrics["mean_income"] == pytest.approx({d: sum(v) / len(v) for d, v in truth.items()})
        assert "first row" in client.get(f"/v1/sandbox/releases/{release['id']}").json()["logs"]
        assert httpx.get(f"{server.url}/admin/v1/sandbox/releases/{release['id']}/files/notes.txt", headers=as_company).status_code == 200  # fmt: skip

        # A grant revoked before the job reads: the worker gets 403, nothing of the data leaves.
        second = client.post("/v1/compute/jobs", json=body).json()
        (current,) = [g for g in sandbox.grants(company_id) if g["state"] == "active" and g["jobs"]]
        sandbox.revoke(current["id"], Grantee(owner_id, "数据局"))
        assert settled(client, second["id"])["state"] == "failed"
        refusal = next(
            r for r in client.get("/v1/sandbox/releases").json()["data"] if r["job"] == second["id"]
        )
        assert refusal["rows_read"] == 0 and refusal["files"] == [] and refusal["state"] == "pending"
        env = {"DIZUO_DATABASE_URL": settings.resolved_database_url, "DIZUO_DATA_DIR": str(settings.data_dir)}
        said = dizuo("sandbox", "release", "refuse", refusal["id"], "--reason", "授权已撤销", env=env)
        assert said.returncode == 0 and "refused" in said.stdout, said.stderr
        after = client.get(f"/v1/sandbox/releases/{refusal['id']}").json()
        assert (after["state"], after["reason"], after["logs"]) == ("refused", "授权已撤销", None)
        listed = dizuo("sandbox", "releases", "--org", company, env=env)
        assert release["id"] in listed.stdout and refusal["id"] in listed.stdout

        with db.session() as session:
            acts = [
                r.action
                for r in session.scalars(
                    select(AuditRecord).where(
                        AuditRecord.action.like("sandbox.%"), AuditRecord.org_id == company_id
                    )
                )
            ]
        for act in ("sandbox.job.read", "sandbox.job.output", "sandbox.job.end", "sandbox.release", "sandbox.release.refuse", "sandbox.release.download"):  # fmt: skip
            assert act in acts, (act, acts)
    finally:
        server.stop()
        sandbox.close()


async def test_a_worker_s_files_are_bounded_named_and_its_own(
    gateway_app: GatewayApp, residents: Residents
) -> None:
    """The worker's routes without a pool: only the job's own key reaches them, a file must have a
    plain name, and the files of one job stay within the output limit (413 past it, read no further)."""
    platform = await gateway_app(sandbox_output_mb=1)
    sandbox = cast(Sandbox, platform.platform.knowledge.state.sandbox)
    owner, company = platform.org(), platform.org(scopes=["sandbox"])
    name = f"居民_{uuid.uuid4().hex[:6]}"
    sandbox.add_dataset(owner.id, {"name": name, "classification": "general", "identifiers": ["身份证号", "姓名", "手机号"]}, residents.path, residents.path.name, "数据局")  # fmt: skip
    grant = sandbox.grant(name, company.id, {"columns": ["区县"], "jobs": True}, Grantee(owner.id, "数据局"))
    worker = create_key(platform.db, company.name, scopes=["models"], models=[])
    dataset_id = sandbox.dataset(name)["id"]
    with platform.db.session() as session:
        session.add(
            ComputeJob(
                id="job-worker-routes", org_id=company.id, key_id=worker.record.id, kind="sandbox", entrypoint="python train.py",
                spec={"key_id": worker.record.id, "sandbox": {"dataset": name, "dataset_id": dataset_id, "grant": grant["id"], "columns": ["区县"]}},
                data_class="general", state="running", considered=[], blocked=[], held_vouchers=[],
            )
        )  # fmt: skip
    http = platform.http(worker.key)
    route = "/v1/compute/jobs/job-worker-routes/sandbox"
    data = await http.get(f"{route}/data")
    assert data.status_code == 200 and data.content[:4] == b"PAR1"  # Parquet
    other = platform.http(company.key)
    assert (await other.get(f"{route}/data")).status_code == 404  # not the job's key
    small = await http.post(f"{route}/outputs", params={"name": "metrics.json"}, content=b'{"auc": 0.91}')
    assert small.status_code == 200 and small.json()["size"] == 13
    for bad in ("../etc/passwd", ".hidden", "a/b.txt"):
        refused = await http.post(f"{route}/outputs", params={"name": bad}, content=b"x")
        assert refused.status_code == 400 and refused.json()["error"]["param"] == "name", bad
    too_big = await http.post(f"{route}/outputs", params={"name": "model.bin"}, content=b"0" * (2**20 + 1))
    assert too_big.status_code == 413
    within = await http.post(f"{route}/outputs", params={"name": "model.bin"}, content=b"0" * (2**20 - 5))
    assert within.status_code == 400 and within.json()["error"]["param"] == "content"  # 1 MiB in all
    (release,) = SandboxJobs(sandbox).releases(company.id)
    assert [f["name"] for f in release["files"]] == ["metrics.json"] and release["rows_read"] == len(
        residents.rows
    )
