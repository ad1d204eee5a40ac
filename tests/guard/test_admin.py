# ruff: noqa: F811  (the tokens fixture is imported by name)
"""Guard policies and events through the admin CLI and the admin API, with roles."""

from __future__ import annotations

import json
import time
from typing import Any

import openai
import pytest

from dizuo.accounts import create_key, get_org
from dizuo.billing import parse_cny
from dizuo.billing.service import topup
from dizuo.store import Database
from tests.billing.test_cli_money import run
from tests.conftest import RunningGateway
from tests.test_admin_api import api, tokens  # noqa: F401  (the fixture)

PROMPT = "请联系 13800138000"


def test_policy_and_events_through_the_cli(gateway: RunningGateway, tokens: dict[str, Any]) -> None:
    org = tokens["org_b"]
    shown = json.loads(
        run(gateway, "guard-policy", "--org", org, "--action", "block", "--types", "CN_MOBILE").stdout
    )
    assert shown["action"] == "block" and shown["types"] == ["CN_MOBILE"] and shown["redact"] == "mask"
    db = Database(gateway.settings.resolved_database_url)
    topup(db, org, parse_cny("1"))
    key = create_key(db, org).key
    db.dispose()
    with (
        openai.OpenAI(base_url=gateway.v1, api_key=key, max_retries=0) as client,
        pytest.raises(openai.BadRequestError),
    ):
        client.chat.completions.create(model="echo-model", messages=[{"role": "user", "content": PROMPT}])
    deadline = time.monotonic() + 3
    while True:
        events = json.loads(run(gateway, "guard-events", "--org", org, "--json").stdout)
        if events or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert [(e["direction"], e["action"], e["counts"]) for e in events] == [
        ("prompt", "block", {"CN_MOBILE": 1})
    ]
    assert "13800138000" not in json.dumps(events)
    readable = run(gateway, "guard-events", "--org", org).stdout
    assert "CN_MOBILE×1" in readable and "block" in readable
    cleared = run(gateway, "guard-policy", "--org", org, "--clear")
    assert cleared.stdout.strip() == "null"


def test_bad_policies_are_refused_clearly(gateway: RunningGateway, tokens: dict[str, Any]) -> None:
    org = tokens["org_a"]
    bad = run(gateway, "guard-policy", "--org", org, "--action", "log", "--pattern", "([", check=False)
    assert bad.returncode == 2 and "regular expression" in bad.stderr
    missing = run(gateway, "guard-policy", "--org", org, check=False)
    assert missing.returncode == 2 and "--action" in missing.stderr
    response = api(gateway, tokens["admin"], "PUT", f"/orgs/{org}/guard-policy", json={"action": "shout"})
    assert response.status_code == 400 and response.json()["error"]["param"] == "policy"


def test_roles_on_guard_routes(gateway: RunningGateway, tokens: dict[str, Any]) -> None:
    org_a, org_b = tokens["org_a"], tokens["org_b"]
    assert (
        api(
            gateway, tokens["a-admin"], "PUT", f"/orgs/{org_a}/guard-policy", json={"action": "log"}
        ).status_code
        == 200
    )
    assert (
        api(
            gateway, tokens["a-admin"], "PUT", f"/orgs/{org_b}/guard-policy", json={"action": "off"}
        ).status_code
        == 403
    )
    assert (
        api(
            gateway, tokens["a-dev"], "PUT", f"/orgs/{org_a}/guard-policy", json={"action": "off"}
        ).status_code
        == 403
    )
    assert api(gateway, tokens["auditor"], "GET", "/guard/events").status_code == 200
    assert api(gateway, tokens["a-admin"], "GET", "/guard/events", params={"org": org_b}).status_code == 403
    assert api(gateway, tokens["bureau"], "GET", "/guard/events").status_code == 403
    # An organization admin asking for all events gets its own organization's only.
    db = Database(gateway.settings.resolved_database_url)
    id_a = get_org(db, org_a).id
    topup(db, org_a, parse_cny("1"))
    key = create_key(db, org_a).key
    db.dispose()
    with openai.OpenAI(base_url=gateway.v1, api_key=key, max_retries=0) as client:
        client.chat.completions.create(model="echo-model", messages=[{"role": "user", "content": PROMPT}])
    time.sleep(0.5)
    everyone = api(gateway, tokens["auditor"], "GET", "/guard/events").json()
    own = api(gateway, tokens["a-admin"], "GET", "/guard/events").json()
    assert {event["org_id"] for event in own} == {id_a}
    assert len({event["org_id"] for event in everyone}) > 1
