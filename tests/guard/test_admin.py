"""Guard policies and events through the admin CLI and the admin API, with roles."""

from __future__ import annotations

import asyncio
import json
import time

import openai
import pytest

from dizuo.accounts import create_key, get_org
from dizuo.billing import parse_cny
from dizuo.billing.service import topup
from tests.billing.test_cli_money import run
from tests.support.platform import GatewayApp, upstream_deployment

PROMPT = "请联系 13800138000"


async def test_policy_and_events_through_the_cli(gateway_app: GatewayApp) -> None:
    platform = await gateway_app([upstream_deployment("echo-model")])
    org = platform.people()["org_b"]
    shown = json.loads(
        run(platform, "guard-policy", "--org", org, "--action", "block", "--types", "CN_MOBILE").stdout
    )
    assert shown["action"] == "block" and shown["types"] == ["CN_MOBILE"] and shown["redact"] == "mask"
    topup(platform.db, org, parse_cny("1"))
    key = create_key(platform.db, org).key
    async with platform.sdk(key) as client:
        with pytest.raises(openai.BadRequestError):
            await client.chat.completions.create(
                model="echo-model", messages=[{"role": "user", "content": PROMPT}]
            )
    deadline = time.monotonic() + 3
    while True:
        events = json.loads(run(platform, "guard-events", "--org", org, "--json").stdout)
        if events or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert [(e["direction"], e["action"], e["counts"]) for e in events] == [
        ("prompt", "block", {"CN_MOBILE": 1})
    ]
    assert "13800138000" not in json.dumps(events)
    readable = run(platform, "guard-events", "--org", org).stdout
    assert "CN_MOBILE×1" in readable and "block" in readable
    cleared = run(platform, "guard-policy", "--org", org, "--clear")
    assert cleared.stdout.strip() == "null"


async def test_bad_policies_are_refused_clearly(gateway_app: GatewayApp) -> None:
    platform = await gateway_app()
    tokens = platform.people()
    org = tokens["org_a"]
    bad = run(platform, "guard-policy", "--org", org, "--action", "log", "--pattern", "([", check=False)
    assert bad.returncode == 2 and "regular expression" in bad.stderr
    missing = run(platform, "guard-policy", "--org", org, check=False)
    assert missing.returncode == 2 and "--action" in missing.stderr
    admin = platform.admin(tokens["admin"])
    response = await admin.put(f"/orgs/{org}/guard-policy", json={"action": "shout"})
    assert response.status_code == 400 and response.json()["error"]["param"] == "policy"


async def test_roles_on_guard_routes(gateway_app: GatewayApp) -> None:
    platform = await gateway_app([upstream_deployment("echo-model")])
    tokens = platform.people()
    org_a, org_b = tokens["org_a"], tokens["org_b"]
    a_admin, a_dev = platform.admin(tokens["a-admin"]), platform.admin(tokens["a-dev"])
    auditor, bureau = platform.admin(tokens["auditor"]), platform.admin(tokens["bureau"])
    assert (await a_admin.put(f"/orgs/{org_a}/guard-policy", json={"action": "log"})).status_code == 200
    assert (await a_admin.put(f"/orgs/{org_b}/guard-policy", json={"action": "off"})).status_code == 403
    assert (await a_dev.put(f"/orgs/{org_a}/guard-policy", json={"action": "off"})).status_code == 403
    assert (await auditor.get("/guard/events")).status_code == 200
    assert (await a_admin.get("/guard/events", params={"org": org_b})).status_code == 403
    assert (await bureau.get("/guard/events")).status_code == 403
    # Both organizations send a phone number (logged: the policy's default action), and an
    # organization admin asking for all events gets its own organization's only.
    ids = {org: get_org(platform.db, org).id for org in (org_a, org_b)}
    for org in (org_a, org_b):
        topup(platform.db, org, parse_cny("1"))
        async with platform.sdk(create_key(platform.db, org).key) as client:
            await client.chat.completions.create(
                model="echo-model", messages=[{"role": "user", "content": PROMPT}]
            )
    await asyncio.sleep(0.5)
    everyone = (await auditor.get("/guard/events")).json()
    own = (await a_admin.get("/guard/events")).json()
    assert {event["org_id"] for event in own} == {ids[org_a]}
    assert {ids[org_a], ids[org_b]} <= {event["org_id"] for event in everyone}
