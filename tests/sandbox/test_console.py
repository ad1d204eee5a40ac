"""The data sandbox in a real browser: an enterprise's developer reads the catalog (no values) and
requests a dataset; the owner's admin grants the request, choosing its columns; the developer runs
a query and sees what left and what was withheld, and a forbidden query refused with its position;
the owner's admin sees the log and revokes the grant."""

from __future__ import annotations

import uuid
from typing import Any, cast

from dizuo.accounts import create_org
from dizuo.accounts.members import create_member
from dizuo.sandbox.service import Sandbox
from dizuo.store import Database
from tests.conftest import RunningGateway
from tests.sandbox.conftest import Residents
from tests.support.browser import PASSWORD, screenshot, sign_in


def test_request_grant_query_and_revoke_in_the_console(
    gateway: RunningGateway, browser: Any, residents: Residents
) -> None:
    sandbox = cast(Sandbox, gateway.platform.knowledge.state.sandbox)
    db = Database(gateway.settings.resolved_database_url)
    tag = uuid.uuid4().hex[:6]
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
