"""One tenant's members and keys reach nothing of another tenant's: every admin route that names an
organization is tried with the other organization's name, and every role's reach is checked on
every branch of a route (asked for an organization or not)."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from tests.conftest import RunningGateway
from tests.security.conftest import Platform, bearer

# Bodies that pass validation, so that the answer is the permission check's, not the schema's.
BODIES: dict[str, Any] = {
    "/admin/v1/orgs/{org}/keys": {"name": "探测"},
    "/admin/v1/orgs/{org}/topups": {"amount": "1.00"},
    "/admin/v1/orgs/{org}/vouchers": {
        "amount": "1.00",
        "issuer": "探测局",
        "program": "探测",
        "copay": "0.5",
        "valid_from": "2026-01-01T00:00:00+08:00",
        "valid_to": "2026-12-31T00:00:00+08:00",
    },
    "/admin/v1/orgs/{org}/guard-policy": {"action": "off"},
    "/admin/v1/orgs/{org}/keys/{key_id}/guard-policy": {"action": "off"},
}
QUERIES: dict[str, dict[str, str]] = {"/admin/v1/orgs/{org}/statement": {"month": "2026-12"}}


def org_routes(gateway: RunningGateway) -> list[tuple[str, str]]:
    admin = gateway.platform.admin.app  # behind its body limit
    return sorted(
        (method, route.path)
        for route in admin.routes
        if isinstance(route, APIRoute) and "{org}" in route.path
        for method in route.methods
    )


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
