"""Compute jobs through ``/v1/compute/jobs`` on a real Ray head: placed on the cheapest pool that can
run them, their worst case held, run, followed to their end and charged for the seconds they ran;
refused with each pool's reason when no pool can run them, with what is missing when the wallet
cannot cover them; cancelled and charged only what ran; another organization's jobs are not found."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime as dt
import io
import json
import sys
import time
import uuid
import zipfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
import yaml
from sqlalchemy import func, select

from dizuo.accounts import create_key, create_org
from dizuo.accounts.members import create_member, create_token
from dizuo.accounts.service import change_org, set_guard_policy
from dizuo.accounts.tables import ApiKey
from dizuo.app import create_app, load_settings
from dizuo.billing import ledger
from dizuo.billing.money import round_micro
from dizuo.billing.service import VoucherTerms, issue_voucher, topup, wallet_view
from dizuo.billing.tables import LedgerEntry, UsageRecord, Voucher, Wallet
from dizuo.compute.head import EmbeddedHead
from dizuo.compute.jobs import charge_for
from dizuo.compute.placement import JobRequest
from dizuo.compute.ray_jobs import RayJobs, RayState
from dizuo.compute.reports import issuer_report
from dizuo.compute.tables import ComputeJob
from dizuo.days import PLATFORM_ZONE
from dizuo.evalbench.tables import EvalRun
from dizuo.guard.events import list_events
from dizuo.store import Database
from tests.support.cli import dizuo
from tests.support.platform import (
    UPSTREAM_KEY,
    GatewayApp,
    PlatformUnderTest,
    Tenant,
    on,
    pool_settings,
    upstream_deployment,
)
from tests.support.ray import RayHead
from tests.support.servers import ServerThread, free_port
from tests.support.upstream import FakeUpstream

pytestmark = pytest.mark.xdist_group("ray")

NPU = {"accelerator": "ascend-910b", "resources": {"accelerator_resource": "NPU"}}
PY = sys.executable


def pools(head: RayHead, **cq: Any) -> list[dict[str, object]]:
    """Two pools: ``cq-npu`` on the real head (¥36 an accelerator-hour: a cent a second), and
    ``xj-npu`` in another region whose cluster does not answer."""
    return [
        {
            "name": "cq-npu",
            "region": "cq",
            "ray": head.dashboard,
            "token": head.token,
            "data_class_max": "important",
            "price": {"accelerator_hour": "36", "cpu_hour": "0"},
            **NPU,
            **cq,
        },
        {"name": "xj-npu", "region": "xj", "ray": f"http://127.0.0.1:{free_port()}", **NPU},
    ]


def scripting(platform: PlatformUnderTest, balance: str = "100", **key: Any) -> Tenant:
    org = platform.org(balance=balance, scopes=["compute"], **key)
    change_org(platform.db, org.name, allow_scripts=True)
    return org


async def until_ended(
    platform: PlatformUnderTest, key: str, job_id: str, seconds: float = 90
) -> dict[str, Any]:
    client = platform.http(key)
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        job = (await client.get(f"/v1/compute/jobs/{job_id}")).json()
        if job["settled"]:
            return job
        assert asyncio.get_running_loop().time() < deadline, job
        await asyncio.sleep(0.3)


def job_rows(platform: PlatformUnderTest, org: Tenant) -> int:
    with platform.db.session() as session:
        return (
            session.scalar(select(func.count()).select_from(ComputeJob).where(ComputeJob.org_id == org.id))
            or 0
        )


def line_voucher(platform: PlatformUnderTest, org: Tenant) -> str:
    """The organization's voucher scoped to compute pools."""
    with platform.db.session() as session:
        (found,) = [v.id for v in session.scalars(select(Voucher).where(Voucher.org_id == org.id)) if v.pools]
        return found


def standing(platform: PlatformUnderTest, org: Tenant) -> int:
    with platform.db.session() as session:
        wallet = session.get(Wallet, org.id)
        assert wallet is not None
        return wallet.standing


async def test_a_script_job_runs_on_its_pool_and_is_charged_for_the_seconds_it_ran(
    gateway_app: GatewayApp,
    ray_head: RayHead,
) -> None:
    platform = await gateway_app(pools=pools(ray_head))
    org = scripting(platform)
    issuer = f"经信委-{uuid.uuid4().hex[:6]}"
    now = dt.datetime.now(dt.UTC)
    terms = VoucherTerms(
        issuer, "算力券", 10_000_000, Decimal("0.5"), now - dt.timedelta(days=1), now + dt.timedelta(days=30)
    )
    issue_voucher(platform.db, org.name, dataclasses.replace(terms, pools=["cq-npu"]))  # ¥10, half, this pool
    issue_voucher(platform.db, org.name, dataclasses.replace(terms, models=["qwen-plus"]))  # model calls only
    platform.platform.gateway.meter.journal.refresh(org.id)
    client = platform.http(org.key)
    script = "import time; time.sleep(1.5); print('质检报告已生成，联系 13812345678')"
    answer = await client.post(
        "/v1/compute/jobs",
        json={
            "kind": "script",
            "entrypoint": f'{PY} -c "{script}"',
            "accelerators": 1,
            "cpus": 0.5,
            "max_hours": 2,
        },
    )
    assert answer.status_code == 200, answer.text
    job = answer.json()
    assert job["pool"] == "cq-npu" and job["state"] in ("pending", "running", "succeeded")
    assert job["held"] == "72.000000"  # the worst case: one accelerator for two hours at ¥36
    verdicts = {c["pool"]: c for c in job["considered"]}
    assert verdicts["cq-npu"]["feasible"] and verdicts["cq-npu"]["estimate"] == "72"
    assert verdicts["xj-npu"]["reason"]["en"] == "the pool's cluster does not answer"
    # While it runs, the held money is out of what calls may spend, durably: the compute voucher's
    # ¥10 first (it pays half of what it covers), the balance the rest.
    assert standing(platform, org) == 62_000_000
    assert (
        wallet_view(platform.db, org.name)["held_by_jobs"] == "62.000000"
    )  # the console and the CLI show it

    done = await until_ended(platform, org.key, job["id"])
    assert done["state"] == "succeeded", done
    seconds = done["seconds"]
    assert 1 <= seconds < 60
    expected = charge_for(Decimal(36), seconds)  # a cent a second, per second
    voucher_part = round_micro(Decimal(expected) / 2)
    assert done["cost"] == f"{Decimal(expected) / 1_000_000:.6f}"
    assert done["voucher_paid"] == f"{Decimal(voucher_part) / 1_000_000:.6f}"
    assert platform.balance(org) == 100_000_000 - (expected - voucher_part) and standing(platform, org) == 0
    month = now.astimezone(PLATFORM_ZONE).strftime("%Y-%m")
    (line,) = issuer_report(platform.db, issuer, month)
    assert (line["kind"], line["pool"], line["accelerator"], line["calls"]) == (
        "compute",
        "cq-npu",
        "ascend-910b",
        1,
    )
    assert line["voucher_paid"] == done["voucher_paid"]
    assert Decimal(line["accelerator_hours"]) == (Decimal(seconds) / 3600).quantize(Decimal("0.0001"))
    (record,) = [r for r in platform.records(org) if r.request_id == job["id"]]
    assert (record.cost, record.provider, record.deployment, record.region) == (
        expected,
        "compute",
        "cq-npu",
        "cq",
    )
    with platform.db.session() as session:
        legs = session.execute(
            select(LedgerEntry.account, LedgerEntry.amount).where(LedgerEntry.request_id == job["id"])
        ).all()
    assert sorted(legs) == sorted(
        [
            (ledger.cash(org.id), -(expected - voucher_part)),
            (ledger.voucher(line_voucher(platform, org)), -voucher_part),
            (ledger.revenue("compute"), expected),
        ]
    )

    logs = await client.get(f"/v1/compute/jobs/{job['id']}/logs")
    assert logs.status_code == 200 and "质检报告已生成" in logs.text
    # The guard audits the job's command as a prompt and what it prints as an answer (the platform's
    # policy logs: nothing changed, the types found recorded).
    deadline = asyncio.get_running_loop().time() + 5
    while len(events := list_events(platform.db, org_id=org.id)) < 2:  # written a moment later
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.1)
    assert sorted((e["direction"], e["action"], e["model"], sorted(e["counts"])) for e in events) == [
        ("answer", "log", "compute:script", ["CN_MOBILE"]),
        ("prompt", "log", "compute:script", ["CN_MOBILE"]),
    ]
    assert "13812345678" in logs.text
    listed = (await client.get("/v1/compute/jobs")).json()["data"]
    assert [j["id"] for j in listed] == [job["id"]]


async def test_a_job_no_pool_can_run_is_refused_with_each_pool_s_reason_and_nothing_is_written(
    gateway_app: GatewayApp,
    ray_head: RayHead,
) -> None:
    platform = await gateway_app(pools=pools(ray_head))
    org = scripting(platform)
    client = platform.http(org.key)
    entry = f'{PY} -c "print(1)"'
    too_big = await client.post("/v1/compute/jobs", json={"entrypoint": entry, "accelerators": 8})
    assert too_big.status_code == 400, too_big.text
    error = too_big.json()["error"]
    assert error["code"] == "compute_no_pool"
    reasons = {c["pool"]: c["reason"]["en"] for c in error["considered"]}
    assert reasons["cq-npu"].startswith("no node can hold the job (the largest: 2 accelerators")
    assert reasons["xj-npu"] == "the pool's cluster does not answer"
    assert "cq-npu" in error["message"] and "xj-npu" in error["message"]

    core = await client.post("/v1/compute/jobs", json={"entrypoint": entry, "data_class": "core"})
    assert core.status_code == 400
    reasons = {c["pool"]: c["reason"]["en"] for c in core.json()["error"]["considered"]}
    assert reasons["cq-npu"] == "cleared for important data at most; the job's is core"

    for body, param in [
        ({"entrypoint": entry, "accelerators": -1}, "accelerators"),
        ({"entrypoint": entry, "max_hours": 100000}, "max_hours"),
        ({"entrypoint": entry, "cpus": 0}, "cpus"),
        ({"entrypoint": entry, "memory": "lots"}, "memory"),
        ({"entrypoint": entry, "pools": ["nowhere"]}, "pools"),
        ({"entrypoint": entry, "accelerators": 1, "accelerator_type": "h100"}, "accelerator_type"),
        ({"entrypoint": entry, "working_dir": "not base64!"}, "working_dir"),
    ]:
        refused = await client.post("/v1/compute/jobs", json=body)
        assert refused.status_code == 400, (body, refused.text)
        assert refused.json()["error"]["param"] == param, refused.text
    assert job_rows(platform, org) == 0 and standing(platform, org) == 0


async def test_a_working_directory_is_sent_with_the_job_and_one_over_the_limit_is_refused(
    gateway_app: GatewayApp,
    ray_head: RayHead,
) -> None:
    platform = await gateway_app(pools=pools(ray_head), compute_max_working_dir_mb=1)
    org = scripting(platform)
    client = platform.http(org.key)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("main.py", "print(open('数据.txt', encoding='utf-8').read())\n")
        z.writestr("数据.txt", "船用柴油机 曲轴 合格")
    sent = await client.post(
        "/v1/compute/jobs",
        json={
            "entrypoint": f"{PY} main.py",
            "working_dir": base64.b64encode(archive.getvalue()).decode(),
            "cpus": 0.5,
        },
    )
    assert sent.status_code == 200, sent.text
    done = await until_ended(platform, org.key, sent.json()["id"])
    logs = (await client.get(f"/v1/compute/jobs/{done['id']}/logs")).text
    assert done["state"] == "succeeded", logs
    assert "船用柴油机 曲轴 合格" in logs

    large = io.BytesIO()
    with zipfile.ZipFile(large, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr("weights.bin", bytes(range(256)) * 5000)  # 1.2 MiB, stored as is
    refused = await client.post(
        "/v1/compute/jobs",
        json={"entrypoint": f"{PY} main.py", "working_dir": base64.b64encode(large.getvalue()).decode()},
    )
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "working_dir"
    assert "1 MiB" in refused.json()["error"]["message"]
    assert job_rows(platform, org) == 1


async def test_a_wallet_that_cannot_cover_the_worst_case_gets_402_with_what_is_missing(
    gateway_app: GatewayApp,
    ray_head: RayHead,
) -> None:
    platform = await gateway_app(pools=pools(ray_head))
    org = scripting(platform, balance="10")
    answer = await platform.http(org.key).post(
        "/v1/compute/jobs", json={"entrypoint": f'{PY} -c "print(1)"', "accelerators": 1, "max_hours": 1}
    )
    assert answer.status_code == 402, answer.text
    message = answer.json()["error"]["message"]
    assert "36.000000" in message and "26.000000" in message  # needed, and missing
    assert (
        job_rows(platform, org) == 0 and standing(platform, org) == 0 and platform.balance(org) == 10_000_000
    )


async def test_script_jobs_need_an_operator_s_permission(
    gateway_app: GatewayApp,
    ray_head: RayHead,
) -> None:
    platform = await gateway_app(pools=pools(ray_head))
    org = platform.org(balance="100", scopes=["compute"])
    refused = await platform.http(org.key).post("/v1/compute/jobs", json={"entrypoint": "echo hi"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "scripts_not_allowed"
    assert f"dizuo admin allow-scripts --org {org.name}" in refused.json()["error"]["message"]
    assert job_rows(platform, org) == 0

    # Allowed, its command still passes the guard as a prompt does: under a blocking policy, a
    # command carrying a mobile number is refused before anything is held.
    change_org(platform.db, org.name, allow_scripts=True)
    set_guard_policy(platform.db, org.name, {"action": "block"})
    await asyncio.sleep(0.5)  # the key cache takes the policy within its refresh period
    blocked = await platform.http(org.key).post(
        "/v1/compute/jobs", json={"entrypoint": "python notify.py --to 13812345678"}
    )
    assert blocked.status_code == 400 and blocked.json()["error"]["code"] == "data_risk_blocked"
    assert "13812345678" not in blocked.text
    assert job_rows(platform, org) == 0 and standing(platform, org) == 0


async def test_a_cancelled_job_is_charged_only_for_what_ran_and_others_cannot_touch_it(
    gateway_app: GatewayApp,
    ray_head: RayHead,
) -> None:
    platform = await gateway_app(pools=pools(ray_head))
    org = scripting(platform)
    other = scripting(platform)
    client = platform.http(org.key)
    answer = await client.post(
        "/v1/compute/jobs",
        json={"entrypoint": f'{PY} -c "import time; time.sleep(600)"', "accelerators": 1, "cpus": 0.5},
    )
    assert answer.status_code == 200, answer.text
    job_id = answer.json()["id"]
    deadline = asyncio.get_running_loop().time() + 60
    while (await client.get(f"/v1/compute/jobs/{job_id}")).json()["state"] != "running":
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.3)
    await asyncio.sleep(2)

    stranger = platform.http(other.key)
    for method, path in [
        ("GET", f"/v1/compute/jobs/{job_id}"),
        ("GET", f"/v1/compute/jobs/{job_id}/logs"),
        ("POST", f"/v1/compute/jobs/{job_id}/cancel"),
    ]:
        seen = await stranger.request(method, path)
        assert seen.status_code == 404 and seen.json()["error"]["code"] == "compute_job_not_found", path
    assert (await stranger.get("/v1/compute/jobs")).json()["data"] == []

    cancelled = await client.post(f"/v1/compute/jobs/{job_id}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    done = await until_ended(platform, org.key, job_id)
    assert done["state"] == "cancelled"
    assert 2 <= done["seconds"] < 60
    cost = charge_for(Decimal(36), done["seconds"])
    assert done["cost"] == f"{Decimal(cost) / 1_000_000:.6f}"  # its seconds, not the hour held
    assert platform.balance(org) == 100_000_000 - cost and standing(platform, org) == 0
    with platform.db.session() as session:
        records = session.scalar(
            select(func.count()).select_from(UsageRecord).where(UsageRecord.request_id == job_id)
        )
    assert records == 1


async def test_a_job_that_ends_while_the_server_is_down_is_charged_once_after_it_restarts(
    gateway_app: GatewayApp,
    ray_head: RayHead,
) -> None:
    first = await gateway_app(pools=pools(ray_head))
    org = scripting(first)
    answer = await first.http(org.key).post(
        "/v1/compute/jobs",
        json={"entrypoint": f'{PY} -c "import time; time.sleep(3)"', "accelerators": 1, "cpus": 0.5},
    )
    assert answer.status_code == 200, answer.text
    job_id = answer.json()["id"]
    await first.platform.gateway.shutdown()  # the server stops while its job runs on
    async with aiohttp.ClientSession() as session:
        ray = RayJobs(session, "cq-npu", ray_head.dashboard, token=ray_head.token)
        deadline = asyncio.get_running_loop().time() + 60
        while not (found := await ray.get(job_id)) or not found.state.ended:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.3)
    assert found.state is RayState.SUCCEEDED
    with first.db.session() as session:
        assert session.get(ComputeJob, job_id).settled_at is None  # type: ignore[union-attr]

    # Two servers come back at once: one reconciles (the lease), both may sync the job; it is charged once.
    second = await gateway_app(pools=pools(ray_head))
    third = await gateway_app(pools=pools(ray_head))
    jobs = [p.platform.knowledge.state.jobs for p in (second, third)]
    await asyncio.gather(*(j.sync(job_id) for j in jobs), *(j.sync(job_id) for j in jobs))
    done = await until_ended(second, org.key, job_id)
    assert done["state"] == "succeeded"
    with second.db.session() as session:
        job = session.get(ComputeJob, job_id)
        waited = job.waiting_seen_at  # type: ignore[union-attr]
        records = session.scalar(
            select(func.count()).select_from(UsageRecord).where(UsageRecord.request_id == job_id)
        )
        txs = session.scalar(
            select(func.count(func.distinct(LedgerEntry.tx_id))).where(LedgerEntry.request_id == job_id)
        )
    assert (records, txs) == (1, 1)
    # Charged from Ray's own times: its end, from the later of its start and the last moment seen waiting.
    start = max(
        found.start_ms or 0,
        int(waited.replace(tzinfo=waited.tzinfo or dt.UTC).timestamp() * 1000) if waited else 0,
    )
    seconds = (found.end_ms - start) / 1000  # type: ignore[operator]
    assert 2 <= seconds < 30
    assert done["cost"] == f"{Decimal(charge_for(Decimal(36), seconds)) / 1_000_000:.6f}"
    assert second.balance(org) == 100_000_000 - charge_for(Decimal(36), seconds)


async def test_a_job_whose_pool_goes_away_before_it_starts_is_placed_again_on_another(
    gateway_app: GatewayApp,
    ray_head: RayHead,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GZ_RAY_TOKEN", "gz-secret-token")
    other = EmbeddedHead(resources={"NPU": 2}, cpus=2, token="gz-secret-token")  # a second region's cluster
    address = other.start(90)
    try:
        async with aiohttp.ClientSession() as session:  # its accelerators are all taken
            blocker = RayJobs(session, "gz-npu", address, token="gz-secret-token")
            sleep = f'{PY} -c "import time; time.sleep(600)"'
            await blocker.submit(
                "blocker-" + uuid.uuid4().hex[:8], sleep, JobRequest(accelerators=2, cpus=0.5), "NPU"
            )
        cheaper = {
            "name": "gz-npu",
            "region": "gz",
            "ray": address,
            "token": "env:GZ_RAY_TOKEN",  # read from the environment, as an operator would keep it
            "price": {"accelerator_hour": "10", "cpu_hour": "0"},
            "start_timeout_seconds": 3,
            **NPU,
        }
        platform = await gateway_app(pools=[cheaper, *pools(ray_head)])
        org = scripting(platform)
        client = platform.http(org.key)
        answer = await client.post(
            "/v1/compute/jobs",
            json={"entrypoint": f'{PY} -c "print(42)"', "accelerators": 1, "cpus": 0.5, "max_hours": 1},
        )
        assert answer.status_code == 200, answer.text
        job = answer.json()
        # The cheapest pool wins though it is full now (it can queue the job); the hold is its worst case.
        assert (job["pool"], job["state"], job["held"]) == ("gz-npu", "pending", "10.000000")
        assert [c["pool"] for c in job["considered"] if c["feasible"]] == ["gz-npu", "cq-npu"]
    finally:
        other.stop()  # the pool goes away while the job waits there
    done = await until_ended(platform, org.key, job["id"])
    assert done["state"] == "succeeded", done
    assert (done["pool"], done["attempts"]) == ("cq-npu", 2)
    assert "gz-npu" in done["message"]
    # Placed on a dearer pool, it held that pool's worst case too; it is charged at that pool's price.
    assert done["held"] == "36.000000"
    assert done["cost"] == f"{Decimal(charge_for(Decimal(36), done['seconds'])) / 1_000_000:.6f}"
    assert platform.balance(org) == 100_000_000 - charge_for(Decimal(36), done["seconds"])
    assert standing(platform, org) == 0


def test_the_cli_submits_follows_shows_lists_and_cancels_jobs(
    tmp_path: Path,
    database_url: str,
    redis_url: str | None,
    ray_head: RayHead,
) -> None:
    config = tmp_path / "dizuo.yaml"
    config.write_text(yaml.safe_dump({"local": False, "pools": pools(ray_head)}), encoding="utf-8")
    settings = load_settings(config, data_dir=tmp_path, database_url=database_url, redis_url=redis_url)
    db = Database(settings.resolved_database_url)
    db.upgrade()
    name = f"船厂-{uuid.uuid4().hex[:6]}"
    create_org(db, name)
    topup(db, name, 100_000_000)
    key = create_key(db, name, scopes=["compute"]).key
    assert (
        dizuo("admin", "allow-scripts", "--org", name, env={"DIZUO_DATABASE_URL": database_url}).returncode
        == 0
    )
    db.dispose()
    server = ServerThread(create_app(settings)).start()
    try:
        connect = ["--base-url", f"{server.url}/v1", "--api-key", key]
        work = tmp_path / "work"
        work.mkdir()
        (work / "main.py").write_text("print('曲轴探伤完成')\n", encoding="utf-8")
        said = dizuo(
            "compute", "submit", "--kind", "script", "--entrypoint", f"{PY} main.py", "--working-dir", str(work),
            "--accelerators", "1", "--cpus", "0.5", "--max-hours", "1", "--json", *connect,
        )  # fmt: skip
        assert said.returncode == 0, said.stderr
        job = json.loads(said.stdout)
        assert {"id", "state", "pool", "considered", "held"} <= job.keys()
        assert (job["pool"], job["held"]) == ("cq-npu", "36.000000")
        followed = dizuo("compute", "logs", job["id"], "--follow", *connect)
        assert followed.returncode == 0 and "曲轴探伤完成" in followed.stdout
        deadline = time.monotonic() + 30
        while not (shown := json.loads(dizuo("compute", "show", job["id"], "--json", *connect).stdout))[
            "settled"
        ]:
            assert time.monotonic() < deadline
            time.sleep(0.3)
        assert (
            shown["state"] == "succeeded"
            and shown["cost"] is not None
            and shown["started"]
            and shown["ended"]
        )
        assert job["id"] in dizuo("compute", "jobs", *connect).stdout

        refused = dizuo("compute", "submit", "--entrypoint", "true", "--accelerators", "8", *connect)
        assert refused.returncode == 2
        assert (
            "cq-npu" in refused.stderr
            and "xj-npu" in refused.stderr
            and "没有一个节点容得下" in refused.stderr
        )

        sleeping = dizuo(
            "compute", "submit", "--entrypoint", f'{PY} -c "import time; time.sleep(600)"', "--cpus", "0.5",
            "--json", *connect,
        )  # fmt: skip
        long_id = json.loads(sleeping.stdout)["id"]
        cancelled = dizuo("compute", "cancel", long_id, "--json", *connect)
        assert cancelled.returncode == 0 and json.loads(cancelled.stdout)["state"] == "cancelled"
    finally:
        server.stop()


async def test_platform_admins_add_reprice_and_remove_pools_at_run_time(
    gateway_app: GatewayApp,
    ray_head: RayHead,
) -> None:
    platform = await gateway_app(pools=pools(ray_head)[1:])  # the file has only the unreachable xj pool
    tag = uuid.uuid4().hex[:6]
    create_member(platform.db, f"admin-{tag}", "correct horse battery", "platform-admin")
    create_member(platform.db, f"auditor-{tag}", "correct horse battery", "auditor")
    admin = platform.http(create_token(platform.db, f"admin-{tag}"))
    auditor = platform.http(create_token(platform.db, f"auditor-{tag}"))
    org = scripting(platform)
    client = platform.http(org.key)
    cq = {**pools(ray_head)[0], "name": f"cq-{tag}"}

    bad = await admin.post("/admin/v1/compute/pools", json={**cq, "max_job_hours": -1})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "max_job_hours"
    clash = await admin.post("/admin/v1/compute/pools", json={**cq, "name": "xj-npu"})
    assert clash.status_code == 400 and "由配置文件定义" in clash.json()["error"]["message"]
    assert (await auditor.post("/admin/v1/compute/pools", json=cq)).status_code == 403
    added = await admin.post("/admin/v1/compute/pools", json=cq)
    assert added.status_code == 201, added.text
    assert (
        added.json()["token_set"] is True and "token" not in added.json() and ray_head.token not in added.text
    )
    listed = (await auditor.get("/admin/v1/compute/pools")).json()
    assert [(p["name"], p["run_time"]) for p in listed] == [("xj-npu", False), (cq["name"], True)]

    # Keys see it and jobs run on it at once, at its price; a new price applies to the next job.
    seen = (await client.get("/v1/compute/pools")).json()["data"]
    assert {p["name"]: p["up"] for p in seen} == {"xj-npu": False, cq["name"]: True}
    entry = f'{PY} -c "print(1)"'
    first = (
        await client.post("/v1/compute/jobs", json={"entrypoint": entry, "accelerators": 1, "cpus": 0.5})
    ).json()
    assert (first["pool"], first["price_cny_per_hour"]) == (cq["name"], "36.0")
    repriced = await admin.patch(
        f"/admin/v1/compute/pools/{cq['name']}", json={"price": {"accelerator_hour": "18"}}
    )
    assert repriced.status_code == 200 and repriced.json()["price"]["accelerator_hour"] == "18"
    second = (
        await client.post("/v1/compute/jobs", json={"entrypoint": entry, "accelerators": 1, "cpus": 0.5})
    ).json()
    assert second["price_cny_per_hour"] == "18.0" and second["held"] == "18.000000"
    for job in (first, second):
        assert (await until_ended(platform, org.key, job["id"]))["state"] == "succeeded"

    assert (await admin.delete(f"/admin/v1/compute/pools/{cq['name']}")).status_code == 204
    assert (await admin.delete("/admin/v1/compute/pools/xj-npu")).status_code == 400  # the file's
    gone = await client.post("/v1/compute/jobs", json={"entrypoint": entry, "accelerators": 1})
    assert gone.status_code == 400 and gone.json()["error"]["code"] == "compute_no_pool"
    trail = (await auditor.get("/admin/v1/audit?action=pool.update")).json()
    assert ray_head.token not in str(trail)


def test_an_eval_job_runs_the_bench_on_the_pool_through_the_gateway_and_is_recorded(
    tmp_path: Path,
    database_url: str,
    redis_url: str | None,
    ray_head: RayHead,
    upstream: FakeUpstream,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", UPSTREAM_KEY)
    echo = on(upstream, upstream_deployment("echo-model"))
    settings = pool_settings(
        tmp_path, pools(ray_head)[0], [echo], database_url=database_url, redis_url=redis_url
    )
    port = settings.port
    db = Database(settings.resolved_database_url)
    db.upgrade()
    name = f"船厂-{uuid.uuid4().hex[:6]}"
    create_org(db, name)
    topup(db, name, 100_000_000)
    key = create_key(db, name, scopes=["compute"], models=["echo-model"]).key  # no script permission needed
    server = ServerThread(create_app(settings), port=port).start()
    try:
        client = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
        for body, param in [
            ({"kind": "eval", "model": "echo-model"}, "suite"),
            ({"kind": "eval", "suite": "zh-knowledge", "model": "other-model"}, "model"),
            ({"kind": "eval", "suite": "no-such-suite", "model": "echo-model"}, "suite"),
            (
                {"kind": "eval", "suite": "zh-knowledge", "model": "echo-model", "entrypoint": "rm -rf /"},
                "entrypoint",
            ),
        ]:
            refused = client.post("/v1/compute/jobs", json=body)
            assert refused.status_code == 400 and refused.json()["error"]["param"] == param, refused.text
        job = client.post(
            "/v1/compute/jobs",
            json={"kind": "eval", "suite": "zh-knowledge", "model": "echo-model", "cpus": 0.5},
        ).json()
        assert job["entrypoint"] == "dizuo eval run --suite zh-knowledge --model echo-model"
        deadline = time.monotonic() + 120
        while not (done := client.get(f"/v1/compute/jobs/{job['id']}").json())["settled"]:
            assert time.monotonic() < deadline, done
            time.sleep(0.5)
        assert done["state"] == "succeeded", (
            done,
            client.get(f"/v1/compute/jobs/{job['id']}/logs").text[-2000:],
        )
        run_id = done["message"].rsplit(" ", 1)[-1]
        with db.session() as session:
            run = session.get(EvalRun, run_id)
            assert run is not None and (run.status, run.model, run.suite) == (
                "done",
                "echo-model",
                "zh-knowledge",
            )
            assert run.created_by == f"job:{job['id']}" and run.summary["overall"]["n"] == 32
            # The bench asked the model through the gateway with the job's own key: 32 metered calls.
            job_key = session.scalars(select(ApiKey).where(ApiKey.name == f"compute job {job['id']}")).one()
            calls = session.scalar(
                select(func.count()).select_from(UsageRecord).where(UsageRecord.key_id == job_key.id)
            )
            assert calls == 32 and job_key.revoked_at is not None  # and the key ended with the job
        report = tmp_path / "evals" / run_id / "report.html"
        assert report.exists() and "zh-knowledge" in report.read_text(encoding="utf-8")
    finally:
        server.stop()
        db.dispose()


async def test_a_job_that_reaches_its_maximum_duration_is_stopped_and_charged_no_more(
    gateway_app: GatewayApp,
    ray_head: RayHead,
) -> None:
    platform = await gateway_app(pools=pools(ray_head))
    org = scripting(platform)
    client = platform.http(org.key)
    longest = 3 / 3600  # three seconds
    answer = await client.post(
        "/v1/compute/jobs",
        json={
            "entrypoint": f'{PY} -c "import time; time.sleep(600)"',
            "accelerators": 1,
            "cpus": 0.5,
            "max_hours": longest,
        },
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["held"] == "0.030000"  # three seconds at a cent a second
    done = await until_ended(platform, org.key, answer.json()["id"], seconds=60)
    assert done["state"] == "failed" and "maximum duration" in done["message"]
    assert (
        done["seconds"] <= 3
        and done["cost"] == f"{Decimal(charge_for(Decimal(36), done['seconds'])) / 1_000_000:.6f}"
    )
    assert platform.balance(org) == 100_000_000 - charge_for(Decimal(36), done["seconds"])
