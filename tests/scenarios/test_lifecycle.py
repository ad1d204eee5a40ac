"""A scenario's whole life through the admin API, each move by the role that makes it, recorded in
its moves and the audit trail; illegal moves refused with the moves there are; what each
organization sees; bad input refused naming the field, nothing stored."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from dizuo.accounts.members import create_member, create_token
from dizuo.indicators import monthly
from dizuo.scenarios.tables import Scenario
from dizuo.store import Database
from dizuo.store.audit import AuditRecord
from tests.support.platform import GatewayApp, PlatformUnderTest
from tests.support.platform import admin_api as api

NEED = {
    "title": "船用柴油机零部件质检报告智能审核",
    "industry": "制造业",
    "district": "江津区",
    "description": "每月约 3000 份质检报告，人工核对检验规范与历史质量问题，耗时长、易漏检。",
    "data_available": "近三年质检报告（PDF/Excel）、企业标准 Q/HJ 017",
    "budget_min": "300000",
    "budget_max": "800,000",
    "expected": "报告审核时间缩短 80%，漏检率低于 1%",
    "contact": "王工 13800138000",
}


def member_of(platform: PlatformUnderTest, org: str) -> str:
    """An admin token of a developer of *org*."""
    db = Database(platform.settings.resolved_database_url)
    try:
        username = f"dev-{uuid.uuid4().hex[:8]}"
        create_member(db, username, "correct horse battery", "org-developer", org=org)
        return create_token(db, username)
    finally:
        db.dispose()


async def move(platform: PlatformUnderTest, token: str, scenario_id: str, to: str, **extra: Any) -> Any:
    return await api(platform, token, "POST", f"/scenarios/{scenario_id}/moves", json={"to": to, **extra})


async def test_a_scenario_goes_from_draft_to_benchmark_each_move_by_its_role(gateway_app: GatewayApp) -> None:
    platform = await gateway_app()
    tokens = platform.people()
    org_a, org_b = tokens["org_a"], tokens["org_b"]
    made = await api(platform, tokens["a-dev"], "POST", "/scenarios", json={"org": org_a, "scenario": NEED})
    assert made.status_code == 201, made.text
    scenario = made.json()
    sid = scenario["id"]
    assert (
        scenario["status"] == "draft"
        and scenario["industry"] == "C"
        and scenario["industry_name"] == "制造业"
    )
    assert scenario["budget_max"] == "800000.00" and scenario["moves_allowed"] == ["submitted"]
    # Another organization's member sees no draft.
    stranger = member_of(platform, org_b)
    assert sid not in [s["id"] for s in (await api(platform, stranger, "GET", "/scenarios")).json()]
    assert (await api(platform, stranger, "GET", f"/scenarios/{sid}")).status_code == 404
    assert (await api(platform, tokens["auditor"], "GET", f"/scenarios/{sid}")).status_code == 200

    assert (await move(platform, tokens["a-dev"], sid, "submitted")).json()["status"] == "submitted"
    # The demand side cannot select its own scenario; the office cannot skip the review.
    assert (await move(platform, tokens["a-dev"], sid, "under_review")).status_code == 403
    skipped = await move(platform, tokens["admin"], sid, "published", list="2026年第一批")
    assert skipped.status_code == 409 and skipped.json()["error"]["code"] == "scenario_move_not_allowed"
    assert "under_review" in skipped.json()["error"]["message"]
    assert (await move(platform, tokens["admin"], sid, "under_review")).status_code == 200
    assert (
        await move(platform, tokens["admin"], sid, "selected", reason="需求明确，示范性强")
    ).status_code == 200
    unnamed = await move(platform, tokens["admin"], sid, "published", list="第一批")
    assert unnamed.status_code == 400 and unnamed.json()["error"]["param"] == "list"
    published = (await move(platform, tokens["admin"], sid, "published", list="2026年第一批")).json()
    assert published["list"] == "2026年第一批"
    # Published: every organization sees it, without the demand side's contact.
    seen = {s["id"]: s for s in (await api(platform, tokens["auditor"], "GET", "/scenarios")).json()}
    assert seen[sid]["contact"] == NEED["contact"]
    own = (await api(platform, tokens["a-admin"], "GET", f"/scenarios/{sid}")).json()
    assert own["contact"] == NEED["contact"]
    theirs = (await api(platform, stranger, "GET", f"/scenarios/{sid}")).json()
    assert theirs["status"] == "published" and theirs["contact"] is None
    assert (await move(platform, stranger, sid, "submitted")).status_code == 404
    self_taken = await move(platform, tokens["admin"], sid, "taken", taker=org_a)
    assert self_taken.status_code == 400 and self_taken.json()["error"]["param"] == "taker"
    assert (await move(platform, tokens["admin"], sid, "taken", taker=org_b)).json()["taker"] == org_b
    for stage in ("in_construction", "accepted", "benchmark"):
        assert (await move(platform, tokens["admin"], sid, stage)).status_code == 200, stage
    final = (await api(platform, tokens["auditor"], "GET", f"/scenarios/{sid}")).json()
    assert final["status"] == "benchmark" and final["moves_allowed"] == []
    assert [(m["from"], m["to"]) for m in final["moves"]] == [
        ("draft", "submitted"),
        ("submitted", "under_review"),
        ("under_review", "selected"),
        ("selected", "published"),
        ("published", "taken"),
        ("taken", "in_construction"),
        ("in_construction", "accepted"),
        ("accepted", "benchmark"),
    ]
    assert final["moves"][2]["reason"] == "需求明确，示范性强"
    ended = await move(platform, tokens["admin"], sid, "closed", reason="x")
    assert ended.status_code == 409 and "—" in ended.json()["error"]["message"]

    db = Database(platform.settings.resolved_database_url)
    try:
        with db.session() as session:
            actions = list(session.scalars(select(AuditRecord.action).where(AuditRecord.target == sid).order_by(AuditRecord.seq)))  # fmt: skip
        assert actions == ["scenario.create", "scenario.submitted", "scenario.under_review", "scenario.selected", "scenario.published", "scenario.taken", "scenario.in_construction", "scenario.accepted", "scenario.benchmark"]  # fmt: skip
        counts = monthly(db, "2026-12")["scenarios"]
        with db.session() as session:
            benchmarks = int(session.scalar(select(func.count()).where(Scenario.status == "benchmark")) or 0)
        assert counts["benchmark"] == benchmarks >= 1
    finally:
        db.dispose()


async def test_what_each_organization_sees_and_a_rejection_needs_a_reason(gateway_app: GatewayApp) -> None:
    platform = await gateway_app()
    tokens = platform.people()
    org_a = tokens["org_a"]
    draft = (
        await api(platform, tokens["a-dev"], "POST", "/scenarios", json={"org": org_a, "scenario": NEED})
    ).json()
    # A voucher issuer has no business with scenarios; nobody creates one for another organization.
    assert (await api(platform, tokens["bureau"], "GET", "/scenarios")).status_code == 403
    assert (await api(platform, tokens["a-dev"], "POST", "/scenarios", json={"org": tokens["org_b"], "scenario": NEED})).status_code == 403  # fmt: skip
    changed = await api(platform, tokens["a-admin"], "PUT", f"/scenarios/{draft['id']}", json={"org": org_a, "scenario": {**NEED, "district": "永川区"}})  # fmt: skip
    assert changed.status_code == 200 and changed.json()["district"] == "永川区"
    await move(platform, tokens["a-dev"], draft["id"], "submitted")
    late_change = await api(platform, tokens["a-admin"], "PUT", f"/scenarios/{draft['id']}", json={"org": org_a, "scenario": NEED})  # fmt: skip
    assert late_change.status_code == 409
    await move(platform, tokens["admin"], draft["id"], "under_review")
    silent = await move(platform, tokens["admin"], draft["id"], "rejected")
    assert silent.status_code == 400 and silent.json()["error"]["param"] == "reason"
    rejected = await move(platform, tokens["admin"], draft["id"], "rejected", reason="与已有场景重复")
    assert rejected.json()["status"] == "rejected" and rejected.json()["moves_allowed"] == []


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"industry": "造船"}, "industry"),
        ({"title": ""}, "title"),
        ({"description": "太短"}, "description"),
        ({"budget_min": "三十万"}, "budget_min"),
        ({"budget_min": "900000", "budget_max": "800000"}, "budget_max"),
        ({"budget_max": "1.005"}, "budget_max"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_a_bad_need_is_refused_naming_the_field_and_nothing_is_stored(
    gateway_app: GatewayApp, change: dict[str, Any], param: str
) -> None:
    platform = await gateway_app()
    tokens = platform.people()
    db = Database(platform.settings.resolved_database_url)
    try:
        with db.session() as session:
            before = int(session.scalar(select(func.count()).select_from(Scenario)) or 0)
        refused = await api(platform, tokens["a-dev"], "POST", "/scenarios", json={"org": tokens["org_a"], "scenario": {**NEED, **change}})  # fmt: skip
        assert refused.status_code == 400 and refused.json()["error"]["param"] == param, refused.text
        with db.session() as session:
            assert int(session.scalar(select(func.count()).select_from(Scenario)) or 0) == before
    finally:
        db.dispose()
