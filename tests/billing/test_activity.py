"""The console's overview figures: answered and failed calls, tokens, spend and voucher use per bucket."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import openai
import pytest

from dizuo.accounts.service import set_guard_policy
from dizuo.billing import parse_cny
from dizuo.billing.activity import activity, window
from tests.support.platform import GatewayApp, PlatformUnderTest, Tenant, upstream_deployment

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_a_day_is_charted_by_the_hour_and_a_week_by_the_day() -> None:
    now = dt.datetime(2026, 11, 23, 15, 40, tzinfo=dt.UTC)  # 23:40 in Shanghai
    since, until, bucket = window(1, SHANGHAI, now)
    assert bucket == "hour"
    assert until == dt.datetime(2026, 11, 24, 0, 0, tzinfo=SHANGHAI)
    assert until - since == dt.timedelta(hours=24)
    since, until, bucket = window(7, SHANGHAI, now)
    assert bucket == "day"
    assert (since, until) == (
        dt.datetime(2026, 11, 17, tzinfo=SHANGHAI),
        dt.datetime(2026, 11, 24, tzinfo=SHANGHAI),
    )


async def _charted(platform: PlatformUnderTest, org: Tenant, errors: int) -> dict[str, Any]:
    """The organization's last day, once its failed calls (written in the background, a fraction of a
    second late) are in."""
    since, until, bucket = window(1, SHANGHAI)
    for _ in range(50):
        figures = activity(platform.db, org_id=org.id, since=since, until=until, bucket=bucket, zone=SHANGHAI)
        if figures["totals"]["errors"] >= errors:
            break
        await asyncio.sleep(0.1)
    return figures


async def test_answered_and_failed_calls_are_charted(gateway_app: GatewayApp) -> None:
    platform = await gateway_app(
        [upstream_deployment("echo-model", price=("1.5", "2")), upstream_deployment("fail-model", "fail500")]
    )
    org = platform.org(balance="5")
    tokens = 0
    async with platform.sdk(org.key) as client:
        for text in ("你好", "第二个问题"):
            answer = await client.chat.completions.create(
                model="echo-model", messages=[{"role": "user", "content": text}]
            )
            assert answer.usage is not None
            tokens += answer.usage.total_tokens
        with pytest.raises(openai.NotFoundError):
            await client.chat.completions.create(
                model="no-such-model", messages=[{"role": "user", "content": "x"}]
            )
        with pytest.raises(openai.APIStatusError):
            await client.chat.completions.create(
                model="fail-model", messages=[{"role": "user", "content": "x"}]
            )
    figures = await _charted(platform, org, 2)
    spent = sum(record.cost for record in platform.records(org))
    assert spent > 0
    totals = figures["totals"]
    assert totals["calls"] == 4 and totals["errors"] == 2
    assert totals["tokens"] == tokens
    assert parse_cny(totals["spend"]) == spent
    assert totals["voucher"] == "0.000000"
    assert len(figures["labels"]) == 24
    assert sum(figures["series"]["calls"]) == 4 and sum(figures["series"]["errors"]) == 2
    assert any(value is not None for value in figures["series"]["latency_p50"][-2:])
    other = platform.org()
    assert (await _charted(platform, other, 0))["totals"]["calls"] == 0


async def test_an_answer_the_guard_refuses_counts_once(gateway_app: GatewayApp) -> None:
    """It is charged (the upstream did the work) and refused: one usage record, no failed call."""
    platform = await gateway_app([upstream_deployment("echo-model", price=("1.5", "2"))])
    org = platform.org(balance="5")
    set_guard_policy(platform.db, org.name, {"action": "block", "directions": ["answer"]})
    platform.platform.gateway.keys.reload()  # the policy reaches the gateway with the next key reload
    async with platform.sdk(org.key) as client:
        with pytest.raises(openai.BadRequestError):  # the echo carries the mobile number back
            await client.chat.completions.create(
                model="echo-model", messages=[{"role": "user", "content": "回电 13800138000"}]
            )
    await asyncio.sleep(1)  # failed calls are written in the background: give a wrong one time to land
    totals = (await _charted(platform, org, 0))["totals"]
    assert (totals["calls"], totals["errors"]) == (1, 1)
    assert [record.status for record in platform.records(org)] == ["blocked"]
