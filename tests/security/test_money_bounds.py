"""A tenant cannot spend money it does not have by how it words a request."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest

from tests.billing.test_cli_money import run
from tests.security.conftest import Platform, bearer
from tests.support.platform import GatewayApp, RunningGateway, upstream_deployment


async def test_the_hold_covers_the_larger_of_max_tokens_and_max_completion_tokens(
    gateway_app: GatewayApp,
) -> None:
    # ¥0 per million prompt tokens, ¥1,000 per million output tokens: ¥0.001 a token.
    platform = await gateway_app([upstream_deployment("pricey-model", price=("0", "1000"))])
    org = platform.org(balance="0.01")
    messages = [{"role": "user", "content": "写一首很长的诗"}]
    async with platform.sdk(org.key) as sdk:
        # 8,192 output tokens may come back (¥8.192 at most); ¥0.01 cannot hold that.
        with pytest.raises(openai.APIStatusError) as refused:
            await sdk.chat.completions.create(
                model="pricey-model", messages=messages, max_completion_tokens=1, max_tokens=8192
            )
        assert refused.value.status_code == 402 and refused.value.code == "insufficient_quota"
        with pytest.raises(openai.APIStatusError) as reversed_order:
            await sdk.chat.completions.create(
                model="pricey-model", messages=messages, max_completion_tokens=8192, max_tokens=1
            )
        assert reversed_order.value.status_code == 402
        # Five tokens (¥0.005) fit: the call is served.
        answer = await sdk.chat.completions.create(
            model="pricey-model", messages=messages, max_completion_tokens=5, max_tokens=5
        )
        assert answer.choices[0].message.content is not None


def wallet(admin_api: httpx.Client, platform: Platform, org: str) -> dict[str, Any]:
    answer = admin_api.get(f"/orgs/{org}/wallet", headers=bearer(platform.operator))
    assert answer.status_code == 200
    return dict(answer.json())


def test_a_retried_top_up_credits_once(admin_api: httpx.Client, platform: Platform) -> None:
    org = platform.b.org
    before = Decimal(wallet(admin_api, platform, org)["balance"])
    headers = {**bearer(platform.operator), "Idempotency-Key": f"topup-{uuid.uuid4()}"}
    first = admin_api.post(f"/orgs/{org}/topups", json={"amount": "5.00"}, headers=headers)
    again = admin_api.post(f"/orgs/{org}/topups", json={"amount": "5.00"}, headers=headers)
    assert first.status_code == again.status_code == 201 and first.json() == again.json()
    assert Decimal(wallet(admin_api, platform, org)["balance"]) == before + 5
    # The same key for another amount is a mistake, not a retry.
    other = admin_api.post(f"/orgs/{org}/topups", json={"amount": "6.00"}, headers=headers)
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_key_reused"
    # Without a key, two top-ups are two top-ups.
    for _ in range(2):
        admin_api.post(f"/orgs/{org}/topups", json={"amount": "1.00"}, headers=bearer(platform.operator))
    assert Decimal(wallet(admin_api, platform, org)["balance"]) == before + 7


def test_a_retried_voucher_is_granted_once_through_the_api_and_the_cli(
    gateway: RunningGateway, admin_api: httpx.Client, platform: Platform
) -> None:
    org = platform.b.org
    body = {
        "issuer": "重试局",
        "program": "幂等",
        "amount": "3.00",
        "voucher_share": "0.5",
        "valid_from": "2026-01-01T00:00:00+08:00",
        "valid_to": "2030-12-31T00:00:00+08:00",
    }
    headers = {**bearer(platform.operator), "Idempotency-Key": "voucher-1"}
    first = admin_api.post(f"/orgs/{org}/vouchers", json=body, headers=headers)
    again = admin_api.post(f"/orgs/{org}/vouchers", json=body, headers=headers)
    assert first.status_code == again.status_code == 201 and first.json()["id"] == again.json()["id"]
    args = ["issue-voucher", "--org", org, "--issuer", "重试局", "--program", "命令行", "--amount", "2"]
    args += ["--voucher-share", "0.5", "--valid-from", "2026-01-01", "--valid-to", "2030-12-31"]
    ids = {run(gateway, *args, "--idempotency-key", "cli-1").stdout for _ in range(2)}
    assert len(ids) == 1
    programs = [v["program"] for v in wallet(admin_api, platform, org)["vouchers"]]
    assert programs.count("幂等") == 1 and programs.count("命令行") == 1
