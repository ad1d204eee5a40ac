"""The scenario pages in a real browser: anyone reads the published list without signing in (no
contacts); a member sees its own drafts and every published scenario; the office sees all."""

from __future__ import annotations

import uuid
from typing import Any

from dizuo.accounts import create_org
from dizuo.accounts.members import create_member
from dizuo.scenarios.service import Scenarios
from dizuo.store import Database
from tests.conftest import RunningGateway
from tests.support.browser import PASSWORD, screenshot, sign_in

LONG = "每月约 3000 份质检报告需要人工核对，耗时长、易漏检。"


def test_the_public_list_and_each_member_s_view(gateway: RunningGateway, browser: Any) -> None:
    db = Database(gateway.settings.resolved_database_url)
    tag = uuid.uuid4().hex[:6]
    demand, other, supplier = (create_org(db, f"{n}-{tag}").id for n in ("船机厂", "电子厂", "软件公司"))
    scenarios = Scenarios(db)
    shown = scenarios.create(demand, {"title": f"质检报告审核-{tag}", "industry": "C", "district": "江津区", "description": LONG, "contact": "王工 13800138000"}, "t")  # fmt: skip
    draft = scenarios.create(demand, {"title": f"仓储调度-{tag}", "industry": "G", "district": "两江新区", "description": LONG, "contact": "李工"}, "t")  # fmt: skip
    scenarios.move(shown["id"], "submitted", "t", org_id=demand)
    for to, extra in (("under_review", {}), ("selected", {}), ("published", {"list_name": "2026年第一批"}), ("taken", {"taker_org_id": supplier})):  # fmt: skip
        scenarios.move(shown["id"], to, "office", office=True, **extra)
    create_member(db, f"other-{tag}", PASSWORD, "org-developer", org=f"电子厂-{tag}")
    create_member(db, f"mine-{tag}", PASSWORD, "org-admin", org=f"船机厂-{tag}")
    db.dispose()
    del other

    anyone = browser.new_context(locale="zh-CN").new_page()
    anyone.goto(f"{gateway.url}/console/scenarios/public")
    listed = anyone.get_by_test_id("scenarios").inner_text()
    assert f"质检报告审核-{tag}" in listed and "2026年第一批" in listed and f"软件公司-{tag}" in listed
    assert f"仓储调度-{tag}" not in listed and "13800138000" not in anyone.content()
    screenshot(anyone, "console-scenarios-public")

    stranger = sign_in(browser, gateway.url, f"other-{tag}")
    stranger.get_by_role("link", name="场景清单", exact=True).click()
    theirs = stranger.get_by_test_id("scenarios").inner_text()
    assert f"质检报告审核-{tag}" in theirs and f"仓储调度-{tag}" not in theirs and "13800138000" not in theirs

    owner = sign_in(browser, gateway.url, f"mine-{tag}")
    owner.goto(f"{gateway.url}/console/scenarios?status=draft")
    own = owner.get_by_test_id("scenarios").inner_text()
    assert f"仓储调度-{tag}" in own and "李工" in own and f"质检报告审核-{tag}" not in own
    assert draft["status"] == "draft"
