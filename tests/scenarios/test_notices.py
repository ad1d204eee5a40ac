# ruff: noqa: F811  (the tokens fixture is imported by name)
"""Notices of the scenario lists: each act another party waits on tells that party, in the console,
and no one else; opening the notices page marks them seen."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from dizuo.accounts import create_org
from dizuo.accounts.members import create_member
from dizuo.store import Database
from tests.console.conftest import PASSWORD
from tests.console.test_forms import signed_in
from tests.scenarios.test_lifecycle import NEED
from tests.scenarios.test_reviews import member
from tests.support.platform import RunningGateway, Serve
from tests.test_admin_api import api, tokens  # noqa: F401  (the fixture)


@pytest.fixture(scope="module")
def gateway(serve: Serve) -> Iterator[RunningGateway]:
    """A platform served for this module: the notices are read in its console (no model is called)."""
    with serve([]) as running:
        yield running


def people(gateway: RunningGateway, tokens: dict[str, Any]) -> dict[str, str]:
    """Console members: the demand side's, two suppliers' (a third organization for the second), the
    office's and a reviewer (username each)."""
    tag = uuid.uuid4().hex[:6]
    third = f"丙公司-{tag}"
    db = Database(gateway.settings.resolved_database_url)
    try:
        create_org(db, third)
        found = {}
        for nickname, role, org in (
            ("demand", "org-developer", tokens["org_a"]),
            ("winner", "supplier", tokens["org_b"]),
            ("loser", "supplier", third),
            ("office", "program-office", None),
            ("reviewer", "reviewer", None),
        ):
            found[nickname] = f"{nickname}-{tag}"
            create_member(db, found[nickname], PASSWORD, role, **({"org": org} if org else {}))
        found["third"] = third
        return found
    finally:
        db.dispose()


def move(gateway: RunningGateway, token: str, scenario_id: str, to: str, **extra: Any) -> Any:
    return api(gateway, token, "POST", f"/scenarios/{scenario_id}/moves", json={"to": to, **extra})


def read(gateway: RunningGateway, username: str) -> tuple[int, list[str]]:
    """What *username*'s menu counts as unread, then the notices page's lines (which marks them seen)."""
    client = signed_in(gateway, username)
    try:
        menu = client.get("/scenarios").text
        count = re.search(r'data-testid="unread-notices">(\d+)<', menu)
        page = client.get("/notices")
        assert page.status_code == 200
        lines = [
            re.sub(r"<[^>]+>", "", row).strip()
            for row in re.findall(r"<tr[^>]*>(.*?)</tr>", page.text, re.S)[1:]
        ]
        return (int(count.group(1)) if count else 0), lines
    finally:
        client.close()


def test_each_side_hears_of_what_concerns_it_and_no_one_else(
    gateway: RunningGateway, tokens: dict[str, Any]
) -> None:
    who = people(gateway, tokens)
    _, office = member(gateway, "program-office")
    made = api(gateway, tokens["a-dev"], "POST", "/scenarios", json={"org": tokens["org_a"], "scenario": {**NEED, "title": f"通知测试-{who['third']}"}})  # fmt: skip
    sid, title = made.json()["id"], made.json()["title"]
    assert move(gateway, tokens["a-dev"], sid, "submitted").status_code == 200
    assert move(gateway, office, sid, "under_review").status_code == 200
    assert move(gateway, office, sid, "selected", reason="示范性强").status_code == 200
    assert move(gateway, office, sid, "published", list="2026年第五批").status_code == 200
    for nickname, org in (("winner", tokens["org_b"]), ("loser", who["third"])):
        token = member(gateway, "supplier", org)[1]
        applied = api(gateway, token, "POST", f"/scenarios/{sid}/applications", json={"org": org, "proposal": f"{nickname} 的揭榜方案：三个月交付试点。"})  # fmt: skip
        assert applied.status_code == 201
        if nickname == "winner":
            winning = applied.json()["id"]
    assert api(gateway, tokens["a-dev"], "POST", f"/scenarios/{sid}/applications/{winning}/award", json={"reason": "方案最完整"}).status_code == 200  # fmt: skip

    count, lines = read(gateway, who["demand"])
    mine = [line for line in lines if title in line]
    assert count >= len(mine) == 5  # selected, published, two applications, taken
    assert any("已入选：示范性强" in line for line in mine) and any(
        "已发布（2026年第五批）" in line for line in mine
    )
    assert sum("申请揭榜您的场景" in line for line in mine) == 2 and any("已被揭榜" in line for line in mine)
    assert read(gateway, who["demand"])[0] == 0  # seen

    winner = [line for line in read(gateway, who["winner"])[1] if title in line]
    assert len(winner) == 1 and "贵组织已揭榜" in winner[0]
    loser = [line for line in read(gateway, who["loser"])[1] if title in line]
    assert len(loser) == 1 and "未中标" in loser[0]
    office_lines = [line for line in read(gateway, who["office"])[1] if title in line]
    assert len(office_lines) == 1 and "已提交，待评审" in office_lines[0]
    reviewer_lines = [line for line in read(gateway, who["reviewer"])[1] if title in line]
    assert len(reviewer_lines) == 1 and "进入评审，请评分" in reviewer_lines[0]

    # A milestone done: the demand side and the office hear of it, the loser does not.
    plan = api(
        gateway,
        office,
        "POST",
        f"/scenarios/{sid}/milestones",
        json={"title": "试点上线", "due": "2030-01-31"},
    )
    done = api(gateway, office, "POST", f"/scenarios/{sid}/milestones/{plan.json()['id']}/done", json={"evidence": "试点运行报告"})  # fmt: skip
    assert done.status_code == 200
    assert any("里程碑「试点上线」已完成" in line for line in read(gateway, who["demand"])[1])
    assert any("里程碑「试点上线」已完成" in line for line in read(gateway, who["office"])[1])
    assert not any("里程碑" in line and title in line for line in read(gateway, who["loser"])[1])
