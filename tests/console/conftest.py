"""People and organizations for the console's tests: two companies, their admins, an issuer, an operator."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from dizuo.accounts import create_key, create_org
from dizuo.accounts.members import create_member
from dizuo.billing import parse_cny
from dizuo.billing.service import topup
from dizuo.store import Database
from tests.support.platform import RunningGateway

PASSWORD = "correct horse battery"
LAPTOP = {"width": 1366, "height": 768}


@dataclass
class People:
    tag: str
    org_a: str
    org_b: str
    key_a: str  # an API key of org A
    key_b_id: str  # a key of org B (for cross-organization attempts)
    issuer: str
    users: dict[str, str]  # role nickname -> username

    def user(self, nickname: str) -> str:
        return self.users[nickname]


@pytest.fixture(scope="module")
def people(gateway: RunningGateway) -> People:
    db = Database(gateway.settings.resolved_database_url)
    try:
        return make_people(db)
    finally:
        db.dispose()


def make_people(db: Database) -> People:
    """Two organizations (A with ¥100 and a key, B with a key), an issuer, and a console member of
    each role: ``root`` (platform admin), ``a-admin``, ``a-dev``, ``bureau`` (the issuer's),
    ``auditor``."""
    tag = uuid.uuid4().hex[:6]
    org_a, org_b, issuer = f"甲船机-{tag}", f"乙电子-{tag}", f"大数据局-{tag}"
    create_org(db, org_a, uscc_code=None)
    create_org(db, org_b)
    topup(db, org_a, parse_cny("100"))
    key_a = create_key(db, org_a, name="tests").key
    key_b = create_key(db, org_b, name="b's key")
    users = {}
    for nickname, role, extra in (
        ("root", "platform-admin", {}),
        ("a-admin", "org-admin", {"org": org_a}),
        ("a-dev", "org-developer", {"org": org_a}),
        ("bureau", "voucher-issuer", {"issuer": issuer}),
        ("auditor", "auditor", {}),
    ):
        username = f"{nickname}-{tag}"
        create_member(db, username, PASSWORD, role, **extra)
        users[nickname] = username
    return People(tag, org_a, org_b, key_a, key_b.record.id, issuer, users)


def sign_in(browser: Any, gateway: RunningGateway, username: str, *, lang: str | None = None) -> Any:
    """Open a laptop-sized page, sign in as *username*, and return the page on the overview."""
    context = browser.new_context(
        viewport=LAPTOP, accept_downloads=True, locale="zh-CN", timezone_id="Asia/Shanghai"
    )
    if lang is not None:
        host = gateway.url.split("//", 1)[1].split(":")[0]
        context.add_cookies([{"name": "dizuo_lang", "value": lang, "domain": host, "path": "/console"}])
    page = context.new_page()
    page.goto(f"{gateway.url}/console/")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state()
    return page
