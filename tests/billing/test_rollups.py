"""The hourly rollups: written with the records they sum, so they always agree; rebuilt and verified
from the records by command; read by the console's overview.

Money is in micro-yuan (¥1 = 1,000,000). The fake upstream's echo reports 7 prompt and 3 completion
tokens; at ¥1.5/M in and ¥2/M out a call costs 10.5 + 6 = 16.5 -> 17 µ¥.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import sqlite3
import uuid
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import openai
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import select, update

from dizuo.billing import parse_cny, rollups
from dizuo.billing.activity import activity, window
from dizuo.billing.service import VoucherTerms, issue_voucher
from dizuo.billing.tables import LATENCY_COLUMNS, LATENCY_EDGES, FailedCall, usage_hourly
from dizuo.store import Database
from dizuo.store.db import MIGRATIONS
from tests.support.cli import dizuo
from tests.support.platform import GatewayApp, PlatformUnderTest, Tenant, upstream_deployment
from tests.support.upstream import FakeUpstream

SHANGHAI = ZoneInfo("Asia/Shanghai")
ASK = [{"role": "user", "content": "汇总"}]


async def _failed_calls_landed(platform: PlatformUnderTest, org: Tenant, count: int) -> None:
    """Failed calls are written in the background, a fraction of a second late."""
    for _ in range(100):
        with platform.db.session() as session:
            if len(session.scalars(select(FailedCall.id).where(FailedCall.org_id == org.id)).all()) >= count:
                return
        await asyncio.sleep(0.05)
    raise AssertionError("the failed calls were not written")


async def _busy_org(gateway_app: GatewayApp, upstream: FakeUpstream) -> tuple[PlatformUnderTest, Tenant]:
    """An organization that made answered calls (one paid partly by a voucher, one charged by
    estimate), and failed ones."""
    scripted = f"ctl-{uuid.uuid4().hex[:8]}"
    platform = await gateway_app(
        [
            upstream_deployment("echo-model", name="echo-r", price=("1.5", "2")),
            upstream_deployment("pricey-model", name="pricey-r", price=("0", "1000")),
            upstream_deployment("broken-model", "fail500", name="broken-r"),
            upstream_deployment("guess-model", scripted, name="guess-r", price=("1.5", "2")),
        ]
    )
    org = platform.org(balance="1")
    now = dt.datetime.now(dt.UTC)
    terms = VoucherTerms(
        "重庆市大数据局",
        "2026 算力券",
        parse_cny("5"),
        Decimal("0.3"),
        now - dt.timedelta(days=1),
        now + dt.timedelta(days=30),
        models=["pricey-model"],
    )
    issue_voucher(platform.db, org.name, terms)
    await asyncio.sleep(2 * platform.platform.gateway.meter.journal.refresh_seconds + 0.2)
    async with platform.sdk(org.key) as client:
        for _ in range(2):
            await client.chat.completions.create(model="echo-model", messages=ASK)
        async for _ in await client.chat.completions.create(model="echo-model", messages=ASK, stream=True):
            pass
        await client.chat.completions.create(model="pricey-model", messages=ASK, max_tokens=3)
        with pytest.raises(openai.APIStatusError):
            await client.chat.completions.create(model="broken-model", messages=ASK)
        with pytest.raises(openai.NotFoundError):
            await client.chat.completions.create(model="no-such-model", messages=ASK)
        with upstream.scripted(usages={scripted: {"prompt_tokens": -5, "completion_tokens": 3}}):
            await client.chat.completions.create(model="guess-model", messages=ASK)
    await _failed_calls_landed(platform, org, 2)
    return platform, org


async def test_the_overview_and_statement_rows_say_what_the_records_say(
    gateway_app: GatewayApp, upstream: FakeUpstream
) -> None:
    platform, org = await _busy_org(gateway_app, upstream)
    records = platform.records(org)
    assert len(records) == 5
    guessed = [r for r in records if r.model == "guess-model"]
    assert [r.status for r in guessed] == ["estimated"]
    since, until, bucket = window(1, SHANGHAI)
    totals = activity(platform.db, org_id=org.id, since=since, until=until, bucket=bucket, zone=SHANGHAI)[
        "totals"
    ]
    # 5 answered + 2 failed calls; the echo's three cost 17 each, the pricey one 3 output tokens at
    # ¥1000/M = 3000, of which the voucher paid 30 % = 900; the estimated one what its record says.
    assert (totals["calls"], totals["errors"]) == (7, 2)
    assert totals["tokens"] == sum(r.prompt_tokens + r.completion_tokens for r in records)
    assert parse_cny(totals["spend"]) == 3 * 17 + 3000 + guessed[0].cost == sum(r.cost for r in records)
    assert parse_cny(totals["voucher"]) == 900
    assert totals["latency_p50"] is not None
    with platform.db.session() as session:
        rows = session.execute(select(usage_hourly).where(usage_hourly.c.org_id == org.id)).mappings().all()
    by_model = {(row["model"], row["deployment"]): row for row in rows}
    echo = by_model[("echo-model", "echo-r")]
    assert (echo["calls"], echo["cost"], echo["own_part"], echo["failed"]) == (3, 51, 51, 0)
    pricey = by_model[("pricey-model", "pricey-r")]
    assert (pricey["calls"], pricey["cost"], pricey["voucher_part"], pricey["own_part"]) == (
        1,
        3000,
        900,
        2100,
    )
    # Failed calls name no deployment.
    assert by_model[("broken-model", "")]["failed"] == 1 and by_model[("no-such-model", "")]["failed"] == 1
    assert by_model[("guess-model", "guess-r")]["cost"] == guessed[0].cost
    assert rollups.verify(platform.db, org_id=org.id) == []


async def test_a_rebuild_writes_what_the_write_path_wrote(
    gateway_app: GatewayApp, upstream: FakeUpstream
) -> None:
    platform, org = await _busy_org(gateway_app, upstream)
    since = rollups.hour_of(platform.records(org)[0].created_at)

    def org_rows() -> list[dict[str, object]]:
        with platform.db.session() as session:
            query = (
                select(usage_hourly)
                .where(usage_hourly.c.org_id == org.id)
                .order_by(*usage_hourly.primary_key)
            )
            return [dict(row) for row in session.execute(query).mappings()]

    written = org_rows()
    assert len(written) == 5  # echo, pricey, guess, and the two failed calls' models
    rollups.rebuild(platform.db, since)
    assert org_rows() == written
    assert rollups.verify(platform.db, since) == []


async def test_verify_names_a_difference_and_rebuild_mends_it(
    gateway_app: GatewayApp, upstream: FakeUpstream
) -> None:
    platform, org = await _busy_org(gateway_app, upstream)
    with platform.db.session() as session:
        session.execute(
            update(usage_hourly)
            .where(usage_hourly.c.org_id == org.id, usage_hourly.c.model == "echo-model")
            .values(cost=usage_hourly.c.cost + 1)
        )
    env = {"DIZUO_DATABASE_URL": platform.db.url}
    found = dizuo("admin", "rollups", "verify", "--org", org.name, env=env)
    assert found.returncode == 1, found.stdout + found.stderr
    assert "usage_hourly" in found.stdout and org.id in found.stdout and "echo-model" in found.stdout
    assert "cost 52 ≠ 51" in found.stdout
    hour = rollups.hour_of(platform.records(org)[0].created_at).isoformat()
    rebuilt = dizuo("admin", "rollups", "rebuild", "--since", hour, env=env)
    assert rebuilt.returncode == 0, rebuilt.stderr
    again = dizuo("admin", "rollups", "verify", "--org", org.name, env=env)
    assert again.returncode == 0 and "一致" in again.stdout


def test_a_percentile_from_the_histogram_is_within_its_bucket() -> None:
    chance = random.Random(7)
    latencies = [int(chance.lognormvariate(5, 1.2)) for _ in range(5000)]
    histogram = [0] * (len(LATENCY_EDGES) + 1)
    for value in latencies:
        histogram[rollups.latency_bucket(value)] += 1
    ordered = sorted(latencies)
    for share in (0.5, 0.95, 0.99):
        exact = ordered[int(share * len(ordered))]
        index = rollups.latency_bucket(exact)
        low = LATENCY_EDGES[index - 1] if index else 0
        high = LATENCY_EDGES[min(index, len(LATENCY_EDGES) - 1)]
        estimate = rollups.percentile(histogram, share)
        assert estimate is not None and low <= estimate <= high, (share, exact, estimate)
    assert rollups.percentile([0] * len(histogram), 0.5) is None


def test_the_upgrade_fills_the_rollups_from_the_records_there_are(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    db = Database(url)
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0014")
    # Records as the journal wrote them before there were rollups: two hours, two keys, one cut call.
    stamps = ["2026-11-30 23:59:59.999999", "2026-12-01 00:00:00.000000", "2026-12-01 00:30:00.500000"]
    with sqlite3.connect(tmp_path / "old.db") as raw:
        for index, (stamp, key, latency, status) in enumerate(
            zip(stamps, ["k1", "k1", "k2"], [3, 700, 130_000], ["ok", "client_gone", "ok"], strict=True)
        ):
            raw.execute(
                "INSERT INTO usage_records (request_id, org_id, key_id, model, deployment, provider, region,"
                " endpoint, prompt_tokens, completion_tokens, cost, voucher_part, own_part, uncollected,"
                " latency_ms, data_class, stream, status, created_at)"
                " VALUES (?, 'o1', ?, 'm', 'd', 'p', 'r', 'chat', 7, 3, 17, 5, 12, 0, ?, '一般', 0, ?, ?)",
                (f"req-{index}", key, latency, status, stamp),
            )
        raw.execute(
            "INSERT INTO failed_calls (request_id, org_id, key_id, model, endpoint, status, code, latency_ms,"
            " created_at) VALUES ('req-f', 'o1', 'k1', NULL, 'chat', 404, 'model_not_found', 1, ?)",
            (stamps[1],),
        )
    db.upgrade()
    assert rollups.verify(db) == []
    figures = activity(
        db,
        org_id=None,
        since=dt.datetime(2026, 11, 30, 23, tzinfo=dt.UTC),
        until=dt.datetime(2026, 12, 1, 1, tzinfo=dt.UTC),
        bucket="hour",
        zone=ZoneInfo("UTC"),
    )
    assert figures["series"]["calls"] == [1, 3] and figures["series"]["errors"] == [0, 2]
    assert figures["totals"]["spend"] == "0.000051"
    db.dispose()


def test_an_hour_of_usage_and_of_activity_share_their_first_sums() -> None:
    """The write path adds a record's calls, errors, tokens and money to both tables in one pass:
    their first sums must be the same columns, in the same order."""
    assert rollups.USAGE_SUMS[: len(rollups.ACTIVITY_BASE)] == rollups.ACTIVITY_BASE
    assert rollups.ACTIVITY_SUMS[len(rollups.ACTIVITY_BASE) :] == LATENCY_COLUMNS
