"""The scenario pages in a real browser: anyone reads the published list without signing in (no
contacts); a member sees its own drafts and every published scenario; the office sees all."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from dizuo.accounts import create_org
from dizuo.accounts.members import create_member
from dizuo.scenarios.service import Scenarios
from dizuo.store import Database
from tests.support.browser import PASSWORD, screenshot, sign_in
from tests.support.platform import RunningGateway, Serve

CRITERIA = (
    "需求清晰度 (0–10)",
    "数据与系统基础 (0–10)",
    "示范与推广价值 (0–10)",
    "技术可行性 (0–10)",
    "投入合理性 (0–10)",
)
LONG = "每月约 3000 份质检报告需要人工核对，耗时长、易漏检。"


@pytest.fixture(scope="module")
def gateway(serve: Serve) -> Iterator[RunningGateway]:
    """The scenario list's console pages on a platform served for this module (they call no model)."""
    with serve([]) as running:
        yield running


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


def test_a_supplier_applies_in_the_console_and_the_demand_side_awards(
    gateway: RunningGateway, browser: Any
) -> None:
    db = Database(gateway.settings.resolved_database_url)
    tag = uuid.uuid4().hex[:6]
    demand, first, second = (f"{n}-{tag}" for n in ("船机厂", "软件公司", "视觉公司"))
    demand_id = create_org(db, demand).id
    create_org(db, first)
    create_org(db, second)
    scenarios = Scenarios(db)
    made = scenarios.create(demand_id, {"title": f"质检报告审核-{tag}", "industry": "C", "district": "江津区", "description": LONG}, "t")  # fmt: skip
    scenarios.move(made["id"], "submitted", "t", org_id=demand_id)
    for to, extra in (("under_review", {}), ("selected", {}), ("published", {"list_name": "2026年第一批"})):  # fmt: skip
        scenarios.move(made["id"], to, "office", office=True, **extra)
    for nickname, org in (("owner", demand), ("first", first), ("second", second)):
        create_member(db, f"{nickname}-{tag}", PASSWORD, "org-admin", org=org)
    db.dispose()
    url = f"{gateway.url}/console/scenarios/{made['id']}"

    supplier = sign_in(browser, gateway.url, f"first-{tag}")
    supplier.goto(f"{gateway.url}/console/scenarios")
    supplier.get_by_role("link", name=f"质检报告审核-{tag}").click()
    supplier.get_by_label("揭榜方案").fill("短")  # too short: the error, the text kept
    supplier.get_by_role("button", name="申请揭榜").click()
    assert "10 至 20000" in supplier.get_by_test_id("scenario-problem").inner_text()
    assert supplier.get_by_label("揭榜方案").input_value() == "短"
    supplier.get_by_label("揭榜方案").fill("三个月交付试点：知识库加报告自动校核，校核时间缩短 80%。")
    supplier.get_by_role("button", name="申请揭榜").click()
    assert "已申请" in supplier.get_by_test_id("applications").inner_text()
    rival = sign_in(browser, gateway.url, f"second-{tag}")
    rival.goto(url)
    assert "三个月交付试点" not in rival.content()  # another supplier's proposal is never shown
    rival.get_by_label("揭榜方案").fill("边缘部署视觉检测，同时校核报告，两个月上线。")
    rival.get_by_role("button", name="申请揭榜").click()

    owner = sign_in(browser, gateway.url, f"owner-{tag}")
    owner.goto(url)
    rows = owner.get_by_test_id("applications")
    assert first in rows.inner_text() and second in rows.inner_text()
    row = rows.locator(f"tr[data-application='{first}']")
    row.get_by_role("button", name="入围").click()
    assert (
        "已入围"
        in owner.get_by_test_id("applications").locator(f"tr[data-application='{first}']").inner_text()
    )
    owner.get_by_label(f"理由 {first}").fill("方案最完整")
    owner.get_by_test_id("applications").locator(f"tr[data-application='{first}']").get_by_role(
        "button", name="定标"
    ).click()
    facts = owner.get_by_test_id("scenario").inner_text()
    assert "已揭榜" in facts and first in facts
    decided = owner.get_by_test_id("applications").inner_text()
    assert "已中标" in decided and "未中标" in decided and "方案最完整" in decided
    screenshot(owner, "console-scenario-applications")
    rival.goto(url)
    assert "未中标" in rival.get_by_test_id("applications").inner_text()


def test_reviewers_score_in_the_console_the_office_sees_the_spread_and_the_taker_keeps_milestones(
    gateway: RunningGateway, browser: Any
) -> None:
    from dizuo.scenarios.reviews import DEFAULT_RUBRIC, Reviews

    db = Database(gateway.settings.resolved_database_url)
    tag = uuid.uuid4().hex[:6]
    demand, taker = f"船机厂-{tag}", f"软件公司-{tag}"
    demand_id = create_org(db, demand).id
    taker_id = create_org(db, taker).id
    scenarios = Scenarios(db)
    made = scenarios.create(demand_id, {"title": f"质检报告审核-{tag}", "industry": "C", "district": "江津区", "description": LONG}, "t")  # fmt: skip
    scenarios.move(made["id"], "submitted", "t", org_id=demand_id)
    scenarios.move(made["id"], "under_review", "office", office=True)
    Reviews(db).set_rubric({"criteria": [{"key": k, "name_zh": zh, "name_en": en, "weight": w} for k, zh, en, w in DEFAULT_RUBRIC]}, "t")  # fmt: skip
    for nickname, role, org in (("expert", "reviewer", None), ("other", "reviewer", None), ("office", "program-office", None), ("builder", "supplier", taker)):  # fmt: skip
        create_member(db, f"{nickname}-{tag}", PASSWORD, role, **({"org": org} if org else {}))
    Reviews(db).score(made["id"], f"other-{tag}", {"scores": {"need": 6, "data": 4, "value": 7, "feasibility": 5, "budget": 9}})  # fmt: skip
    db.dispose()
    url = f"{gateway.url}/console/scenarios/{made['id']}"

    expert = sign_in(browser, gateway.url, f"expert-{tag}")
    expert.goto(url)
    assert expert.get_by_test_id("applications").count() == 0  # a reviewer sees no proposal
    for label, value in (("需求清晰度 (0–10)", "8"), ("数据与系统基础 (0–10)", "6"), ("示范与推广价值 (0–10)", "9"), ("技术可行性 (0–10)", "7"), ("投入合理性 (0–10)", "5")):  # fmt: skip
        expert.get_by_label(label).fill(value)
    expert.get_by_label("评语").fill("示范性强")
    expert.get_by_role("button", name="提交评分").click()
    mine = expert.get_by_test_id("reviews").inner_text()
    assert "74.0" in mine and f"other-{tag}" not in mine and "60.0" not in mine  # alone

    office = sign_in(browser, gateway.url, f"office-{tag}")
    office.goto(url)
    table = office.get_by_test_id("reviews")
    assert table.locator(f'tr[data-reviewer="expert-{tag}"]').inner_text().split("\t")[1] == "74.0"
    assert "67.0" in table.locator('tr[data-spread="mean"]').inner_text()
    assert "7.0" in table.locator('tr[data-spread="stdev"]').inner_text()
    screenshot(office, "console-scenario-reviews")

    db = Database(gateway.settings.resolved_database_url)
    for to, extra in (("selected", {}), ("published", {"list_name": "2026年第一批"}), ("taken", {"taker_org_id": taker_id})):  # fmt: skip
        scenarios = Scenarios(db)
        scenarios.move(made["id"], to, "office", office=True, **extra)
    db.dispose()
    builder = sign_in(browser, gateway.url, f"builder-{tag}")
    builder.goto(url)
    builder.get_by_label("里程碑", exact=True).fill("试点上线")
    builder.get_by_label("计划日期").fill("2020-01-31")
    builder.get_by_role("button", name="添加里程碑").click()
    row = builder.get_by_test_id("milestones").locator('tr[data-milestone="试点上线"]')
    assert "已逾期" in row.inner_text()
    row.get_by_label("完成依据 试点上线").fill("试点运行报告 v1.0")
    row.get_by_role("button", name="记录完成").click()
    assert "逾期完成" in builder.get_by_test_id("milestones").inner_text()
    assert "试点运行报告 v1.0" in builder.get_by_test_id("milestones").inner_text()
    # A bad day is answered on the page, nothing added.
    builder.get_by_label("里程碑", exact=True).fill("全面推广")
    builder.get_by_role("button", name="添加里程碑").click()
    assert "日期" in builder.get_by_test_id("scenario-problem").inner_text()
    assert "全面推广" not in builder.get_by_test_id("milestones").inner_text()


def test_the_demand_side_submits_a_scenario_in_the_console_and_the_office_moves_it(
    gateway: RunningGateway, browser: Any
) -> None:
    db = Database(gateway.settings.resolved_database_url)
    tag = uuid.uuid4().hex[:6]
    demand = f"船机厂-{tag}"
    create_org(db, demand)
    create_member(db, f"owner-{tag}", PASSWORD, "org-developer", org=demand)
    create_member(db, f"office-{tag}", PASSWORD, "program-office")
    db.dispose()

    owner = sign_in(browser, gateway.url, f"owner-{tag}")
    owner.goto(f"{gateway.url}/console/scenarios")
    owner.get_by_role("link", name="提交新的场景需求").click()
    owner.get_by_label("场景", exact=True).fill(f"质检报告审核-{tag}")
    owner.get_by_label("行业").select_option("37")  # a division of section C
    owner.get_by_label("区县").fill("江津区")
    owner.get_by_label("场景描述").fill(LONG)
    owner.get_by_label("预算上限（元）").fill("八十万")  # not an amount: the error, the text kept
    owner.get_by_role("button", name="保存为草稿").click()
    assert "budget_max" in owner.get_by_test_id("scenario-problem").inner_text()
    assert owner.get_by_label("场景描述").input_value() == LONG
    owner.get_by_label("预算上限（元）").fill("800000")
    owner.get_by_role("button", name="保存为草稿").click()
    facts = owner.get_by_test_id("scenario").inner_text()
    assert "草稿" in facts and "800000.00" in facts
    assert "C37 铁路、船舶、航空航天和其他运输设备制造业" in facts
    # The draft is changed in the form it was written in: what it holds is filled in.
    owner.get_by_role("link", name="修改草稿").click()
    assert owner.get_by_label("场景描述").input_value() == LONG
    assert owner.get_by_label("行业").input_value() == "37"
    owner.get_by_label("区县").fill("永川区")
    owner.get_by_label("预算上限（元）").fill("-1")  # refused, nothing changed
    owner.get_by_role("button", name="保存为草稿").click()
    assert "budget_max" in owner.get_by_test_id("scenario-problem").inner_text()
    owner.get_by_label("预算上限（元）").fill("900000")
    owner.get_by_role("button", name="保存为草稿").click()
    facts = owner.get_by_test_id("scenario").inner_text()
    assert "永川区" in facts and "900000.00" in facts and "江津区" not in facts
    # The demand side submits its draft; the office's moves are not offered to it.
    assert owner.get_by_role("button", name="改为：评审中").count() == 0
    owner.get_by_role("button", name="改为：已提交").click()
    assert "已提交" in owner.get_by_test_id("scenario").inner_text()
    assert owner.get_by_role("link", name="修改草稿").count() == 0  # past its draft: moves only
    url = owner.url

    office = sign_in(browser, gateway.url, f"office-{tag}")
    office.goto(url)
    for stage in ("评审中", "入选"):
        office.get_by_role("button", name=f"改为：{stage}").click()
        assert stage in office.get_by_test_id("scenario").inner_text()
    office.get_by_role("button", name="改为：已发布").click()  # no list: refused, named
    assert "2026年第一批" in office.get_by_test_id("scenario-problem").inner_text()
    office.get_by_label("清单批次").fill("2026年第六批")
    office.get_by_role("button", name="改为：已发布").click()
    assert "2026年第六批" in office.get_by_test_id("scenario").inner_text()


def test_members_read_the_supply_catalog_and_the_suppliers_that_fit_a_scenario(
    gateway: RunningGateway, browser: Any
) -> None:
    from sqlalchemy import delete

    from dizuo.scenarios.suppliers import Suppliers
    from dizuo.scenarios.tables import Supplier

    db = Database(gateway.settings.resolved_database_url)
    tag = uuid.uuid4().hex[:6]
    demand_id = create_org(db, f"船机厂-{tag}").id
    vision, farm = (create_org(db, f"{n}-{tag}") for n in ("视觉公司", "农业公司"))
    catalog = Suppliers(db)
    catalog.put(vision.id, {"name": f"工业视觉检测-{tag}", "summary": "质检报告智能审核与零部件表面缺陷视觉检测。", "industries": ["C"], "regions": ["江津区"], "cases": [{"title": "船机零件质检", "industry": "C", "year": 2025}], "certifications": ["ISO 9001"]}, "t")  # fmt: skip
    catalog.put(farm.id, {"name": f"智慧农业-{tag}", "summary": "大棚环境监测与病虫害识别。", "industries": ["A"], "regions": ["涪陵区"]}, "t")  # fmt: skip
    scenarios = Scenarios(db)
    made = scenarios.create(demand_id, {"title": f"质检报告审核-{tag}", "industry": "C", "district": "江津区", "description": LONG}, "t")  # fmt: skip
    scenarios.move(made["id"], "submitted", "t", org_id=demand_id)
    for to, extra in (("under_review", {}), ("selected", {}), ("published", {"list_name": "2026年第一批"})):  # fmt: skip
        scenarios.move(made["id"], to, "office", office=True, **extra)
    create_member(db, f"owner-{tag}", PASSWORD, "org-admin", org=f"船机厂-{tag}")
    db.dispose()

    try:
        owner = sign_in(browser, gateway.url, f"owner-{tag}")
        owner.get_by_role("link", name="供给能力目录").click()
        listed = owner.get_by_test_id("suppliers")
        assert "ISO 9001" in listed.locator(f'tr[data-supplier="视觉公司-{tag}"]').inner_text()
        assert "A 农、林、牧、渔业" in listed.locator(f'tr[data-supplier="农业公司-{tag}"]').inner_text()
        owner.goto(f"{gateway.url}/console/scenarios/{made['id']}")
        owner.get_by_test_id("matches-link").click()
        rows = owner.get_by_test_id("matches").locator("tbody tr")
        assert rows.first.get_attribute("data-match") == f"视觉公司-{tag}"
        assert "同行业案例 1 个" in rows.first.inner_text()
        # Another industry and district: not a match.
        assert f"农业公司-{tag}" not in owner.get_by_test_id("matches").inner_text()
    finally:
        # The catalog is the shared platform's: the matching tests' rankings must not see these two.
        db = Database(gateway.settings.resolved_database_url)
        with db.session() as session:
            session.execute(delete(Supplier).where(Supplier.org_id.in_([vision.id, farm.id])))
        db.dispose()


def test_a_scenario_s_whole_life_in_the_browser_each_role_seeing_only_its_part(
    gateway: RunningGateway, browser: Any
) -> None:
    """Submitted, scored by two reviewers, selected and published in a list, applied for by two
    suppliers, awarded, built with a milestone, accepted and made a benchmark: every step by its role
    in the console, each in the audit trail."""
    from sqlalchemy import select

    from dizuo.scenarios.reviews import DEFAULT_RUBRIC, Reviews
    from dizuo.store.audit import AuditRecord

    db = Database(gateway.settings.resolved_database_url)
    tag = uuid.uuid4().hex[:6]
    demand, first, second = (f"{n}-{tag}" for n in ("船机厂", "软件公司", "视觉公司"))
    for org in (demand, first, second):
        create_org(db, org)
    Reviews(db).set_rubric({"criteria": [{"key": k, "name_zh": zh, "name_en": en, "weight": w} for k, zh, en, w in DEFAULT_RUBRIC]}, "t")  # fmt: skip
    for nickname, role, org in (
        ("owner", "org-admin", demand),
        ("one", "reviewer", None),
        ("two", "reviewer", None),
        ("office", "program-office", None),
        ("first", "supplier", first),
        ("second", "supplier", second),
    ):
        create_member(db, f"{nickname}-{tag}", PASSWORD, role, **({"org": org} if org else {}))
    db.dispose()

    owner = sign_in(browser, gateway.url, f"owner-{tag}")
    owner.goto(f"{gateway.url}/console/scenarios")
    owner.get_by_role("link", name="提交新的场景需求").click()
    owner.get_by_label("场景", exact=True).fill(f"质检报告审核-{tag}")
    owner.get_by_label("行业").select_option("C")
    owner.get_by_label("区县").fill("江津区")
    owner.get_by_label("场景描述").fill(LONG)
    owner.get_by_role("button", name="保存为草稿").click()
    owner.get_by_role("button", name="改为：已提交").click()
    url = owner.url
    scenario_id = url.rstrip("/").rsplit("/", 1)[-1]

    office = sign_in(browser, gateway.url, f"office-{tag}")
    office.goto(url)
    office.get_by_role("button", name="改为：评审中").click()
    scores = {"one": ("8", "6", "9", "7", "5"), "two": ("6", "4", "7", "5", "9")}
    for reviewer, given in scores.items():
        page = sign_in(browser, gateway.url, f"{reviewer}-{tag}")
        page.goto(url)
        for label, value in zip(CRITERIA, given, strict=True):
            page.get_by_label(label).fill(value)
        page.get_by_role("button", name="提交评分").click()
        seen = page.get_by_test_id("reviews").inner_text()
        other = "two" if reviewer == "one" else "one"
        assert f"{reviewer}-{tag}" in seen and f"{other}-{tag}" not in seen  # each scores alone
    office.goto(url)
    spread = office.get_by_test_id("reviews")
    assert spread.locator(f'tr[data-reviewer="one-{tag}"]').count() == 1
    assert spread.locator(f'tr[data-reviewer="two-{tag}"]').count() == 1
    assert "67.0" in spread.locator('tr[data-spread="mean"]').inner_text()
    office.get_by_role("button", name="改为：入选").click()
    office.get_by_label("清单批次").fill("2026年第八批")
    office.get_by_role("button", name="改为：已发布").click()
    assert "2026年第八批" in office.get_by_test_id("scenario").inner_text()

    proposals = {"first": "三个月交付试点：知识库加报告自动校核，校核时间缩短 80%。", "second": "边缘部署视觉检测，同时校核报告，两个月上线。"}  # fmt: skip
    suppliers = {}
    for nickname, proposal in proposals.items():
        page = sign_in(browser, gateway.url, f"{nickname}-{tag}")
        page.goto(url)
        assert page.get_by_test_id("reviews").count() == 0  # a supplier never sees the scores
        assert proposals["first"] not in page.content() or nickname == "first"
        page.get_by_label("揭榜方案").fill(proposal)
        page.get_by_role("button", name="申请揭榜").click()
        assert "已申请" in page.get_by_test_id("applications").inner_text()
        suppliers[nickname] = page
    suppliers["second"].goto(url)
    assert proposals["first"] not in suppliers["second"].content()  # never another's proposal

    owner.goto(url)
    rows = owner.get_by_test_id("applications")
    rows.locator(f"tr[data-application='{first}']").get_by_role("button", name="入围").click()
    owner.get_by_label(f"理由 {first}").fill("方案最完整")
    owner.get_by_test_id("applications").locator(f"tr[data-application='{first}']").get_by_role("button", name="定标").click()  # fmt: skip
    assert "已揭榜" in owner.get_by_test_id("scenario").inner_text()

    taker = suppliers["first"]
    taker.goto(url)
    taker.get_by_label("里程碑", exact=True).fill("试点上线")
    taker.get_by_label("计划日期").fill("2099-06-30")
    taker.get_by_role("button", name="添加里程碑").click()
    row = taker.get_by_test_id("milestones").locator('tr[data-milestone="试点上线"]')
    row.get_by_label("完成依据 试点上线").fill("试点运行报告 v1.0")
    row.get_by_role("button", name="记录完成").click()
    assert "试点运行报告 v1.0" in taker.get_by_test_id("milestones").inner_text()

    office.goto(url)
    for stage in ("建设中", "已验收", "标杆"):
        office.get_by_role("button", name=f"改为：{stage}").click()
        assert stage in office.get_by_test_id("scenario").inner_text()
    screenshot(office, "console-scenario-lifecycle")
    anyone = browser.new_context(locale="zh-CN").new_page()
    anyone.goto(f"{gateway.url}/console/scenarios/public")
    assert f"质检报告审核-{tag}" in anyone.get_by_test_id("scenarios").inner_text()

    db = Database(gateway.settings.resolved_database_url)
    with db.session() as session:
        acts = [r.action for r in session.scalars(select(AuditRecord).where(AuditRecord.target == scenario_id).order_by(AuditRecord.seq))]  # fmt: skip
    db.dispose()
    for act in (
        "scenario.create", "scenario.submitted", "scenario.under_review", "scenario.review", "scenario.selected",
        "scenario.published", "scenario.apply", "scenario.shortlist", "scenario.award", "scenario.milestone",
        "scenario.milestone_done", "scenario.in_construction", "scenario.accepted", "scenario.benchmark",
    ):  # fmt: skip
        assert act in acts, (act, acts)
    assert acts.count("scenario.review") == 2 and acts.count("scenario.apply") == 2


def test_a_supplier_keeps_its_catalog_entry_in_the_console(gateway: RunningGateway, browser: Any) -> None:
    from sqlalchemy import delete

    from dizuo.scenarios.tables import Supplier

    db = Database(gateway.settings.resolved_database_url)
    tag = uuid.uuid4().hex[:6]
    org = f"视觉公司-{tag}"
    org_id = create_org(db, org).id
    create_member(db, f"seller-{tag}", PASSWORD, "supplier", org=org)
    create_member(db, f"reader-{tag}", PASSWORD, "reviewer")
    db.dispose()
    try:
        page = sign_in(browser, gateway.url, f"seller-{tag}")
        page.goto(f"{gateway.url}/console/suppliers")
        page.get_by_role("link", name="编辑本组织的供给能力").click()
        page.get_by_label("能力", exact=True).fill(f"工业视觉质检-{tag}")
        page.get_by_label("能力简介").fill("压铸件、焊缝的缺陷视觉检测，边缘部署，按产线交付。")
        page.get_by_label("C 制造业").check()
        page.get_by_label("服务区县").fill("江津区、两江新区")
        page.get_by_label("交付案例").fill("压铸件气孔视觉检测 | C | 去年")  # not a year: refused, kept
        page.get_by_role("button", name="保存").click()
        assert "cases[0].year" in page.get_by_test_id("supplier-problem").inner_text()
        assert page.get_by_label("能力简介").input_value().startswith("压铸件")
        page.get_by_label("交付案例").fill("压铸件气孔视觉检测 | C | 2025\n船用螺旋桨焊缝检测 | 制造业")
        page.get_by_role("button", name="保存").click()
        row = page.get_by_test_id("suppliers").locator(f"tr[data-supplier='{org}']").inner_text()
        assert f"工业视觉质检-{tag}" in row and "C 制造业" in row and "江津区、两江新区" in row
        assert "压铸件气孔视觉检测 (2025)" in row and "船用螺旋桨焊缝检测" in row
        page.get_by_role("link", name="编辑本组织的供给能力").click()  # what it holds, filled in
        assert page.get_by_label("C 制造业").is_checked()
        assert "压铸件气孔视觉检测 | C | 2025" in page.get_by_label("交付案例").input_value()
        reader = sign_in(browser, gateway.url, f"reader-{tag}")
        reader.goto(f"{gateway.url}/console/suppliers")
        assert reader.get_by_role("link", name="编辑本组织的供给能力").count() == 0
        assert reader.request.get(f"{gateway.url}/console/suppliers/mine").status == 403
    finally:  # the shared catalog is what the matching tests rank
        db = Database(gateway.settings.resolved_database_url)
        with db.session() as session:
            session.execute(delete(Supplier).where(Supplier.org_id == org_id))
        db.dispose()
