"""Keys reach only what their scopes allow, and the knowledge-base and auditor routes count against
the key's limits like model calls do."""

from __future__ import annotations

import asyncio
import time
import uuid
from urllib.parse import quote

import httpx
import openai
import pytest

from dizuo.accounts import create_key
from dizuo.store import Database
from tests.security import bombs
from tests.security.conftest import Platform, bearer
from tests.security.test_parser_bombs import STANDARD
from tests.support.platform import GatewayApp, RunningGateway
from tests.support.shared import needs_shared


def key(gateway: RunningGateway, org: str, **options: object) -> str:
    db = Database(gateway.settings.resolved_database_url)
    try:
        made = create_key(db, org, **options)  # type: ignore[arg-type]
    finally:
        db.dispose()
    time.sleep(3 * gateway.settings.key_refresh_seconds)
    return made.key


def kbs(gateway: RunningGateway, token: str) -> httpx.Client:
    return httpx.Client(base_url=f"{gateway.v1}/knowledge-bases", headers=bearer(token), timeout=60)


def test_a_models_only_key_cannot_touch_its_organization_s_knowledge_bases(
    gateway: RunningGateway, platform: Platform
) -> None:
    name = f"制度-{uuid.uuid4().hex[:6]}"
    with kbs(gateway, platform.a.key) as owner:
        assert owner.post("", json={"name": name}).status_code == 201
    narrow = key(gateway, platform.a.org, scopes=["models"], models=["echo-model"])
    with kbs(gateway, narrow) as them:
        for method, path in [("GET", ""), ("GET", f"/{quote(name)}"), ("DELETE", f"/{quote(name)}")]:
            answer = them.request(method, path)
            assert answer.status_code == 403 and answer.json()["error"]["code"] == "scope_missing", path
            assert "kb:" in answer.json()["error"]["message"]
    with openai.OpenAI(base_url=gateway.v1, api_key=narrow, max_retries=0) as sdk:
        assert sdk.chat.completions.create(model="echo-model", messages=[{"role": "user", "content": "hi"}])
    with kbs(gateway, platform.a.key) as owner:
        assert owner.get(f"/{quote(name)}").status_code == 200  # still there
        owner.delete(f"/{quote(name)}")


def test_a_read_only_key_reads_but_does_not_write(gateway: RunningGateway, platform: Platform) -> None:
    reader = key(gateway, platform.a.org, scopes=["kb:read", "models"])
    with kbs(gateway, reader) as client:
        assert client.get("").status_code == 200
        refused = client.post("", json={"name": "不许建"})
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "scope_missing"
    with openai.OpenAI(base_url=gateway.v1, api_key=key(gateway, platform.a.org, scopes=["kb:read"])) as sdk:
        with pytest.raises(openai.PermissionDeniedError) as caught:
            sdk.chat.completions.create(model="echo-model", messages=[{"role": "user", "content": "hi"}])
        assert caught.value.code == "scope_missing"


def test_unknown_scopes_are_refused(platform: Platform, admin_api: httpx.Client) -> None:
    answer = admin_api.post(
        f"/orgs/{platform.a.org}/keys",
        json={"scopes": ["kb:read", "root"]},
        headers=bearer(platform.operator),
    )
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "scopes"
    made = admin_api.post(
        f"/orgs/{platform.a.org}/keys",
        json={"scopes": ["kb:write", "models"]},
        headers=bearer(platform.operator),
    )
    assert made.status_code == 201 and made.json()["scopes"] == ["models", "kb:write"]


def test_knowledge_base_routes_count_against_the_key_s_requests_per_minute(
    gateway: RunningGateway, platform: Platform
) -> None:
    limited = key(gateway, platform.a.org, limits=(3, None, None))
    with kbs(gateway, limited) as client:
        statuses = [client.get("").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


@needs_shared
async def test_the_auditor_holds_a_concurrency_slot(gateway_app: GatewayApp) -> None:
    # A key allowed one call at a time: while an audit of a slow document runs, a second is refused.
    # The document is read under a CPU limit of 2 s here (the platform's own setting), so the first
    # audit is cut there.
    platform = await gateway_app(kb_parse_cpu_seconds=2)
    single = platform.org(limits=(None, None, 1)).key
    files = {
        "report": ("报告.docx", bombs.docx_huge_xml(400_000)),
        "standard": (STANDARD.name, STANDARD.read_bytes()),
    }

    async def audit() -> int:
        answer = await platform.http(single).post("/v1/apps/inspection/audit", files=files, timeout=60)
        return answer.status_code

    async def second() -> int:
        await asyncio.sleep(0.5)  # the first one is being read by then
        return await audit()

    results = await asyncio.gather(audit(), second())
    assert sorted(results) == [413, 429]  # the slow one is cut at its CPU limit
