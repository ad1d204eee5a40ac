"""One tenant's members and keys reach nothing of another tenant's: every admin and console route
that names an organization is tried with the other organization's name, every knowledge-base route
with the other's knowledge base, and every role's reach is checked on every branch of a route
(asked for an organization or not). A new route that names an organization joins the walk by itself."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from tests.console.test_forms import csrf_of
from tests.console.test_forms import signed_in as console_sign_in
from tests.security.conftest import Platform, bearer
from tests.support.platform import RunningGateway

# Bodies that pass validation, so that the answer is the permission check's, not the schema's.
BODIES: dict[str, Any] = {
    "/admin/v1/orgs/{org}": {"serves_public": True},
    "/admin/v1/orgs/{org}/keys": {"name": "探测"},
    "/admin/v1/orgs/{org}/topups": {"amount": "1.00"},
    "/admin/v1/orgs/{org}/vouchers": {
        "amount": "1.00",
        "issuer": "探测局",
        "program": "探测",
        "voucher_share": "0.5",
        "valid_from": "2026-01-01T00:00:00+08:00",
        "valid_to": "2026-12-31T00:00:00+08:00",
    },
    "/admin/v1/orgs/{org}/guard-policy": {"action": "off"},
    "/admin/v1/orgs/{org}/keys/{key_id}/guard-policy": {"action": "off"},
    "/admin/v1/agents/{org}/{name}": {"org": "探测", "definition": {"name": "探测", "model": "echo-model"}},
}
QUERIES: dict[str, dict[str, str]] = {"/admin/v1/orgs/{org}/statement": {"month": "2026-12"}}


def every_route(routes: list[Any]) -> Iterator[APIRoute]:
    """The routes of an app, those of included routers too (FastAPI wraps each included router)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):
            yield from every_route(route.original_router.routes)


def naming_an_org(app: Any) -> list[tuple[str, str]]:
    return sorted(
        (method, route.path)
        for route in every_route(app.routes)
        if "{org}" in route.path
        for method in route.methods
    )


def org_routes(gateway: RunningGateway) -> list[tuple[str, str]]:
    return naming_an_org(gateway.platform.admin.app)  # .app: the admin API behind its body limit


def test_every_route_naming_an_organization_is_tried(gateway: RunningGateway) -> None:
    # The walk below covers what the admin API has: a new route joins it by itself.
    assert len(org_routes(gateway)) >= 8


@pytest.mark.parametrize("role", ["admin", "developer"])
def test_an_organization_s_members_reach_no_other_organization(
    gateway: RunningGateway, admin_api: httpx.Client, platform: Platform, role: str
) -> None:
    token = getattr(platform.a, role)
    leaks = []
    for method, path in org_routes(gateway):
        url = re.sub(r"\{key_id\}", "k0", path.replace("{org}", platform.b.org)).removeprefix("/admin/v1")
        answer = admin_api.request(
            method, url, json=BODIES.get(path), params=QUERIES.get(path), headers=bearer(token)
        )
        if answer.status_code not in (403, 404):
            leaks.append((method, path, answer.status_code))
    assert leaks == []


def test_a_developer_reads_no_guard_events_asked_for_an_organization_or_not(
    admin_api: httpx.Client, platform: Platform
) -> None:
    for params in ({}, {"org": platform.a.org}):
        answer = admin_api.get("/guard/events", params=params, headers=bearer(platform.a.developer))
        assert answer.status_code == 403, params
    assert admin_api.get("/guard/events", headers=bearer(platform.a.admin)).status_code == 200


def console_org_routes(gateway: RunningGateway) -> list[tuple[str, str]]:
    return naming_an_org(gateway.platform.console.app)


@pytest.mark.parametrize("role", ["admin_user", "developer_user"])
def test_an_organization_s_members_open_no_console_page_of_another(
    gateway: RunningGateway, platform: Platform, role: str
) -> None:
    routes = console_org_routes(gateway)
    assert len(routes) >= 6
    client = console_sign_in(gateway, getattr(platform.a, role))
    csrf = csrf_of(client.get("/account").text)
    leaks = []
    for method, path in routes:
        url = path.replace("{org}", platform.b.org).replace("{fmt}", "csv").removeprefix("/console")
        data = {"csrf": csrf, "topup_amount": "1", "name": "探测"} if method == "POST" else None
        answer = client.request(method, url, data=data)
        if answer.status_code not in (403, 404):
            leaks.append((method, path, answer.status_code))
    client.close()
    assert leaks == []


def test_one_organization_s_key_finds_none_of_another_s_knowledge_bases(
    gateway: RunningGateway, platform: Platform
) -> None:
    name = "乙的制度"
    with httpx.Client(base_url=f"{gateway.v1}/knowledge-bases", headers=bearer(platform.b.key)) as b:
        b.post("", json={"name": name})
    with httpx.Client(base_url=f"{gateway.v1}/knowledge-bases", headers=bearer(platform.a.key)) as a:
        assert name not in str(a.get("").json())
        for method, path, body in [
            ("GET", f"/{name}", None),
            ("GET", f"/{name}/documents", None),
            ("POST", f"/{name}/query", {"question": "有效期"}),
            ("DELETE", f"/{name}/documents/x.md", None),
            ("DELETE", f"/{name}", None),
        ]:
            answer = a.request(method, path, json=body)
            assert answer.status_code == 404 and answer.json()["error"]["code"] == "kb_not_found", path
    with httpx.Client(base_url=f"{gateway.v1}/knowledge-bases", headers=bearer(platform.b.key)) as b:
        assert b.get(f"/{name}").status_code == 200
        b.delete(f"/{name}")
