"""The data sandbox in a real browser: an enterprise's developer reads the catalog (no values) and
requests a dataset; the owner's admin grants the request, choosing its columns; the developer runs
a query and sees what left and what was withheld, and a forbidden query refused with its position;
the owner's admin sees the log and revokes the grant."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from dizuo.accounts import create_org
from dizuo.accounts.members import create_member
from dizuo.compute.tables import ComputeJob
from dizuo.sandbox.jobs import SandboxJobs
from dizuo.sandbox.service import Grantee, Sandbox
from dizuo.store import Database
from tests.sandbox.conftest import Residents
from tests.support.browser import PASSWORD, screenshot, sign_in
from tests.support.platform import RunningGateway, Serve


@pytest.fixture(scope="module")
def gateway(serve: Serve) -> Iterator[RunningGateway]:
    """The sandbox's console pages on a platform served for this module (no models: the sandbox's pages need
    none)."""
    with serve([]) as running:
        yield running


def parties(gateway: RunningGateway) -> tuple[Sandbox, Database, str]:
    """The platform's sandbox, its database, and a tag for this test's names."""
    sandbox = cast(Sandbox, gateway.platform.knowledge.state.sandbox)
    return sandbox, Database(gateway.settings.resolved_database_url), uuid.uuid4().hex[:6]


def test_request_grant_query_and_revoke_in_the_console(
    gateway: RunningGateway, browser: Any, residents: Residents
) -> None:
    sandbox, db, tag = parties(gateway)
    owner, enterprise = create_org(db, f"大数据局-{tag}"), create_org(db, f"保险公司-{tag}")
    name = f"居民_{tag}"
    sandbox.add_dataset(
        owner.id,
        {
            "name": name,
            "classification": "important",
            "personal": True,
            "identifiers": ["身份证号", "姓名", "手机号"],
            "description": "常住人口（合成）",
        },
        residents.path,
        residents.path.name,
        "数据局",
    )
    create_member(db, f"dev-{tag}", PASSWORD, "org-developer", org=enterprise.name)
    create_member(db, f"owner-{tag}", PASSWORD, "org-admin", org=owner.name)
    db.dispose()

    dev = sign_in(browser, gateway.url, f"dev-{tag}")
    dev.get_by_role("link", name="数据沙盒", exact=True).click()
    catalog = dev.get_by_test_id("sandbox-datasets").inner_text()
    assert name in catalog and "标识符" in catalog and residents.rows[0]["身份证号"] not in dev.content()
    row = dev.locator(f"tr[data-dataset='{name}']")
    row.get_by_placeholder("用途").fill("测算参保缺口")
    row.get_by_role("button", name="申请使用").click()

    admin = sign_in(browser, gateway.url, f"owner-{tag}")
    admin.goto(f"{gateway.url}/console/sandbox")
    asked = admin.locator("tr[data-request]", has_text="测算参保缺口")
    asked.get_by_label("区县").check()
    asked.get_by_label("参保类别").check()
    assert asked.get_by_label("身份证号").count() == 0  # identifiers cannot be granted
    asked.get_by_role("button", name="批准").click()
    granted = admin.get_by_test_id("sandbox-grants").inner_text()
    assert "测算参保缺口" in granted and "区县、参保类别" in granted and "有效" in granted

    dev.goto(f"{gateway.url}/console/sandbox")
    dev.fill("#sb-sql", f"SELECT 区县, count(*) AS 人数 FROM {name} GROUP BY 区县 ORDER BY 区县")
    dev.get_by_role("button", name="运行").click()
    result = dev.get_by_test_id("sandbox-result").inner_text()
    assert "渝北区" in result and "城口县" not in result
    assert "少于 10 行" in dev.get_by_test_id("sandbox-note").inner_text()
    screenshot(dev, "console-sandbox-query")
    dev.fill("#sb-sql", f"SELECT 区县,\n  姓名 FROM {name}")
    dev.get_by_role("button", name="运行").click()
    refused = dev.get_by_test_id("sandbox-refused").inner_text()
    assert "第 2 行第 3 列" in refused and "标识符" in refused

    admin.goto(f"{gateway.url}/console/sandbox")
    log = admin.get_by_test_id("sandbox-log").inner_text()
    assert "放行" in log and "拒绝" in log and "sandbox_query_refused" in log
    grant = sandbox.grants(enterprise.id)[0]
    assert grant["columns"] == ["区县", "参保类别"] and grant["k"] == 10
    admin.locator(f"tr[data-grant='{grant['id']}'] button").click()
    assert "已撤销" in admin.locator(f"tr[data-grant='{grant['id']}']").inner_text()
    screenshot(admin, "console-sandbox-owner")


def test_the_owner_reviews_a_sandbox_job_s_release_and_the_enterprise_downloads_it_once_approved(
    gateway: RunningGateway, browser: Any, residents: Residents
) -> None:
    sandbox, db, tag = parties(gateway)
    owner, enterprise = create_org(db, f"大数据局-{tag}"), create_org(db, f"保险公司-{tag}")
    name = f"居民_{tag}"
    sandbox.add_dataset(owner.id, {"name": name, "classification": "important", "identifiers": ["身份证号", "姓名", "手机号"]}, residents.path, residents.path.name, "数据局")  # fmt: skip
    grant = sandbox.grant(name, enterprise.id, {"columns": ["区县", "月收入"], "jobs": True}, Grantee(owner.id, "数据局"))  # fmt: skip
    # Two jobs ended on the pool (the pool itself is tested in test_jobs.py): what they wrote, as the
    # worker sent it, waits for the owner.
    releases = SandboxJobs(sandbox)
    made = []
    for n, (printed, files) in enumerate(
        [
            ("epoch 1 loss 0.31\n", {"model.json": b'{"weights": [0.1, 0.2]}'}),
            ("first row: 渝中区 8723.0\n", {"rows.csv": "区县,电话\n渝中区,13800138000\n".encode()}),
        ]
    ):
        spec = {"dataset": name, "dataset_id": sandbox.dataset(name)["id"], "grant": grant["id"], "columns": ["区县", "月收入"]}  # fmt: skip
        job = ComputeJob(id=f"job{n}{tag}", org_id=enterprise.id, spec={"sandbox": spec})
        for file, content in files.items():
            releases.stage(job, file, content)
        releases.ending(job, "succeeded", printed)
        made.append(releases.releases(enterprise.id)[0]["id"])
    good, leaky = made
    create_member(db, f"dev-{tag}", PASSWORD, "org-developer", org=enterprise.name)
    create_member(db, f"owner-{tag}", PASSWORD, "org-admin", org=owner.name)
    db.dispose()

    dev = sign_in(browser, gateway.url, f"dev-{tag}")
    dev.goto(f"{gateway.url}/console/sandbox")
    held = dev.locator(f"tr[data-release='{good}']")
    assert "待审核" in held.inner_text() and "model.json" in held.inner_text()
    assert held.get_by_role("link", name="model.json").count() == 0  # not before it is approved
    assert dev.get_by_test_id("sandbox-printed").count() == 0  # what the jobs printed is the owner's
    assert dev.get_by_role("button", name="批准发放").count() == 0

    admin = sign_in(browser, gateway.url, f"owner-{tag}")
    admin.goto(f"{gateway.url}/console/sandbox")
    review = admin.locator(f"tr[data-release='{leaky}']")
    review.get_by_text("作业打印的输出").click()
    assert "first row" in review.get_by_test_id("sandbox-printed").inner_text()
    assert "CN_MOBILE × 1" in review.get_by_test_id("sandbox-finding").inner_text()
    with admin.expect_download() as download:
        review.get_by_role("link", name="rows.csv").click()
    assert "13800138000" in Path(download.value.path()).read_text(encoding="utf-8")
    review.get_by_label("理由").fill("含电话号码")
    review.get_by_role("button", name="拒绝").click()
    assert "已拒绝" in admin.locator(f"tr[data-release='{leaky}']").inner_text()
    admin.locator(f"tr[data-release='{good}']").get_by_role("button", name="批准发放").click()
    assert "已发放" in admin.locator(f"tr[data-release='{good}']").inner_text()
    screenshot(admin, "console-sandbox-releases")

    dev.goto(f"{gateway.url}/console/sandbox")
    with dev.expect_download() as download:
        dev.locator(f"tr[data-release='{good}']").get_by_role("link", name="model.json").click()
    assert json.loads(Path(download.value.path()).read_text(encoding="utf-8")) == {"weights": [0.1, 0.2]}
    refused = dev.locator(f"tr[data-release='{leaky}']").inner_text()
    assert "已拒绝" in refused and "含电话号码" in refused and "rows.csv" not in refused


def test_an_owner_registers_a_dataset_from_the_console(
    gateway: RunningGateway, browser: Any, tmp_path: Path
) -> None:
    sandbox, db, tag = parties(gateway)
    owner = create_org(db, f"大数据局-{tag}")
    create_member(db, f"owner-{tag}", PASSWORD, "org-admin", org=owner.name)
    create_member(db, f"dev-{tag}", PASSWORD, "org-developer", org=owner.name)
    db.dispose()
    csv_file = tmp_path / "企业名录.csv"
    rows = "".join(f"{'渝中区' if i % 2 else '江北区'},{i},{10 + i}\n" for i in range(40))
    csv_file.write_text("区县,企业编号,员工数\n" + rows, encoding="utf-8")
    name = f"企业_{tag}"

    admin = sign_in(browser, gateway.url, f"owner-{tag}")
    admin.goto(f"{gateway.url}/console/sandbox")
    admin.get_by_text("登记数据集（本组织为数据所有方）").click()
    form = admin.get_by_test_id("sandbox-register")
    form.get_by_label("数据集").fill(name)
    form.get_by_label("文件").set_input_files(str(csv_file))
    form.get_by_label("分级").select_option("core")  # refused: core data never enters the sandbox
    form.get_by_label("标识符列（身份证号、姓名、手机号…）").fill("企业编号")
    form.get_by_role("button", name="登记").click()
    assert "核心数据" in admin.get_by_test_id("sandbox-register-problem").inner_text()
    form = admin.get_by_test_id("sandbox-register")
    assert form.get_by_label("数据集").input_value() == name  # what was typed is kept
    form.get_by_label("文件").set_input_files(str(csv_file))
    form.get_by_label("分级").select_option("general")
    form.get_by_role("button", name="登记").click()
    row = admin.locator(f"tr[data-dataset='{name}']").inner_text()
    assert "40" in row and "企业编号 (标识符)" in row and f"大数据局-{tag}" in row
    assert sandbox.dataset(name)["columns"][1]["sensitivity"] == "identifier"
    developer = sign_in(browser, gateway.url, f"dev-{tag}")
    developer.goto(f"{gateway.url}/console/sandbox")
    assert developer.get_by_test_id("sandbox-register").count() == 0  # the owner's admins register
