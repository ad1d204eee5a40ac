"""Taking a published scenario (揭榜) through the admin API and the CLI: suppliers apply with their
proposals and see only their own; the demand side shortlists and awards one, the scenario is taken
by its organization and the others are declined; every act is audited; acts out of turn are 409,
another organization's decision 404."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from dizuo.accounts import create_org
from dizuo.store import Database
from dizuo.store.audit import AuditRecord
from tests.scenarios.test_lifecycle import NEED, member_of, move
from tests.support.cli import dizuo
from tests.support.platform import GatewayApp, PlatformUnderTest
from tests.support.platform import admin_api as api

PROPOSAL = "以检验规范知识库加报告自动校核为核心，三个月交付试点，校核时间缩短 80%。"


async def published(platform: PlatformUnderTest, tokens: dict[str, Any]) -> str:
    """A scenario of org_a, published by the office; its id."""
    sid = str((await api(platform, tokens["a-dev"], "POST", "/scenarios", json={"org": tokens["org_a"], "scenario": NEED})).json()["id"])  # fmt: skip
    for to, extra in (("submitted", {}), ("under_review", {}), ("selected", {}), ("published", {"list": "2026年第二批"})):  # fmt: skip
        assert (await move(platform, tokens["a-dev"] if to == "submitted" else tokens["admin"], sid, to, **extra)).status_code == 200  # fmt: skip
    return sid


def supplier(platform: PlatformUnderTest) -> tuple[str, str]:
    """A new supplier organization and a developer's admin token of it."""
    db = Database(platform.settings.resolved_database_url)
    try:
        name = f"供应商-{uuid.uuid4().hex[:6]}"
        create_org(db, name)
    finally:
        db.dispose()
    return name, member_of(platform, name)


async def test_suppliers_apply_the_demand_side_awards_one_and_the_scenario_is_taken(
    gateway_app: GatewayApp,
) -> None:
    platform = await gateway_app()
    tokens = platform.people()
    sid = await published(platform, tokens)
    (first, first_token), (second, second_token) = supplier(platform), supplier(platform)
    applied = await api(platform, first_token, "POST", f"/scenarios/{sid}/applications", json={"org": first, "proposal": PROPOSAL})  # fmt: skip
    assert applied.status_code == 201, applied.text
    mine = applied.json()
    assert (mine["status"], mine["organization"], mine["proposal"]) == ("applied", first, PROPOSAL)
    again = await api(platform, first_token, "POST", f"/scenarios/{sid}/applications", json={"org": first, "proposal": PROPOSAL})  # fmt: skip
    assert again.status_code == 409 and again.json()["error"]["code"] == "scenario_applied"
    other = await api(platform, second_token, "POST", f"/scenarios/{sid}/applications", json={"org": second, "proposal": "另一家的方案：边缘部署视觉检测与报告校核。"})  # fmt: skip
    assert other.status_code == 201
    # Nobody applies for another organization, nor for its own scenario.
    assert (await api(platform, second_token, "POST", f"/scenarios/{sid}/applications", json={"org": first, "proposal": PROPOSAL})).status_code == 403  # fmt: skip
    own = await api(platform, tokens["a-dev"], "POST", f"/scenarios/{sid}/applications", json={"org": tokens["org_a"], "proposal": PROPOSAL})  # fmt: skip
    assert own.status_code == 400 and own.json()["error"]["param"] == "org"

    # Each supplier sees its own application only; the demand side and the auditor see both.
    assert [a["organization"] for a in (await api(platform, first_token, "GET", f"/scenarios/{sid}/applications")).json()] == [first]  # fmt: skip
    assert [a["organization"] for a in (await api(platform, second_token, "GET", f"/scenarios/{sid}/applications")).json()] == [second]  # fmt: skip
    for viewer in (tokens["a-dev"], tokens["auditor"]):
        assert len((await api(platform, viewer, "GET", f"/scenarios/{sid}/applications")).json()) == 2

    # A supplier cannot decide; the demand side shortlists and awards.
    path = f"/scenarios/{sid}/applications/{mine['id']}"
    assert (await api(platform, second_token, "POST", f"{path}/award")).status_code == 404
    assert (await api(platform, tokens["a-dev"], "POST", f"{path}/shortlist")).json()[
        "status"
    ] == "shortlisted"
    awarded = await api(platform, tokens["a-dev"], "POST", f"{path}/award", json={"reason": "方案最完整"})
    assert awarded.status_code == 200, awarded.text
    assert awarded.json()["status"] == "taken" and awarded.json()["taker"] == first
    decided = {a["organization"]: a for a in (await api(platform, tokens["auditor"], "GET", f"/scenarios/{sid}/applications")).json()}  # fmt: skip
    assert decided[first]["status"] == "awarded" and decided[first]["reason"] == "方案最完整"
    assert decided[second]["status"] == "declined"
    # Taken: no more applications, no second award.
    late = await api(
        platform, tokens["a-dev"], "POST", f"/scenarios/{sid}/applications/{other.json()['id']}/award"
    )
    assert late.status_code == 409 and late.json()["error"]["code"] == "scenario_not_open"
    third, third_token = supplier(platform)
    closed = await api(platform, third_token, "POST", f"/scenarios/{sid}/applications", json={"org": third, "proposal": PROPOSAL})  # fmt: skip
    assert closed.status_code == 409

    db = Database(platform.settings.resolved_database_url)
    with db.session() as session:
        acts = list(session.scalars(select(AuditRecord.action).where(AuditRecord.target == sid)))
    db.dispose()
    assert {"scenario.apply", "scenario.shortlist", "scenario.award"} <= set(acts)
    assert acts.count("scenario.apply") == 2


async def test_no_application_before_publication_and_the_cli_awards(gateway_app: GatewayApp) -> None:
    platform = await gateway_app()
    tokens = platform.people()
    draft = (await api(platform, tokens["a-dev"], "POST", "/scenarios", json={"org": tokens["org_a"], "scenario": NEED})).json()  # fmt: skip
    name, token = supplier(platform)
    early = await api(platform, token, "POST", f"/scenarios/{draft['id']}/applications", json={"org": name, "proposal": PROPOSAL})  # fmt: skip
    assert early.status_code == 404  # a draft is not even visible to another organization

    sid = await published(platform, tokens)
    env = {"DIZUO_DATABASE_URL": platform.settings.resolved_database_url}
    made = dizuo("scenario", "apply", sid, "--org", name, "--proposal", PROPOSAL, env=env)
    assert made.returncode == 0, made.stderr
    application = made.stdout.strip()
    assert application.startswith("app_")
    listed = dizuo("scenario", "applications", sid, env=env).stdout
    assert f"{application}\tapplied\t{name}" in listed
    awarded = dizuo("scenario", "award", sid, application, "--reason", "唯一申请", env=env)
    assert awarded.returncode == 0 and "\ttaken\t" in awarded.stdout, awarded.stdout + awarded.stderr
    again = dizuo("scenario", "award", sid, application, env=env)
    assert again.returncode == 2 and "不能揭榜" in again.stderr, again.stderr
