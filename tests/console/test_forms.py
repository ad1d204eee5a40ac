"""The console's forms over plain HTTP: sessions, CSRF, redirects and inline errors that save nothing."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest

from dizuo.accounts import find_org
from dizuo.accounts.service import list_keys
from dizuo.billing.service import wallet_view
from dizuo.store import Database
from tests.conftest import RunningGateway
from tests.console.conftest import PASSWORD, People


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


def signed_in(gateway: RunningGateway, username: str) -> httpx.Client:
    client = httpx.Client(base_url=f"{gateway.url}/console", timeout=30)
    token = csrf_of(client.get("/login").text)
    answer = client.post("/login", data={"username": username, "password": PASSWORD, "csrf": token})
    assert answer.status_code == 303
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    assert answer.headers["x-frame-options"] == "DENY"
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/console" in cookie
    return client


@pytest.fixture
def root(gateway: RunningGateway, people: People) -> Iterator[httpx.Client]:
    client = signed_in(gateway, people.user("root"))
    yield client
    client.close()


def vouchers(gateway: RunningGateway, org: str) -> list[dict[str, object]]:
    db = Database(gateway.settings.resolved_database_url)
    try:
        return list(wallet_view(db, org)["vouchers"])
    finally:
        db.dispose()


def test_a_post_without_the_session_token_changes_nothing(
    root: httpx.Client, gateway: RunningGateway, people: People
) -> None:
    before = len(vouchers(gateway, people.org_b))
    form = {"org": people.org_b, "issuer": "局", "program": "p", "amount": "1", "copay": "0.5"}
    answer = root.post("/vouchers", data={**form, "valid_to": "2030-01-01"})
    assert answer.status_code == 403 and "表单已过期" in answer.text
    answer = root.post("/vouchers", data={**form, "valid_to": "2030-01-01", "csrf": "forged"})
    assert answer.status_code == 403
    assert len(vouchers(gateway, people.org_b)) == before


def test_sign_in_needs_its_own_form_token_and_never_redirects_away(
    gateway: RunningGateway, people: People
) -> None:
    with httpx.Client(base_url=f"{gateway.url}/console", timeout=30) as client:
        answer = client.post("/login", data={"username": people.user("root"), "password": PASSWORD})
        assert answer.status_code == 403 and "页面已过期" in answer.text
        token = csrf_of(client.get("/login").text)
        answer = client.post(
            "/login",
            data={
                "username": people.user("root"),
                "password": PASSWORD,
                "csrf": token,
                "next": "//evil.example/",
            },
        )
        assert answer.status_code == 303 and answer.headers["location"] == "/console/"


def test_a_bad_voucher_from_the_wallet_page_is_answered_there(
    root: httpx.Client, gateway: RunningGateway, people: People
) -> None:
    wallet = f"/orgs/{quote(people.org_b)}/wallet"
    token = csrf_of(root.get(wallet).text)
    before = len(vouchers(gateway, people.org_b))
    form = {
        "csrf": token,
        "back": "wallet",
        "org": people.org_b,
        "issuer": "市大数据局",
        "program": "试点",
        "amount": "200",
        "copay": "1.5",
        "valid_to": "2030-06-30",
    }
    answer = root.post("/vouchers", data=form)
    assert answer.status_code == 400
    assert 'id="f-copay-error"' in answer.text and 'value="试点"' in answer.text  # typed values kept
    assert len(vouchers(gateway, people.org_b)) == before
    answer = root.post("/vouchers", data={**form, "copay": "0.4"})
    assert answer.status_code == 303 and answer.headers["location"].startswith(f"/console{wallet}?done=")
    [granted] = [v for v in vouchers(gateway, people.org_b) if v["program"] == "试点"]
    assert granted["face"] == "200.000000" and granted["valid_to"] == "2030-06-30T16:00:00+00:00"


def test_signing_out_ends_the_session(gateway: RunningGateway, people: People) -> None:
    client = signed_in(gateway, people.user("auditor"))
    assert client.get("/orgs").status_code == 200
    token = csrf_of(client.get("/orgs").text)
    assert client.post("/logout", data={"csrf": token}).status_code == 303
    answer = client.get("/orgs")
    assert answer.status_code == 303 and answer.headers["location"].startswith("/console/login")
    client.close()


@pytest.mark.parametrize(
    ("nickname", "path", "data"),
    [
        ("auditor", "/orgs", {"name": "审计员不能建"}),  # reads everything, changes nothing
        ("a-dev", "/keys/{key_b}/revoke", {}),  # developers do not revoke
        ("a-admin", "/orgs/{org_a}/topups", {"topup_amount": "1000"}),  # only operators top up
        ("bureau", "/orgs/{org_a}/keys", {"name": "x"}),  # issuers make no keys
    ],
)
def test_a_role_without_the_right_is_refused_and_nothing_changes(
    gateway: RunningGateway, people: People, nickname: str, path: str, data: dict[str, str]
) -> None:
    client = signed_in(gateway, people.user(nickname))
    token = csrf_of(client.get("/playground" if nickname != "bureau" else "/issuer").text)
    wallet_before = vouchers(gateway, people.org_a), _balance(gateway, people.org_a)
    answer = client.post(
        path.format(key_b=people.key_b_id, org_a=quote(people.org_a)), data={**data, "csrf": token}
    )
    client.close()
    assert answer.status_code == 403 and "没有权限" in answer.text
    assert (vouchers(gateway, people.org_a), _balance(gateway, people.org_a)) == wallet_before
    db = Database(gateway.settings.resolved_database_url)
    assert find_org(db, "审计员不能建") is None
    assert {k["id"]: k["state"] for k in list_keys(db, people.org_b)}[people.key_b_id] == "active"
    db.dispose()


def _balance(gateway: RunningGateway, org: str) -> str:
    db = Database(gateway.settings.resolved_database_url)
    try:
        return str(wallet_view(db, org)["balance"])
    finally:
        db.dispose()


def test_a_new_organization_gets_its_region_from_the_form(
    root: httpx.Client, gateway: RunningGateway
) -> None:
    name = f"区域-{uuid.uuid4().hex[:6]}"
    token = csrf_of(root.get("/orgs").text)
    answer = root.post("/orgs", data={"csrf": token, "name": name, "region": "cq", "data_class": "core"})
    assert answer.status_code == 303
    db = Database(gateway.settings.resolved_database_url)
    found = find_org(db, name)
    db.dispose()
    assert found is not None and found.region == "cq"
