"""Reports over a long history: exports that stream whatever their size, and a voucher report that
adds up to the ledger to the micro-yuan."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import sqlite3
import subprocess
import sys
import uuid
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy import func, insert, select

from dizuo.accounts import create_org
from dizuo.billing import ledger, parse_cny
from dizuo.billing.reports import iter_usage_rows, stream, voucher_report
from dizuo.billing.service import VoucherTerms, issue_voucher, topup
from dizuo.billing.tables import LedgerEntry, UsageRecord, Voucher
from dizuo.store import Database
from tests.billing.records import usage_record
from tests.support.platform import GatewayApp, upstream_deployment

RECORDS = 200_000


# Runs a command and prints its own peak RSS: not forked from this test's process, whose size Linux
# would count in the command's peak (see the script).
PEAK = Path(__file__).resolve().parents[2] / "bench" / "peak_rss.py"


def _export_rss(url: str, org: str, out: Path) -> int:
    """Run ``dizuo admin usage --jsonl`` as a program; return its peak resident memory in bytes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIZUO_")}
    env["DIZUO_DATABASE_URL"] = url
    command = [sys.executable, "-m", "dizuo", "admin", "usage", "--org", org, "--jsonl"]
    with out.open("wb") as file:
        done = subprocess.run(
            [sys.executable, str(PEAK), *command], stdout=file, stderr=subprocess.PIPE, env=env, check=False
        )
    assert done.returncode == 0, done.stderr.decode()[-1000:]
    return int(done.stderr.decode().split()[-1]) * 1024


def test_an_export_of_200k_records_holds_a_page_not_the_export(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'history.db'}"
    db = Database(url)
    db.upgrade()
    big, small = create_org(db, "大户"), create_org(db, "小户")
    db.dispose()
    start = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    with sqlite3.connect(tmp_path / "history.db") as raw:
        raw.executemany(
            "INSERT INTO usage_records (request_id, org_id, key_id, model, deployment, provider, region, endpoint,"
            " prompt_tokens, completion_tokens, cost, voucher_part, own_part, uncollected, latency_ms, data_class,"
            " stream, status, created_at) VALUES (?, ?, 'k1', 'echo-model', 'echo-1', 'openai-compatible', 'cq',"
            " 'chat', 12, 3, 17, 5, 12, 0, 800, '一般', 0, 'ok', ?)",
            (
                (
                    f"req-{n:07d}",
                    big.id if n else small.id,
                    f"{start + dt.timedelta(seconds=n):%Y-%m-%d %H:%M:%S}.000000",
                )
                for n in range(RECORDS + 1)
            ),
        )
    alone = _export_rss(url, "小户", tmp_path / "small.jsonl")
    heavy = _export_rss(url, "大户", tmp_path / "big.jsonl")
    lines = 0
    with (tmp_path / "big.jsonl").open("rb") as file:
        while piece := file.read(1 << 20):
            lines += piece.count(b"\n")
        file.seek(-2000, os.SEEK_END)
        last = file.read().splitlines()[-1]
    assert lines == RECORDS
    assert orjson.loads(last)["request_id"] == f"req-{RECORDS:07d}"  # all of them, in time order
    # The export is about 87 MB of JSON (several times that as Python objects); the program holds a
    # page of rows at a time, whatever their number.
    assert (tmp_path / "big.jsonl").stat().st_size > 80_000_000
    assert heavy - alone < 40_000_000, f"{alone / 1e6:.0f} MB for one record, {heavy / 1e6:.0f} MB for 200k"
    assert heavy < 150_000_000  # the command whole (about 90 MB measured): no part of the export in memory


def test_every_format_streams_the_same_rows(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'small.db'}")
    db.upgrade()
    org = create_org(db, "小户")
    start = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    money = {"cost": 1_500_000, "voucher_part": 0, "own_part": 1_500_000, "uncollected": 0}
    with db.engine.begin() as connection:
        connection.execute(
            insert(UsageRecord),
            [
                usage_record(f"req-{n:05d}", org.id, **money, created_at=start + dt.timedelta(minutes=n))
                for n in range(4500)  # more than two pages
            ],
        )
    whole = b"".join(stream("json", iter_usage_rows(db, "小户")))
    rows = orjson.loads(whole)
    assert [row["request_id"] for row in rows] == [f"req-{n:05d}" for n in range(4500)]
    assert whole == orjson.dumps(rows) + b"\n"  # the same bytes as one document written at once
    lines = b"".join(stream("jsonl", iter_usage_rows(db, "小户"))).splitlines()
    assert [orjson.loads(line) for line in lines] == rows
    text = b"".join(stream("csv", iter_usage_rows(db, "小户"), lang="en")).decode("utf-8-sig").splitlines()
    assert text[0].startswith("Request ID,Time") and len(text) == 4501 and text[1].startswith("req-00000,")
    db.dispose()


async def test_the_voucher_report_adds_up_to_the_ledger(gateway_app: GatewayApp) -> None:
    platform = await gateway_app([upstream_deployment("pricey-model", price=("0", "1000"))])
    issuer = f"发放方-{uuid.uuid4().hex[:6]}"
    now = dt.datetime.now(dt.UTC)
    orgs = [platform.org(balance="1") for _ in range(2)]
    for org, share in zip(orgs, ("0.3", "0.5"), strict=True):
        for program in ("算力券 A", "算力券 B"):
            terms = VoucherTerms(
                issuer,
                program,
                parse_cny("1"),
                Decimal(share),
                now - dt.timedelta(days=1),
                now + dt.timedelta(days=9),
            )
            issue_voucher(platform.db, org.name, terms)
    await asyncio.sleep(2 * platform.platform.gateway.meter.journal.refresh_seconds + 0.2)
    for org in orgs:
        async with platform.sdk(org.key) as client:
            for tokens in (3, 7, 11):
                await client.chat.completions.create(
                    model="pricey-model", messages=[{"role": "user", "content": "x"}], max_tokens=tokens
                )
    month = now.astimezone(dt.timezone(dt.timedelta(hours=8))).strftime("%Y-%m")
    rows = voucher_report(platform.db, issuer, month)
    with platform.db.session() as session:
        ids = list(session.scalars(select(Voucher.id).where(Voucher.issuer == issuer)))
        paid = session.scalar(
            select(-func.sum(LedgerEntry.amount)).where(
                LedgerEntry.account.in_([ledger.voucher(i) for i in ids]), LedgerEntry.kind == "charge"
            )
        )
        records = session.scalar(
            select(func.sum(UsageRecord.voucher_part)).where(UsageRecord.org_id.in_([o.id for o in orgs]))
        )
    assert paid and paid == records
    assert sum(parse_cny(row["voucher_paid"]) for row in rows) == paid
    assert {row["organization"] for row in rows} == {org.name for org in orgs}
    assert all(row["provider"] == "openai-compatible" for row in rows)
    # 3 calls of each organization, each paid by one voucher (or two, when the first ran short).
    assert sum(row["calls"] for row in rows) >= 6
    # A zone whose months do not start on a UTC hour reads the ledger itself: the same report.
    kolkata = ZoneInfo("Asia/Kolkata")
    assert voucher_report(platform.db, issuer, now.astimezone(kolkata).strftime("%Y-%m"), kolkata) == [
        row | {"month": now.astimezone(kolkata).strftime("%Y-%m")} for row in rows
    ]


def test_an_unknown_issuer_and_a_month_without_charges_have_empty_reports(database_url: str) -> None:
    db = Database(database_url)
    db.upgrade()
    assert voucher_report(db, f"nobody-{uuid.uuid4().hex[:6]}", "2026-11") == []
    name = f"quiet-{uuid.uuid4().hex[:6]}"
    create_org(db, name)
    topup(db, name, parse_cny("1"))
    issuer = f"发放方-{uuid.uuid4().hex[:6]}"
    now = dt.datetime.now(dt.UTC)
    terms = VoucherTerms(issuer, "空", parse_cny("1"), Decimal("0.5"), now, now + dt.timedelta(days=1))
    issue_voucher(db, name, terms)
    assert voucher_report(db, issuer, "2020-01") == []
    db.dispose()
