"""Service filings (备案): an organization that offers generated content to the public reaches filed
deployments only, never falling back to an unfiled one; everyone sees which models are filed."""

from __future__ import annotations

import openai
import pytest

from dizuo.accounts.service import change_org
from dizuo.compliance.audit import records
from tests.support.platform import GatewayApp, upstream_deployment

FILING = {"number": "Chongqing-Qwen-202501010001", "body": "重庆市互联网信息办公室"}
HELLO = [{"role": "user", "content": "你好"}]


async def test_a_public_organization_reaches_filed_deployments_only(gateway_app: GatewayApp) -> None:
    platform = await gateway_app(
        deployments=[
            upstream_deployment("filed-model", name="filed-1", filing=FILING),
            upstream_deployment("unfiled-model", name="unfiled-1"),
            upstream_deployment("mixed-model", name="mixed-filed", filing=FILING),
            upstream_deployment("mixed-model", name="mixed-unfiled", weight=5),
        ]
    )
    public = platform.org(balance="1")
    change_org(platform.db, public.name, serves_public=True)
    private = platform.org(balance="1")

    async with platform.sdk(public.key) as client:
        await client.chat.completions.create(model="filed-model", messages=HELLO)
        for _ in range(6):  # the unfiled deployment has five times the weight: never chosen
            await client.chat.completions.create(model="mixed-model", messages=HELLO)
        with pytest.raises(openai.PermissionDeniedError) as refused:
            await client.chat.completions.create(model="unfiled-model", messages=HELLO)
        listed = {model.id: model.model_extra["dizuo"] for model in (await client.models.list()).data}
    assert refused.value.code == "model_not_filed"
    assert "unfiled-model" in str(refused.value.message) and "备案" in str(refused.value.message)
    assert {record.deployment for record in platform.records(public)} == {"filed-1", "mixed-filed"}
    assert listed["filed-model"]["filings"] == [FILING]
    assert listed["unfiled-model"]["filings"] == []
    assert {d["name"]: d["filing"] for d in listed["mixed-model"]["deployments"]} == {
        "mixed-filed": FILING,
        "mixed-unfiled": None,
    }

    async with platform.sdk(private.key) as client:  # an organization for its own use: any deployment
        answer = await client.chat.completions.create(model="unfiled-model", messages=HELLO)
    assert answer.choices[0].message.content


async def test_an_operator_marks_an_organization_public_and_the_trail_says_who(
    gateway_app: GatewayApp,
) -> None:
    platform = await gateway_app(deployments=[upstream_deployment("unfiled-model")])
    org = platform.org(balance="1")
    async with platform.sdk(org.key) as client:
        await client.chat.completions.create(model="unfiled-model", messages=HELLO)
    changed = await platform.http().patch(f"/admin/v1/orgs/{org.name}", json={"serves_public": True})
    assert changed.status_code == 401  # no admin token: nothing changes
    change_org(platform.db, org.name, serves_public=True)
    # Workers reload the organization's keys within a refresh period.
    platform.platform.gateway.keys.reload()
    async with platform.sdk(org.key) as client:
        with pytest.raises(openai.PermissionDeniedError):
            await client.chat.completions.create(model="unfiled-model", messages=HELLO)
    last = list(records(platform.db))[-1]
    assert (last["actor"], last["action"], last["target"], last["detail"]) == (
        "cli",
        "org.update",
        org.name,
        {"serves_public": True},
    )
