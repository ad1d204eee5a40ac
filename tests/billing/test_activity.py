"""The console's overview figures: answered and failed calls, tokens, spend and voucher use per bucket."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from zoneinfo import ZoneInfo

import openai
import pytest

from dizuo.accounts import create_key, create_org
from dizuo.accounts.service import set_guard_policy
from dizuo.billing import parse_cny
from dizuo.billing.activity import activity, window
from dizuo.billing.reports import usage_rows
from dizuo.billing.service import topup
from dizuo.store import Database
from tests.conftest import RunningGateway

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


def test_answered_and_failed_calls_are_charted(gateway: RunningGateway) -> None:
    db = Database(gateway.settings.resolved_database_url)
    name = f"chart-{uuid.uuid4().hex[:8]}"
    org = create_org(db, name)
    topup(db, name, parse_cny("5"))
    key = create_key(db, name).key
    tokens = 0
    with openai.OpenAI(base_url=gateway.v1, api_key=key, max_retries=0, timeout=30) as client:
        for text in ("你好", "第二个问题"):
            answer = client.chat.completions.create(
                model="echo-model", messages=[{"role": "user", "content": text}]
            )
            assert answer.usage is not None
            tokens += answer.usage.total_tokens
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
        with pytest.raises(openai.APIStatusError):
            client.chat.completions.create(model="fail-model", messages=[{"role": "user", "content": "x"}])

    since, until, bucket = window(1, SHANGHAI)
    deadline = time.monotonic() + 5
    while True:  # failed calls are written in the background, a fraction of a second late
        figures = activity(db, org_id=org.id, since=since, until=until, bucket=bucket, zone=SHANGHAI)
        if figures["totals"]["errors"] == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    spent = sum(parse_cny(row["cost"]) for row in usage_rows(db, name))
    assert spent > 0
    totals = figures["totals"]
    assert totals["calls"] == 4 and totals["errors"] == 2
    assert totals["tokens"] == tokens
    assert parse_cny(totals["spend"]) == spent
    assert totals["voucher"] == "0.000000"
    assert len(figures["labels"]) == 24
    assert sum(figures["series"]["calls"]) == 4 and sum(figures["series"]["errors"]) == 2
    assert any(value is not None for value in figures["series"]["latency_p50"][-2:])
    others = activity(
        db, org_id=create_org(db, name + "-b").id, since=since, until=until, bucket=bucket, zone=SHANGHAI
    )
    assert others["totals"]["calls"] == 0
    db.dispose()


def test_an_answer_the_guard_refuses_counts_once(gateway: RunningGateway) -> None:
    """It is charged (the upstream did the work) and refused: one usage record, no failed call."""
    db = Database(gateway.settings.resolved_database_url)
    name = f"chart-{uuid.uuid4().hex[:8]}"
    org = create_org(db, name)
    topup(db, name, parse_cny("5"))
    set_guard_policy(db, name, {"action": "block", "directions": ["answer"]})
    key = create_key(db, name).key
    client = openai.OpenAI(base_url=gateway.v1, api_key=key, max_retries=0, timeout=30)
    with client, pytest.raises(openai.BadRequestError):  # the echo carries the mobile number back
        client.chat.completions.create(
            model="echo-model", messages=[{"role": "user", "content": "回电 13800138000"}]
        )
    since, until, bucket = window(1, SHANGHAI)
    time.sleep(1)  # failed calls are written in the background: give a wrong one time to land
    totals = activity(db, org_id=org.id, since=since, until=until, bucket=bucket, zone=SHANGHAI)["totals"]
    assert (totals["calls"], totals["errors"]) == (1, 1)
    assert [row["status"] for row in usage_rows(db, name)] == ["blocked"]
    db.dispose()
