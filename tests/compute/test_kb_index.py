"""``kb-index`` jobs on a real Ray head: a knowledge base re-embedded with another embedding model by a
worker on the pool, through the platform's own ``/v1`` with the job's key (each call metered), the
knowledge base moved to the new vectors and model at the end, the job charged for its seconds; and
the submissions such a job refuses."""

from __future__ import annotations

import json
import time
import uuid
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import func, select

from dizuo.accounts import create_key, create_org
from dizuo.accounts.tables import ApiKey
from dizuo.app import create_app
from dizuo.billing.service import topup
from dizuo.billing.tables import UsageRecord, Wallet
from dizuo.compute.tables import ComputeJob
from dizuo.kb.tables import KbChunk, KbStagedVector
from dizuo.store import Database
from tests.compute.test_jobs import pools
from tests.support.cli import dizuo
from tests.support.platform import UPSTREAM_KEY, on, pool_settings, upstream_deployment
from tests.support.ray import RayHead
from tests.support.servers import ServerThread
from tests.support.upstream import FakeUpstream

pytestmark = pytest.mark.xdist_group("ray")

GUIDE = """# 算力券管理办法（示例）

第一条 算力券由市大数据局按年度计划发放给本市注册企业。

第二条 算力券只能用于平台登记的本地算力和私有云算力，不能用于公有云模型服务。

第三条 企业使用算力券时，算力券支付费用的百分之三十，其余由企业自付。
"""


def test_a_kb_index_job_re_embeds_a_knowledge_base_on_the_pool_and_moves_it_at_once(
    tmp_path: Path,
    database_url: str,
    redis_url: str | None,
    ray_head: RayHead,
    upstream: FakeUpstream,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", UPSTREAM_KEY)
    deployments = [  # the upstream answers "dims-N" with N numbers drawn from each text
        on(upstream, upstream_deployment(m, u, mode="embedding"))
        for m, u in [("embed-a", "dims-8"), ("embed-b", "dims-16")]
    ]
    settings = pool_settings(
        tmp_path, pools(ray_head)[0], deployments, database_url=database_url, redis_url=redis_url
    )
    port = settings.port
    db = Database(settings.resolved_database_url)
    db.upgrade()
    name = f"船厂-{uuid.uuid4().hex[:6]}"
    org = create_org(db, name).id
    topup(db, name, 100_000_000)
    scopes = ["compute", "models", "kb:read", "kb:write"]
    key = create_key(db, name, scopes=scopes, models=["embed-a", "embed-b"]).key
    reader = create_key(db, name, scopes=["compute", "models", "kb:read"]).key
    narrow = create_key(db, name, scopes=scopes, models=["embed-a"]).key
    server = ServerThread(create_app(settings), port=port).start()
    try:
        client = httpx.Client(
            base_url=f"{server.url}/v1", headers={"Authorization": f"Bearer {key}"}, timeout=60
        )
        kb = f"规章-{uuid.uuid4().hex[:4]}"
        assert (
            client.post("/knowledge-bases", json={"name": kb, "embedding_model": "embed-a"}).status_code
            == 201
        )
        added = client.post(
            f"/knowledge-bases/{quote(kb)}/documents", params={"filename": "办法.md"}, content=GUIDE.encode()
        )
        assert added.status_code == 201, added.text
        assert client.get(f"/knowledge-bases/{quote(kb)}").json()["dimensions"] == 8

        def submit(token: str, **body: object) -> httpx.Response:
            return client.post(
                "/compute/jobs",
                json={"kind": "kb-index", "cpus": 0.5, **body},
                headers={"Authorization": f"Bearer {token}"},
            )

        for token, body, status, code in [
            (key, {}, 400, "missing_param"),
            (key, {"kb": "没有这个库"}, 404, "kb_not_found"),
            (key, {"kb": kb, "entrypoint": "rm -rf /"}, 400, "invalid_param"),
            (key, {"kb": kb, "suite": "zh-knowledge"}, 400, "invalid_param"),
            (reader, {"kb": kb}, 403, "scope_missing"),
            (narrow, {"kb": kb, "model": "embed-b"}, 400, "invalid_param"),
        ]:
            refused = submit(token, **body)
            assert (refused.status_code, refused.json()["error"]["code"]) == (status, code), (
                body,
                refused.text,
            )
        with db.session() as session:  # nothing held or written for a refused one
            assert (
                session.scalar(select(func.count()).select_from(ComputeJob).where(ComputeJob.org_id == org))
                == 0
            )
            assert session.scalar(select(Wallet.standing).where(Wallet.org_id == org)) == 0

        said = dizuo(
            "compute", "submit", "--kind", "kb-index", "--kb", kb, "--model", "embed-b", "--accelerators", "1",
            "--cpus", "0.5", "--json", "--base-url", f"{server.url}/v1", "--api-key", key,
        )  # fmt: skip
        assert said.returncode == 0, said.stderr
        job = json.loads(said.stdout)
        assert job["kind"] == "kb-index" and job["pool"] == "cq-npu", job
        assert job["entrypoint"] == f"dizuo compute submit --kind kb-index --kb '{kb}' --model embed-b"
        # Only the job's own worker reaches its chunks: not even the key that submitted it.
        assert client.get(f"/compute/jobs/{job['id']}/kb/chunks").status_code == 404
        deadline = time.monotonic() + 120
        while not (done := client.get(f"/compute/jobs/{job['id']}").json())["settled"]:
            assert time.monotonic() < deadline, done
            time.sleep(0.5)
        logs = client.get(f"/compute/jobs/{job['id']}/logs").text
        assert done["state"] == "succeeded", (done, logs[-2000:])
        assert "已切换到 embed-b" in logs and "re-embedded with embed-b" in done["message"]
        assert Decimal(done["cost"]) > 0  # its seconds on the pool

        view = client.get(f"/knowledge-bases/{quote(kb)}").json()
        assert (view["embedding_model"], view["dimensions"], view["chunks"]) == ("embed-b", 16, 3)
        with db.session() as session:
            widths = {
                len(e) for e in session.scalars(select(KbChunk.embedding).where(KbChunk.kb_id == view["id"]))
            }
            assert widths == {64}  # 16 float32s: every chunk moved to the new model
            assert session.scalar(select(func.count()).select_from(KbStagedVector)) == 0
            # The worker embedded through the gateway with the job's own key: metered calls, the key
            # ended with the job.
            job_key = session.scalars(select(ApiKey).where(ApiKey.name == f"compute job {job['id']}")).one()
            calls = session.scalar(
                select(func.count())
                .select_from(UsageRecord)
                .where(UsageRecord.key_id == job_key.id, UsageRecord.model == "embed-b")
            )
            assert calls == 1 and job_key.revoked_at is not None
        # The knowledge base answers with the new model: questions embedded by embed-b.
        found = client.post(
            f"/knowledge-bases/{quote(kb)}/query", json={"question": "算力券能买公有云吗", "mode": "vector"}
        )
        assert found.status_code == 200 and len(found.json()["data"]) == 3, found.text
        assert client.get(f"/compute/jobs/{job['id']}/kb/chunks").status_code == 404  # ended
    finally:
        server.stop()
        db.dispose()
