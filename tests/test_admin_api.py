"""The admin API: the same operations as the CLI over HTTP, each checking the caller's role."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from openpyxl import load_workbook

from dizuo.accounts import create_org
from dizuo.accounts.members import create_member, create_token
from dizuo.store import Database
from tests.support.browser import screenshot
from tests.support.platform import GatewayApp, RunningGateway, Serve, admin_api, upstream_deployment

ADMIN = "/admin/v1"


@pytest.fixture(scope="module")
def gateway(serve: Serve) -> Iterator[RunningGateway]:
    """A platform served for the docs page in Chromium and the console tests that import ``tokens`` (no model
    is called)."""
    with serve([]) as running:
        yield running


@pytest.fixture(scope="module")
def tokens(gateway: RunningGateway) -> dict[str, Any]:
    db = Database(gateway.settings.resolved_database_url)
    tag = uuid.uuid4().hex[:6]
    org_a, org_b = f"甲公司-{tag}", f"乙公司-{tag}"
    create_org(db, org_a)
    create_org(db, org_b)
    members = {
        "admin": ("platform-admin", {}),
        "a-admin": ("org-admin", {"org": org_a}),
        "a-dev": ("org-developer", {"org": org_a}),
        "bureau": ("voucher-issuer", {"issuer": f"大数据局-{tag}"}),
        "auditor": ("auditor", {}),
    }
    out: dict[str, Any] = {"org_a": org_a, "org_b": org_b, "issuer": f"大数据局-{tag}"}
    for name, (role, extra) in members.items():
        username = f"{name}-{tag}"
        create_member(db, username, "correct horse battery", role, **extra)
        out[name] = create_token(db, username)
    db.dispose()
    return out


def api(gateway: RunningGateway, token: str | None, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.request(method, f"{gateway.url}{ADMIN}{path}", headers=headers, timeout=30, **kwargs)


async def test_openapi_docs_are_served(gateway_app: GatewayApp) -> None:
    platform = await gateway_app()
    client = platform.http()
    spec = (await client.get(f"{ADMIN}/openapi.json")).json()
    assert f"{ADMIN}/orgs/{{org}}/vouchers" in spec["paths"]
    page = await client.get(f"{ADMIN}/docs")
    assert page.status_code == 200
    # A closed network reaches no CDN: every script, style and icon the page loads is the platform's.
    assets = re.findall(r'(?:src|href)=["\']([^"\']+)["\']', page.text)
    assert assets and not [url for url in assets if "//" in url]
    for url in assets:
        answer = await client.get(url)
        assert answer.status_code == 200 and len(answer.content) > 100, url


async def test_no_token_is_401_in_the_envelope(gateway_app: GatewayApp) -> None:
    platform = await gateway_app()
    response = await admin_api(platform, None, "GET", "/orgs")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "admin_token_invalid"
    assert (await admin_api(platform, "dzt-bogus", "GET", "/orgs")).status_code == 401


async def test_platform_admin_runs_the_money_cycle(gateway_app: GatewayApp) -> None:
    # Output-priced: 3 tokens at ¥1000 per million cost ¥0.003, half of it the voucher's.
    platform = await gateway_app([upstream_deployment("pricey-model", price=("0", "1000"))])
    tokens = platform.people()
    org, admin = tokens["org_a"], tokens["admin"]
    assert (
        await admin_api(platform, admin, "POST", f"/orgs/{org}/topups", json={"amount": "20.00"})
    ).status_code == 201
    created = await admin_api(platform, admin, "POST", f"/orgs/{org}/keys", json={"name": "生产", "rpm": 60})
    assert created.status_code == 201
    key = created.json()
    assert key["key"].startswith("dz-") and key["rpm"] == 60 and "key_hash" not in key
    now = dt.datetime.now(dt.UTC)
    voucher = await admin_api(
        platform,
        admin,
        "POST",
        f"/orgs/{org}/vouchers",
        json={
            "issuer": tokens["issuer"],
            "program": "首批算力券",
            "amount": "5",
            "voucher_share": "0.5",
            "valid_from": (now - dt.timedelta(days=1)).isoformat(),
            "valid_to": (now + dt.timedelta(days=9)).isoformat(),
        },
    )
    assert voucher.status_code == 201, voucher.text
    calls = platform.http(key["key"])
    answered = await calls.post(
        "/v1/chat/completions",
        json={"model": "pricey-model", "messages": [{"role": "user", "content": "x"}], "max_tokens": 3},
    )
    assert answered.status_code == 200
    wallet = (await admin_api(platform, admin, "GET", f"/orgs/{org}/wallet")).json()
    assert wallet["balance"] == "19.998500" and wallet["vouchers"][0]["remaining"] == "4.998500"
    usage = (await admin_api(platform, admin, "GET", f"/orgs/{org}/usage")).json()
    assert [(u["cost"], u["voucher_part"]) for u in usage] == [("0.003000", "0.001500")]
    month = now.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m")  # the platform's month
    xlsx = await admin_api(
        platform,
        tokens["auditor"],
        "GET",
        f"/orgs/{org}/statement",
        params={"month": month, "format": "xlsx"},
    )
    assert xlsx.status_code == 200, xlsx.text
    assert xlsx.headers["content-type"].startswith("application/vnd.openxmlformats")
    import io

    sheet = load_workbook(io.BytesIO(xlsx.content)).active
    assert sheet["B1"].value == org
    report = await admin_api(
        platform,
        tokens["bureau"],
        "GET",
        f"/issuers/{tokens['issuer']}/voucher-report",
        params={"month": month},
    )
    assert report.json()[0]["voucher_paid"] == "0.001500"
    revoked = await admin_api(platform, admin, "POST", f"/keys/{key['id']}/revoke")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]


@pytest.mark.parametrize(
    ("who", "method", "path", "body"),
    [
        ("a-admin", "GET", "/orgs/{org_b}/wallet", None),  # another organization's wallet
        ("a-dev", "GET", "/orgs/{org_a}/wallet", None),  # developers see usage, not money
        ("a-admin", "POST", "/orgs/{org_a}/topups", {"amount": "1"}),  # only the platform tops up
        ("auditor", "POST", "/orgs", {"name": "x"}),  # auditors change nothing
        ("bureau", "GET", "/issuers/另一个局/voucher-report?month=2026-01", None),  # another issuer's report
        ("a-dev", "POST", "/orgs/{org_b}/keys", {}),
    ],
)
async def test_roles_are_enforced(
    gateway_app: GatewayApp,
    who: str,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    platform = await gateway_app()
    tokens = platform.people()
    response = await admin_api(platform, tokens[who], method, path.format(**tokens), json=body)
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "permission_denied" and error["type"] == "permission_error"


async def test_issuer_grants_only_under_its_own_name(
    gateway_app: GatewayApp,
) -> None:
    platform = await gateway_app()
    tokens = platform.people()
    now = dt.datetime.now(dt.UTC)
    body = {
        "program": "p",
        "amount": "1",
        "voucher_share": "0.3",
        "valid_from": now.isoformat(),
        "valid_to": (now + dt.timedelta(days=1)).isoformat(),
    }
    own = await admin_api(
        platform,
        tokens["bureau"],
        "POST",
        f"/orgs/{tokens['org_b']}/vouchers",
        json={**body, "issuer": tokens["issuer"]},
    )
    assert own.status_code == 201
    other = await admin_api(
        platform,
        tokens["bureau"],
        "POST",
        f"/orgs/{tokens['org_b']}/vouchers",
        json={**body, "issuer": "别人"},
    )
    assert other.status_code == 403


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/orgs/{org_a}/topups", {"amount": "-3"}, "amount"),
        ("/orgs/{org_a}/topups", {"amount": "abc"}, "amount"),
        ("/orgs/{org_a}/topups", {"amount": "1", "colour": "red"}, "colour"),
        ("/orgs", {"name": "坏代码", "uscc": "91500000MA5U7T1E3X"}, "uscc"),
        ("/orgs/no-such-org/topups", {"amount": "1"}, "org"),
    ],
)
async def test_bad_input_is_400_naming_the_param(
    gateway_app: GatewayApp, path: str, body: dict[str, Any], param: str
) -> None:
    platform = await gateway_app()
    tokens = platform.people()
    response = await admin_api(platform, tokens["admin"], "POST", path.format(**tokens), json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


async def test_a_validity_window_in_beijing_time_keeps_its_instant(
    gateway_app: GatewayApp,
) -> None:
    """SQLite keeps wall-clock digits and drops offsets: times must be stored in UTC."""
    platform = await gateway_app()
    tokens = platform.people()
    org = tokens["org_b"]
    answer = await admin_api(
        platform,
        tokens["admin"],
        "POST",
        f"/orgs/{org}/vouchers",
        json={
            "issuer": tokens["issuer"],
            "program": "时区",
            "amount": "1",
            "voucher_share": "0.5",
            "valid_from": "2026-01-01T00:00:00+08:00",
            "valid_to": "2030-06-30T23:59:59+08:00",
        },
    )
    assert answer.status_code == 201, answer.text
    wallet = (await admin_api(platform, tokens["admin"], "GET", f"/orgs/{org}/wallet")).json()
    [voucher] = [v for v in wallet["vouchers"] if v["program"] == "时区"]
    assert voucher["valid_from"] == "2025-12-31T16:00:00+00:00"
    assert voucher["valid_to"] == "2030-06-30T15:59:59+00:00"


def test_the_docs_page_renders_in_a_closed_network(browser: Any, gateway: RunningGateway) -> None:
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    outside: list[str] = []
    page.on(
        "request", lambda request: outside.append(request.url) if gateway.url not in request.url else None
    )
    page.goto(f"{gateway.url}{ADMIN}/docs")
    page.wait_for_selector(".opblock", timeout=15_000)
    assert page.locator(".opblock").count() > 20 and outside == []
    screenshot(page, "admin-api-docs")
