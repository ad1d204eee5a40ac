"""The console's forms over plain HTTP: sessions, CSRF, redirects and inline errors that save nothing."""

from __future__ import annotations

import re
import uuid
from urllib.parse import quote

import httpx
import pytest

from dizuo.accounts import find_org
from dizuo.accounts.service import list_keys
from dizuo.billing.service import wallet_view
from dizuo.store import Database
from tests.console.conftest import PASSWORD, People, make_people
from tests.support.platform import GatewayApp, PlatformUnderTest, RunningGateway


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


def signed_in(gateway: RunningGateway, username: str) -> httpx.Client:
    client = httpx.Client(base_url=f"{gateway.url}/console", timeout=30)
    token = csrf_of(client.get("/login").text)
    signed_in_safely(client.post("/login", data={"username": username, "password": PASSWORD, "csrf": token}))
    return client


def signed_in_safely(answer: httpx.Response) -> None:
    """A sign-in that went through: a redirect that no frame can show, and a session cookie that
    scripts cannot read and other sites cannot send."""
    assert answer.status_code == 303
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    assert answer.headers["x-frame-options"] == "DENY"
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/console" in cookie


def vouchers(on: RunningGateway | PlatformUnderTest, org: str) -> list[dict[str, object]]:
    db = Database(on.settings.resolved_database_url)
    try:
        return list(wallet_view(db, org)["vouchers"])
    finally:
        db.dispose()


@pytest.fixture
async def console(gateway_app: GatewayApp) -> tuple[PlatformUnderTest, People]:
    """A platform with no deployments, and its people (tests/console/conftest.py: make_people)."""
    platform = await gateway_app()
    return platform, make_people(platform.db)


async def console_of(platform: PlatformUnderTest, username: str | None = None) -> httpx.AsyncClient:
    """The console of *platform* in process; signed in as *username* (checking the session cookie's
    and the answer's protections) unless None."""
    client = platform.http()
    client.base_url = httpx.URL(f"{client.base_url}/console")
    if username is None:
        return client
    token = csrf_of((await client.get("/login")).text)
    signed_in_safely(
        await client.post("/login", data={"username": username, "password": PASSWORD, "csrf": token})
    )
    return client


async def test_a_post_without_the_session_token_changes_nothing(
    console: tuple[PlatformUnderTest, People],
) -> None:
    platform, people = console
    root = await console_of(platform, people.user("root"))
    before = len(vouchers(platform, people.org_b))
    form = {"org": people.org_b, "issuer": "局", "program": "p", "amount": "1", "copay": "0.5"}
    answer = await root.post("/vouchers", data={**form, "valid_to": "2030-01-01"})
    assert answer.status_code == 403 and "表单已过期" in answer.text
    answer = await root.post("/vouchers", data={**form, "valid_to": "2030-01-01", "csrf": "forged"})
    assert answer.status_code == 403
    assert len(vouchers(platform, people.org_b)) == before


async def test_sign_in_needs_its_own_form_token_and_never_redirects_away(
    console: tuple[PlatformUnderTest, People],
) -> None:
    platform, people = console
    client = await console_of(platform)
    answer = await client.post("/login", data={"username": people.user("root"), "password": PASSWORD})
    assert answer.status_code == 403 and "页面已过期" in answer.text
    token = csrf_of((await client.get("/login")).text)
    answer = await client.post(
        "/login",
        data={
            "username": people.user("root"),
            "password": PASSWORD,
            "csrf": token,
            "next": "//evil.example/",
        },
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/console/"


async def test_a_bad_voucher_from_the_wallet_page_is_answered_there(
    console: tuple[PlatformUnderTest, People],
) -> None:
    platform, people = console
    root = await console_of(platform, people.user("root"))
    wallet = f"/orgs/{quote(people.org_b)}/wallet"
    token = csrf_of((await root.get(wallet)).text)
    before = len(vouchers(platform, people.org_b))
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
    answer = await root.post("/vouchers", data=form)
    assert answer.status_code == 400
    assert 'id="f-copay-error"' in answer.text and 'value="试点"' in answer.text  # typed values kept
    assert len(vouchers(platform, people.org_b)) == before
    answer = await root.post("/vouchers", data={**form, "copay": "0.4"})
    assert answer.status_code == 303 and answer.headers["location"].startswith(f"/console{wallet}?done=")
    [granted] = [v for v in vouchers(platform, people.org_b) if v["program"] == "试点"]
    assert granted["face"] == "200.000000" and granted["valid_to"] == "2030-06-30T16:00:00+00:00"


async def test_signing_out_ends_the_session(console: tuple[PlatformUnderTest, People]) -> None:
    platform, people = console
    client = await console_of(platform, people.user("auditor"))
    assert (await client.get("/orgs")).status_code == 200
    token = csrf_of((await client.get("/orgs")).text)
    assert (await client.post("/logout", data={"csrf": token})).status_code == 303
    answer = await client.get("/orgs")
    assert answer.status_code == 303 and answer.headers["location"].startswith("/console/login")


@pytest.mark.parametrize(
    ("nickname", "path", "data"),
    [
        ("auditor", "/orgs", {"name": "审计员不能建"}),  # reads everything, changes nothing
        ("a-dev", "/keys/{key_b}/revoke", {}),  # developers do not revoke
        ("a-admin", "/orgs/{org_a}/topups", {"topup_amount": "1000"}),  # only operators top up
        ("bureau", "/orgs/{org_a}/keys", {"name": "x"}),  # issuers make no keys
    ],
)
async def test_a_role_without_the_right_is_refused_and_nothing_changes(
    console: tuple[PlatformUnderTest, People], nickname: str, path: str, data: dict[str, str]
) -> None:
    platform, people = console
    client = await console_of(platform, people.user(nickname))
    token = csrf_of((await client.get("/playground" if nickname != "bureau" else "/issuer")).text)
    wallet_before = vouchers(platform, people.org_a), _balance(platform, people.org_a)
    answer = await client.post(
        path.format(key_b=people.key_b_id, org_a=quote(people.org_a)), data={**data, "csrf": token}
    )
    assert answer.status_code == 403 and "没有权限" in answer.text
    assert (vouchers(platform, people.org_a), _balance(platform, people.org_a)) == wallet_before
    assert find_org(platform.db, "审计员不能建") is None
    assert {k["id"]: k["state"] for k in list_keys(platform.db, people.org_b)}[people.key_b_id] == "active"


def _balance(platform: PlatformUnderTest, org: str) -> str:
    return str(wallet_view(platform.db, org)["balance"])


async def test_a_new_organization_gets_its_region_from_the_form(
    console: tuple[PlatformUnderTest, People],
) -> None:
    platform, people = console
    root = await console_of(platform, people.user("root"))
    name = f"区域-{uuid.uuid4().hex[:6]}"
    token = csrf_of((await root.get("/orgs")).text)
    answer = await root.post(
        "/orgs", data={"csrf": token, "name": name, "region": "cq", "data_class": "core"}
    )
    assert answer.status_code == 303
    found = find_org(platform.db, name)
    assert found is not None and found.region == "cq"
