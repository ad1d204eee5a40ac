"""The console's monitoring page in a real browser: operators and auditors read a month's
indicators and download them as a workbook; organization members have no such page."""

from __future__ import annotations

import datetime as dt
import io
import uuid
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import openpyxl
import pytest

from dizuo.accounts import create_org
from dizuo.accounts.members import create_member
from dizuo.indicators import AGENT_TARGETS, monthly
from dizuo.store import Database
from tests.support.browser import PASSWORD, screenshot, sign_in
from tests.support.platform import RunningGateway, Serve


@pytest.fixture(scope="module")
def gateway(serve: Serve) -> Iterator[RunningGateway]:
    """A platform served for the indicators' console page (no model is called)."""
    with serve([]) as running:
        yield running


def monthly_target(month: str, back: int) -> float | None:
    """The target of the month *back* months before *month*."""
    year, number = (int(part) for part in month.split("-"))
    index = year * 12 + number - 1 - back
    return AGENT_TARGETS.get(str(index // 12))


def test_operators_read_the_months_indicators_and_download_them(
    gateway: RunningGateway, browser: Any
) -> None:
    db = Database(gateway.settings.resolved_database_url)
    tag = uuid.uuid4().hex[:6]
    create_org(db, f"指标-{tag}", industry=f"水上运输业-{tag}", district="万州区")
    create_member(db, f"auditor-{tag}", PASSWORD, "auditor")
    member_org = f"成员-{tag}"
    create_org(db, member_org)
    create_member(db, f"dev-{tag}", PASSWORD, "org-developer", org=member_org)
    month = dt.datetime.now(ZoneInfo(gateway.settings.timezone)).strftime("%Y-%m")
    expected = monthly(db, month, ZoneInfo(gateway.settings.timezone))
    db.dispose()

    page = sign_in(browser, gateway.url, f"auditor-{tag}")
    page.get_by_role("link", name="监测指标", exact=True).click()
    page.wait_for_selector("[data-testid=indicators]")
    assert int(page.get_by_test_id("registered").inner_text()) == expected["organizations"]["registered"]
    assert page.get_by_test_id("agent-share").inner_text().endswith("%")
    target = expected["agent_adoption"]["target"]  # 70 % in 2026, 80 % in 2027, none set after
    if target is not None:
        assert f"目标 {target:.0%}" in page.get_by_test_id("agent-target").inner_text()
    else:
        assert "该年份没有设定目标" in page.content()
    assert "标杆" in page.get_by_test_id("scenarios").inner_text()
    industries = page.get_by_test_id("by_industry").inner_text()
    assert f"水上运输业-{tag}" in industries
    assert "实时计算" in page.get_by_test_id("indicators-kept").inner_text()  # the month under way
    # The twelve months up to this one: the share using agents, drawn against the years' targets.
    trend = page.get_by_test_id("trend").locator("tbody tr")
    assert trend.count() == 12 and trend.last.inner_text().startswith(month)
    targets = [m for m in range(12) if monthly_target(month, m) is not None]
    assert page.get_by_test_id("target-line").count() == len(targets)
    screenshot(page, "console-indicators")
    with page.expect_download() as caught:
        page.get_by_role("link", name="下载 Excel").click()
    book = openpyxl.load_workbook(io.BytesIO(caught.value.path().read_bytes()))  # (saved without a suffix)
    assert book.sheetnames == ["总览", "按行业", "按区县", "按规模", "场景清单", "场景清单批次", "算力券"]
    assert caught.value.suggested_filename == f"监测指标-{month}.xlsx"

    member = sign_in(browser, gateway.url, f"dev-{tag}")
    assert member.get_by_role("link", name="监测指标", exact=True).count() == 0
    assert member.request.get(f"{gateway.url}/console/indicators").status == 403
