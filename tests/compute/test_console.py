"""The console's compute pages in a real browser: pools with what is free now, an organization's jobs
with their state and cost, one job's placement table, charge and logs; another organization's job is
not found."""

from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from dizuo.accounts import create_key, create_org
from dizuo.accounts.members import create_member
from dizuo.accounts.service import change_org
from dizuo.app import create_app, load_settings
from dizuo.billing.service import topup
from dizuo.store import Database
from tests.support.browser import PASSWORD, screenshot, sign_in
from tests.support.ray import RayHead
from tests.support.servers import ServerThread

pytestmark = pytest.mark.xdist_group("ray")


def test_members_see_pools_their_jobs_placement_cost_and_logs(
    browser: Any, tmp_path: Path, database_url: str, redis_url: str | None, ray_head: RayHead
) -> None:
    pool = {
        "name": "cq-npu",
        "region": "cq",
        "ray": ray_head.dashboard,
        "token": ray_head.token,
        "accelerator": "ascend-910b",
        "resources": {"accelerator_resource": "NPU"},
        "price": {"accelerator_hour": "36"},
    }
    config = tmp_path / "dizuo.yaml"
    config.write_text(yaml.safe_dump({"local": False, "pools": [pool]}), encoding="utf-8")
    settings = load_settings(config, data_dir=tmp_path, database_url=database_url, redis_url=redis_url)
    db = Database(settings.resolved_database_url)
    db.upgrade()
    tag = uuid.uuid4().hex[:6]
    mine, other = f"船厂-{tag}", f"电子厂-{tag}"
    for name in (mine, other):
        create_org(db, name)
        topup(db, name, 100_000_000)
        change_org(db, name, allow_scripts=True)
        create_member(db, f"admin-{name}", PASSWORD, "org-admin", org=name)
    key = create_key(db, mine, scopes=["compute"]).key
    db.dispose()
    server = ServerThread(create_app(settings)).start()
    try:
        script = "print('缸体探伤报告：合格')"
        job = httpx.post(
            f"{server.url}/v1/compute/jobs",
            headers={"Authorization": f"Bearer {key}"},
            json={
                "name": "缸体探伤",
                "entrypoint": f'{sys.executable} -c "{script}"',
                "accelerators": 1,
                "cpus": 0.5,
            },
            timeout=60,
        ).json()
        deadline = time.monotonic() + 60
        while not (
            shown := httpx.get(
                f"{server.url}/v1/compute/jobs/{job['id']}", headers={"Authorization": f"Bearer {key}"}
            ).json()
        )["settled"]:
            assert time.monotonic() < deadline, shown
            time.sleep(0.3)

        page = sign_in(browser, server.url, f"admin-{mine}")
        page.get_by_role("link", name="算力", exact=True).click()
        assert page.get_by_role("heading", level=1).inner_text().startswith("算力资源池与作业")
        pools = page.get_by_test_id("pools").get_by_role("row").filter(has_text="cq-npu")
        assert "可用" in pools.inner_text() and "36" in pools.inner_text()
        row = page.get_by_test_id("jobs").get_by_role("row").filter(has_text="缸体探伤")
        assert "成功" in row.inner_text() and shown["cost"] in row.inner_text()
        # The reconciler reads every pool once a minute: the utilization chart has the pool's line.
        chart = json.loads(page.get_by_test_id("utilization").text_content() or "{}")
        assert len(chart["labels"]) == 96 and any(v is not None for v in chart["series"]["pools"]["cq-npu"])
        assert page.locator("[data-chart=pools] svg").count() == 1  # drawn
        screenshot(page, "console-compute")
        row.get_by_role("link").click()
        assert page.get_by_test_id("state").inner_text() == "成功"
        assert page.get_by_test_id("cost").inner_text() == shown["cost"]
        assert "cq-npu" in page.get_by_test_id("considered").inner_text()
        assert "缸体探伤报告：合格" in page.get_by_test_id("logs").inner_text()
        screenshot(page, "console-compute-job")

        stranger = sign_in(browser, server.url, f"admin-{other}")
        answer = stranger.goto(f"{server.url}/console/compute/jobs/{job['id']}")
        assert answer is not None and answer.status == 404
        stranger.goto(f"{server.url}/console/compute")
        assert "缸体探伤" not in stranger.content()
    finally:
        server.stop()
