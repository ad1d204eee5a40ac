"""Milestones of a taken scenario through the admin API and the CLI: the office or the taker plans
them and records each done with its evidence; late ones are marked; who may see and keep them; the
monthly indicators count the late ones and the days from publication to award."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

import yaml

from dizuo.accounts import create_org
from dizuo.days import PLATFORM_ZONE
from dizuo.indicators import monthly
from dizuo.scenarios.service import LISTED
from dizuo.store import Database
from tests.scenarios.conftest import Shell
from tests.scenarios.test_lifecycle import NEED, move
from tests.scenarios.test_reviews import member, under_review
from tests.support.cli import dizuo
from tests.support.platform import GatewayApp, PlatformUnderTest
from tests.support.platform import admin_api as api


async def taken(platform: PlatformUnderTest, tokens: dict[str, Any], office: str) -> str:
    sid = await under_review(platform, tokens, office)
    for to, extra in (("selected", {}), ("published", {"list": "2026年第四批"}), ("taken", {"taker": tokens["org_b"]})):  # fmt: skip
        assert (await move(platform, office, sid, to, **extra)).status_code == 200
    return sid


async def test_the_taker_and_the_office_keep_milestones_late_ones_marked(gateway_app: GatewayApp) -> None:
    platform = await gateway_app()
    tokens = platform.people()
    _, office = member(platform, "program-office")
    _, taker = member(platform, "supplier", tokens["org_b"])
    third = f"丙公司-{uuid.uuid4().hex[:6]}"
    db = Database(platform.settings.resolved_database_url)
    create_org(db, third)
    db.dispose()
    _, outsider = member(platform, "supplier", third)  # neither the demand side nor the taker
    sid = await under_review(platform, tokens, office)
    early = await api(
        platform,
        office,
        "POST",
        f"/scenarios/{sid}/milestones",
        json={"title": "需求调研", "due": "2027-01-15"},
    )
    assert early.status_code == 409 and early.json()["error"]["code"] == "scenario_not_in_construction"
    for to, extra in (("selected", {}), ("published", {"list": "2026年第四批"}), ("taken", {"taker": tokens["org_b"]})):  # fmt: skip
        assert (await move(platform, office, sid, to, **extra)).status_code == 200

    today = dt.datetime.now(PLATFORM_ZONE).date()
    past, future = (today - dt.timedelta(days=10)).isoformat(), (today + dt.timedelta(days=30)).isoformat()
    plan = await api(
        platform, office, "POST", f"/scenarios/{sid}/milestones", json={"title": "试点上线", "due": past}
    )
    assert plan.status_code == 201 and plan.json()["state"] == "late" and plan.json()["late"] is True
    own = await api(
        platform, taker, "POST", f"/scenarios/{sid}/milestones", json={"title": "全面推广", "due": future}
    )
    assert own.status_code == 201 and own.json()["state"] == "open"
    # Another organization's member keeps no milestone of it; a bad day is refused naming it.
    assert (await api(platform, outsider, "POST", f"/scenarios/{sid}/milestones", json={"title": "冒名", "due": future})).status_code == 404  # fmt: skip
    bad = await api(
        platform, office, "POST", f"/scenarios/{sid}/milestones", json={"title": "验收", "due": "明年"}
    )
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "due"

    # Done with its evidence: after its day, it stays marked late (done_late).
    done = await api(platform, taker, "POST", f"/scenarios/{sid}/milestones/{plan.json()['id']}/done", json={"evidence": "试点运行报告 v1.2，见附件"})  # fmt: skip
    assert done.status_code == 200, done.text
    assert done.json()["state"] == "done_late" and done.json()["done_on"] == today.isoformat()
    again = await api(platform, taker, "POST", f"/scenarios/{sid}/milestones/{plan.json()['id']}/done", json={"evidence": "再次提交"})  # fmt: skip
    assert again.status_code == 400 and again.json()["error"]["param"] == "milestone"
    ahead = await api(platform, office, "POST", f"/scenarios/{sid}/milestones/{own.json()['id']}/done", json={"evidence": "提前", "done_on": future})  # fmt: skip
    assert ahead.status_code == 400 and ahead.json()["error"]["param"] == "done_on"
    missing = await api(
        platform,
        office,
        "POST",
        f"/scenarios/{sid}/milestones/ms_nothing/done",
        json={"evidence": "验收报告"},
    )
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "scenario_milestone_not_found"

    # The demand side, the taker and the office read them by day; another organization does not.
    for reader in (tokens["a-dev"], taker, office, tokens["auditor"]):
        listed = (await api(platform, reader, "GET", f"/scenarios/{sid}/milestones")).json()
        assert [(m["title"], m["state"]) for m in listed] == [("试点上线", "done_late"), ("全面推广", "open")]
    assert (await api(platform, outsider, "GET", f"/scenarios/{sid}/milestones")).status_code == 404
    # Accepted, the construction's milestones are closed to changes.
    assert (await move(platform, office, sid, "in_construction")).status_code == 200
    assert (await move(platform, office, sid, "accepted")).status_code == 200
    closed = await api(platform, taker, "POST", f"/scenarios/{sid}/milestones/{own.json()['id']}/done", json={"evidence": "验收后补交"})  # fmt: skip
    assert closed.status_code == 409


async def test_the_month_counts_late_milestones_and_days_from_publication_to_award(
    gateway_app: GatewayApp,
) -> None:
    platform = await gateway_app()
    tokens = platform.people()
    _, office = member(platform, "program-office")
    month = dt.datetime.now(PLATFORM_ZONE).strftime("%Y-%m")
    db = Database(platform.settings.resolved_database_url)
    try:
        before = monthly(db, month)["scenario_progress"]
        lists_before = {row["list"]: row for row in monthly(db, month)["scenarios_by_list"]}
        sid = await taken(platform, tokens, office)
        yesterday = (dt.datetime.now(PLATFORM_ZONE).date() - dt.timedelta(days=1)).isoformat()
        for title in ("数据接入", "模型训练"):
            await api(
                platform,
                office,
                "POST",
                f"/scenarios/{sid}/milestones",
                json={"title": title, "due": yesterday},
            )
        after = monthly(db, month)["scenario_progress"]
        lists = monthly(db, month)["scenarios_by_list"]
    finally:
        db.dispose()
    # The list it was published in counts it among those taken.
    fourth = next(row for row in lists if row["list"] == "2026年第四批")
    was = lists_before.get("2026年第四批", {"taken": 0, "total": 0})
    assert (fourth["taken"], fourth["total"]) == (was["taken"] + 1, was["total"] + 1)
    assert fourth["total"] == sum(fourth[stage] for stage in LISTED)
    assert after["milestones_late"] == before["milestones_late"] + 2
    awards = after["publication_to_award_days"]
    assert awards["awarded"] == before["publication_to_award_days"]["awarded"] + 1
    assert awards["median"] is not None and 0 <= awards["median"] < 0.01  # published and taken within seconds


def test_the_cli_keeps_milestones(shell: Shell, tmp_path: Path) -> None:
    env, demand, supplier = shell.env, shell.demand, shell.supplier
    need = tmp_path / "need.yaml"
    need.write_text(yaml.safe_dump(NEED, allow_unicode=True), encoding="utf-8")
    sid = dizuo("scenario", "create", "--org", demand, "--file", str(need), env=env).stdout.strip()
    early = dizuo("scenario", "milestone", "add", sid, "--title", "试点", "--due", "2027-01-31", env=env)
    assert early.returncode == 2 and "不在建设中" in early.stderr
    for to, extra in (("submitted", []), ("under_review", []), ("selected", []), ("published", ["--list", "2026年第一批"]), ("taken", ["--taker", supplier])):  # fmt: skip
        assert dizuo("scenario", "move", sid, to, *extra, env=env).returncode == 0
    made = dizuo("scenario", "milestone", "add", sid, "--title", "试点上线", "--due", "2026-01-31", env=env)
    assert made.returncode == 0 and made.stdout.startswith("ms_"), made.stderr
    mid = made.stdout.strip()
    evidence = tmp_path / "证据.md"
    evidence.write_text("试点运行报告：覆盖 3 条产线。", encoding="utf-8")
    done = dizuo("scenario", "milestone", "done", sid, mid, "--evidence", f"@{evidence}", "--on", "2026-02-03", env=env)  # fmt: skip
    assert done.returncode == 0 and done.stdout.split("\t")[2] == "done_late", done.stderr
    listed = json.loads(dizuo("scenario", "milestones", sid, "--json", env=env).stdout)["data"]
    assert listed[0]["evidence"] == "试点运行报告：覆盖 3 条产线。" and listed[0]["done_on"] == "2026-02-03"
    assert (
        dizuo("scenario", "milestone", "add", sid, "--title", "验收", "--due", "下月", env=env).returncode
        == 2
    )
