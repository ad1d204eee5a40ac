# ruff: noqa: F811  (the tokens fixture is imported by name)
"""Expert review through the admin API and the CLI: the program office sets the rubric, reviewers
score a scenario under review each alone (never seeing another's scores), the office sees every
review and the spread and selects, recording who decided, why and what the reviewers said; the new
roles see only what they may; bad scores refused naming the criterion, nothing stored."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from dizuo.accounts.members import create_member, create_token
from dizuo.scenarios.reviews import DEFAULT_RUBRIC
from dizuo.scenarios.tables import ScenarioReview
from dizuo.store import Database
from dizuo.store.audit import AuditRecord
from tests.scenarios.conftest import Shell
from tests.scenarios.test_lifecycle import NEED, move
from tests.support.cli import dizuo
from tests.support.platform import GatewayApp, PlatformUnderTest, RunningGateway, Serve
from tests.support.platform import admin_api as api
from tests.test_admin_api import tokens  # noqa: F401  (the fixture: the console test below)

DEFAULT = {
    "criteria": [{"key": k, "name_zh": zh, "name_en": en, "weight": w} for k, zh, en, w in DEFAULT_RUBRIC]
}


@pytest.fixture(scope="module")
def gateway(serve: Serve) -> Iterator[RunningGateway]:
    """A platform served for the console's review page (no model is called)."""
    with serve([]) as running:
        yield running


def member(
    platform: RunningGateway | PlatformUnderTest, role: str, org: str | None = None
) -> tuple[str, str]:
    """A new member of *role* (of *org*): its username and an admin token."""
    db = Database(platform.settings.resolved_database_url)
    try:
        username = f"{role}-{uuid.uuid4().hex[:8]}"
        create_member(db, username, "correct horse battery", role, **({"org": org} if org else {}))
        return username, create_token(db, username)
    finally:
        db.dispose()


async def under_review(platform: PlatformUnderTest, tokens: dict[str, Any], office: str) -> str:
    made = await api(
        platform, tokens["a-dev"], "POST", "/scenarios", json={"org": tokens["org_a"], "scenario": NEED}
    )
    sid = str(made.json()["id"])
    assert (await move(platform, tokens["a-dev"], sid, "submitted")).status_code == 200
    assert (await move(platform, office, sid, "under_review")).status_code == 200
    return sid


async def committee(platform: PlatformUnderTest, reviewers: int = 1) -> tuple[str, list[tuple[str, str]]]:
    """A program-office member's token, the default rubric set by it, and *reviewers* reviewers
    (username, token)."""
    _, office = member(platform, "program-office")
    assert (await api(platform, office, "PUT", "/scenarios/rubric", json=DEFAULT)).status_code == 200
    return office, [member(platform, "reviewer") for _ in range(reviewers)]


async def review(
    platform: PlatformUnderTest, token: str, sid: str, scores: dict[str, float], comment: str = ""
) -> Any:
    return await api(
        platform, token, "POST", f"/scenarios/{sid}/reviews", json={"scores": scores, "comment": comment}
    )


async def test_reviewers_score_alone_and_the_office_sees_the_spread_then_selects(
    gateway_app: GatewayApp,
) -> None:
    platform = await gateway_app()
    tokens = platform.people()
    office, [(first, one), (second, two)] = await committee(platform, reviewers=2)
    made = await api(
        platform, tokens["a-dev"], "POST", "/scenarios", json={"org": tokens["org_a"], "scenario": NEED}
    )
    sid = made.json()["id"]
    early = await review(
        platform, one, sid, {"need": 8, "data": 6, "value": 9, "feasibility": 7, "budget": 5}
    )
    assert early.status_code == 409 and early.json()["error"]["code"] == "scenario_not_in_review"
    assert (await move(platform, tokens["a-dev"], sid, "submitted")).status_code == 200
    assert (await move(platform, office, sid, "under_review")).status_code == 200

    # (8·20 + 6·20 + 9·30 + 7·20 + 5·10) / 10 = 74; (6·20 + 4·20 + 7·30 + 5·20 + 9·10) / 10 = 60.
    mine = await review(
        platform, one, sid, {"need": 8, "data": 6, "value": 9, "feasibility": 7, "budget": 5}, "示范性强"
    )
    assert mine.status_code == 200, mine.text
    assert mine.json()["total"] == 74.0 and mine.json()["reviewer"] == first
    theirs = await review(
        platform, two, sid, {"need": 6, "data": 4, "value": 7, "feasibility": 5, "budget": 9}
    )
    assert theirs.json()["total"] == 60.0

    # Each reviewer reads their own review only, with no spread that would show the others'.
    seen = (await api(platform, one, "GET", f"/scenarios/{sid}/reviews")).json()
    assert [r["reviewer"] for r in seen["reviews"]] == [first] and "spread" not in seen
    # Scored again, a review replaces the reviewer's own.
    again = await review(
        platform, one, sid, {"need": 8, "data": 6, "value": 9, "feasibility": 7, "budget": 7}
    )
    assert again.json()["total"] == 76.0 and again.json()["id"] == mine.json()["id"]

    # The chair sees every review and the spread: totals 76 and 60.
    chair = (await api(platform, office, "GET", f"/scenarios/{sid}/reviews")).json()
    assert sorted(r["reviewer"] for r in chair["reviews"]) == sorted([first, second])
    spread = chair["spread"]
    assert spread["total"] == {"count": 2, "mean": 68.0, "min": 60.0, "max": 76.0, "stdev": 8.0}
    assert spread["criteria"]["budget"] == {"count": 2, "mean": 8.0, "min": 7.0, "max": 9.0, "stdev": 1.0}
    assert (await api(platform, tokens["auditor"], "GET", f"/scenarios/{sid}/reviews")).json()[
        "spread"
    ] == spread

    # Neither the demand side nor a supplier reads the scores; a reviewer does not decide.
    _, supplier = member(platform, "supplier", tokens["org_b"])
    for outsider in (tokens["a-dev"], supplier):
        refused = await api(platform, outsider, "GET", f"/scenarios/{sid}/reviews")
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "permission_denied"
    assert (await move(platform, one, sid, "selected", reason="我觉得好")).status_code == 403

    # The office selects: who, why, and what the reviewers said are recorded with the move.
    chosen = await move(platform, office, sid, "selected", reason="评审均分 68，示范价值高")
    assert chosen.status_code == 200 and chosen.json()["status"] == "selected"
    late = await review(platform, two, sid, {"need": 1, "data": 1, "value": 1, "feasibility": 1, "budget": 1})
    assert late.status_code == 409
    db = Database(platform.settings.resolved_database_url)
    try:
        with db.session() as session:
            record = session.scalars(
                select(AuditRecord).where(
                    AuditRecord.target == sid, AuditRecord.action == "scenario.selected"
                )
            ).one()
            reviewed = session.scalars(
                select(AuditRecord.actor).where(
                    AuditRecord.target == sid, AuditRecord.action == "scenario.review"
                )
            ).all()
    finally:
        db.dispose()
    assert record.detail["reviews"] == {"count": 2, "mean": 68.0}
    assert record.detail["reason"] == "评审均分 68，示范价值高" and record.actor.startswith("program-office-")
    assert sorted(reviewed) == sorted([first, first, second])


async def test_the_office_sets_the_rubric_and_reviews_keep_the_one_they_were_scored_against(
    gateway_app: GatewayApp,
) -> None:
    platform = await gateway_app()
    tokens = platform.people()
    office, [(_, reviewer)] = await committee(platform)
    sid = await under_review(platform, tokens, office)
    old = await review(
        platform, reviewer, sid, {"need": 5, "data": 5, "value": 5, "feasibility": 5, "budget": 5}
    )
    assert old.json()["total"] == 50.0

    # Only the office sets it; weights that do not sum to 100 or a key named twice are refused.
    criteria = [
        {"key": "impact", "name_zh": "带动效应", "name_en": "impact", "weight": 60},
        {"key": "data", "name_zh": "数据基础", "name_en": "data", "weight": 40},
    ]
    refused = await api(platform, reviewer, "PUT", "/scenarios/rubric", json={"criteria": criteria})
    assert refused.status_code == 403
    short = await api(platform, office, "PUT", "/scenarios/rubric", json={"criteria": [{**criteria[0], "weight": 50}, criteria[1]]})  # fmt: skip
    assert short.status_code == 400 and short.json()["error"]["param"] == "criteria"
    assert "90" in short.json()["error"]["message"]
    twice = await api(platform, office, "PUT", "/scenarios/rubric", json={"criteria": [criteria[0], {**criteria[1], "key": "impact"}]})  # fmt: skip
    assert twice.status_code == 400 and twice.json()["error"]["param"] == "criteria[1].key"
    set_ = await api(platform, office, "PUT", "/scenarios/rubric", json={"criteria": criteria})
    assert set_.status_code == 200 and [c["key"] for c in set_.json()["criteria"]] == ["impact", "data"]
    assert (await api(platform, tokens["a-dev"], "GET", "/scenarios/rubric")).json()[
        "criteria"
    ] == set_.json()["criteria"]

    # A new review scores the new criteria; the old one keeps its rubric and its total.
    other = member(platform, "reviewer")[1]
    stale = await review(
        platform, other, sid, {"need": 9, "data": 9, "value": 9, "feasibility": 9, "budget": 9}
    )
    assert stale.status_code == 400 and stale.json()["error"]["param"] == "scores.budget"
    fresh = await review(platform, other, sid, {"impact": 9, "data": 4})
    assert fresh.status_code == 200 and fresh.json()["total"] == 70.0
    kept = {
        r["id"]: r
        for r in (await api(platform, office, "GET", f"/scenarios/{sid}/reviews")).json()["reviews"]
    }
    assert kept[old.json()["id"]]["total"] == 50.0 and len(kept[old.json()["id"]]["rubric"]) == 5
    assert (await api(platform, office, "PUT", "/scenarios/rubric", json=DEFAULT)).status_code == 200


async def test_bad_scores_are_refused_naming_the_criterion_and_nothing_is_stored(
    gateway_app: GatewayApp,
) -> None:
    platform = await gateway_app()
    tokens = platform.people()
    office, [(_, reviewer)] = await committee(platform)
    sid = await under_review(platform, tokens, office)
    good = {"need": 8, "data": 6, "value": 9, "feasibility": 7, "budget": 5}
    for scores, param in (
        ({k: v for k, v in good.items() if k != "value"}, "scores.value"),
        ({**good, "value": 11}, "scores.value"),
        ({**good, "data": -1}, "scores.data"),
        ({**good, "need": 7.25}, "scores.need"),
        ({**good, "beauty": 3}, "scores.beauty"),
    ):
        refused = await review(platform, reviewer, sid, scores)
        assert refused.status_code == 400 and refused.json()["error"]["param"] == param, refused.text
    missing = await api(platform, reviewer, "POST", "/scenarios/scn_nothing/reviews", json={"scores": good})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "scenario_not_found"
    db = Database(platform.settings.resolved_database_url)
    try:
        with db.session() as session:
            assert not session.scalars(select(ScenarioReview).where(ScenarioReview.scenario_id == sid)).all()
    finally:
        db.dispose()


async def test_a_supplier_member_applies_and_keeps_the_catalog_but_decides_nothing(
    gateway_app: GatewayApp,
) -> None:
    platform = await gateway_app()
    tokens = platform.people()
    _, office = member(platform, "program-office")
    sid = await under_review(platform, tokens, office)
    assert (await move(platform, office, sid, "selected")).status_code == 200
    assert (await move(platform, office, sid, "published", list="2026年第三批")).status_code == 200
    _, supplier = member(platform, "supplier", tokens["org_b"])
    applied = await api(platform, supplier, "POST", f"/scenarios/{sid}/applications", json={"org": tokens["org_b"], "proposal": "基于视觉大模型的质检报告审核方案，三个月交付。"})  # fmt: skip
    assert applied.status_code == 201, applied.text
    # Not for another organization, and no scenario of its own to submit.
    other = await api(platform, supplier, "POST", f"/scenarios/{sid}/applications", json={"org": tokens["org_a"], "proposal": "冒名申请的方案内容，应被拒绝。"})  # fmt: skip
    assert other.status_code == 403
    submitted = await api(
        platform, supplier, "POST", "/scenarios", json={"org": tokens["org_b"], "scenario": NEED}
    )
    assert submitted.status_code == 403
    assert (await move(platform, supplier, sid, "taken", taker=tokens["org_b"])).status_code == 403
    # It sees its own application only; a reviewer sees none (and no proposal).
    assert [a["id"] for a in (await api(platform, supplier, "GET", f"/scenarios/{sid}/applications")).json()] == [applied.json()["id"]]  # fmt: skip
    _, reviewer = member(platform, "reviewer")
    assert (await api(platform, reviewer, "GET", f"/scenarios/{sid}/applications")).status_code == 403


def test_the_cli_sets_the_rubric_records_reviews_and_shows_the_spread(shell: Shell, tmp_path: Path) -> None:
    env, demand = shell.env, shell.demand
    db = Database(shell.database_url)
    create_member(db, "专家甲", "correct horse battery", "reviewer")
    create_member(db, "专家乙", "correct horse battery", "reviewer")
    create_member(db, "开发者", "correct horse battery", "org-developer", org=demand)
    db.dispose()
    need = tmp_path / "need.yaml"
    need.write_text(yaml.safe_dump(NEED, allow_unicode=True), encoding="utf-8")
    sid = dizuo("scenario", "create", "--org", demand, "--file", str(need), env=env).stdout.strip()
    for to in ("submitted", "under_review"):
        assert dizuo("scenario", "move", sid, to, env=env).returncode == 0

    shown = dizuo("scenario", "rubric", env=env)
    assert (
        shown.returncode == 0 and shown.stdout.splitlines()[0] == "need\t20\t需求清晰度\tclarity of the need"
    )
    rubric = tmp_path / "rubric.yaml"
    rubric.write_text(yaml.safe_dump({"criteria": [
        {"key": "value", "name_zh": "示范价值", "name_en": "value", "weight": 70},
        {"key": "data", "name_zh": "数据基础", "name_en": "data", "weight": 30},
    ]}, allow_unicode=True), encoding="utf-8")  # fmt: skip
    assert json.loads(dizuo("scenario", "rubric", "--file", str(rubric), "--json", env=env).stdout)["criteria"][0]["weight"] == 70  # fmt: skip

    first = dizuo(
        "scenario", "review", sid, "--reviewer", "专家甲", "--score", "value=9", "--score", "data=5", env=env
    )
    assert first.returncode == 0 and first.stdout.strip().endswith("\t专家甲\t78.0"), first.stderr
    assert dizuo("scenario", "review", sid, "--reviewer", "专家乙", "--score", "value=7", "--score", "data=7", env=env).returncode == 0  # fmt: skip
    # Only a reviewer's name; a score must be KEY=N, every criterion scored.
    assert dizuo("scenario", "review", sid, "--reviewer", "开发者", "--score", "value=9", "--score", "data=5", env=env).returncode == 2  # fmt: skip
    assert (
        dizuo("scenario", "review", sid, "--reviewer", "专家甲", "--score", "value:9", env=env).returncode
        == 2
    )
    partial = dizuo("scenario", "review", sid, "--reviewer", "专家甲", "--score", "value=9", env=env)
    assert partial.returncode == 2 and "scores.data" in partial.stderr

    table = dizuo("scenario", "reviews", sid, env=env).stdout.splitlines()
    assert table[0] == "reviewer\ttotal\tvalue\tdata"
    assert "专家甲\t78.0\t9.0\t5.0" in table and "专家乙\t70.0\t7.0\t7.0" in table
    assert "total\tmean 74.0\tmin 70.0\tmax 78.0\tstdev 4.0" in table
    document = json.loads(dizuo("scenario", "reviews", sid, "--json", env=env).stdout)
    assert document["spread"]["criteria"]["data"]["mean"] == 6.0


def test_the_new_roles_sign_in_to_the_console_and_open_every_page_their_menu_shows(
    gateway: RunningGateway, tokens: dict[str, Any]
) -> None:
    import re

    from tests.console.conftest import PASSWORD
    from tests.console.test_forms import signed_in

    db = Database(gateway.settings.resolved_database_url)
    try:
        names = {}
        for role, org in (("program-office", None), ("reviewer", None), ("supplier", tokens["org_b"])):
            names[role] = f"{role}-{uuid.uuid4().hex[:8]}"
            create_member(db, names[role], PASSWORD, role, **({"org": org} if org else {}))
    finally:
        db.dispose()
    for role, username in names.items():
        client = signed_in(gateway, username)
        home = client.get("/", follow_redirects=True)  # no usage to show: their first page
        assert home.status_code == 200 and str(home.url).endswith("/console/scenarios"), (role, home.url)
        menu = re.findall(r'<nav aria-label="[^"]*">(.*?)</nav>', home.text, re.S)
        links = re.findall(r'href="(/console/[^"]*)"', menu[0]) if menu else []
        assert "/console/scenarios" in links, (role, links)
        for link in links:
            page = client.get(link.removeprefix("/console"), follow_redirects=True)
            assert page.status_code == 200, (role, link, page.status_code)
        client.close()
