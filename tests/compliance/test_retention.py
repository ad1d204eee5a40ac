"""Retention: the records that are not money are removed once they outlive their days, exactly those,
and nothing of the ledger, the usage records or the sums the console shows goes with them."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid

import pytest
from sqlalchemy import func, insert, select, text

from dizuo.accounts import create_org
from dizuo.billing import rollups
from dizuo.billing.tables import FailedCall, LedgerEntry, UsageRecord, usage_hourly
from dizuo.compliance.audit import records
from dizuo.compliance.retention import Housekeeper, kept, make_months
from dizuo.guard.tables import GuardEvent
from dizuo.settings import Settings
from dizuo.store import Database, partitions, utc, utcnow
from dizuo.store.pruning import Prune
from tests.support.cli import dizuo

DAY = dt.timedelta(days=1)


def _usage(org_id: str, moment: dt.datetime) -> tuple[dict[str, object], list[dict[str, object]]]:
    """A call's usage record and its balanced charge, as the journal writes them."""
    request = f"req_{uuid.uuid4().hex}"
    record = {
        "request_id": request,
        "org_id": org_id,
        "key_id": "k1",
        "model": "qwen-plus",
        "deployment": "qwen-1",
        "provider": "qwen",
        "region": "cq",
        "endpoint": "chat",
        "prompt_tokens": 20,
        "completion_tokens": 5,
        "cost": 70,
        "voucher_part": 0,
        "own_part": 70,
        "uncollected": 0,
        "latency_ms": 120,
        "data_class": "general",
        "stream": False,
        "status": "ok",
        "created_at": moment,
    }
    tx = f"tx_{uuid.uuid4().hex}"
    legs = [
        dict(
            tx_id=tx,
            kind="charge",
            account=account,
            amount=amount,
            org_id=org_id,
            request_id=request,
            created_at=moment,
        )
        for account, amount in ((f"org:{org_id}:cash", -70), ("revenue:qwen", 70))
    ]
    return record, legs


def _history(db: Database, now: dt.datetime) -> dict[str, list[dt.datetime]]:
    """Failed calls and guard events on both sides of a 365-day cutoff, and calls (records and
    legs) older than any retention."""
    org = create_org(db, f"retention-{uuid.uuid4().hex[:6]}")
    cutoff = now - 365 * DAY
    moments = {
        "expired": [now - 800 * DAY, now - 400 * DAY, now - 370 * DAY, cutoff - dt.timedelta(seconds=1)],
        "kept": [cutoff + dt.timedelta(minutes=10), now - 200 * DAY, now - DAY],
    }
    every = moments["expired"] + moments["kept"]
    with db.engine.begin() as connection:
        for index, moment in enumerate(every):
            failed = dict(request_id=f"failed-{index}", org_id=org.id, key_id="k1", model="qwen-plus")
            failed |= dict(endpoint="chat", status=429, code="rate_limited", latency_ms=3, created_at=moment)
            connection.execute(insert(FailedCall).values(failed))
            event = dict(created_at=moment, org_id=org.id, direction="prompt", action="redact")
            connection.execute(insert(GuardEvent).values(event | {"counts": {"CN_MOBILE": 1}}))
            record, legs = _usage(org.id, moment)
            connection.execute(insert(UsageRecord).values(record))
            connection.execute(insert(LedgerEntry), legs)
    return moments


def _count(db: Database, table: type[object]) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(table)) or 0)


def _failed_summed(db: Database) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.sum(usage_hourly.c.failed))) or 0)


def test_prune_removes_exactly_what_has_expired_and_never_money(empty_database_url: str) -> None:
    db = Database(empty_database_url)
    db.upgrade()
    now = utcnow()
    moments = _history(db, now)
    rollups.rebuild(db)
    failed_sums = _failed_summed(db)
    env = {"DIZUO_DATABASE_URL": empty_database_url}

    dry = dizuo("admin", "prune", "--dry-run", "--json", env=env)
    assert dry.returncode == 0, dry.stderr
    # The audit trail is kept three years: nothing of it has expired.
    assert [entry["rows"] for entry in json.loads(dry.stdout)["pruned"]] == [4, 4, 0]
    assert _count(db, FailedCall) == _count(db, GuardEvent) == 7  # a dry run removes nothing

    done = dizuo("admin", "prune", "--json", env=env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert [(entry["table"], entry["rows"]) for entry in report["pruned"]] == [
        ("failed_calls", 4),
        ("guard_events", 4),
        ("audit_trail", 0),
    ]
    with db.session() as session:
        left = sorted(utc(moment) for moment in session.scalars(select(FailedCall.created_at)))
        assert left == moments["kept"]
        assert session.scalar(select(func.count()).select_from(GuardEvent)) == 3
        # Money and usage stay whole: every call's record and both of its legs, balanced.
        assert session.scalar(select(func.count()).select_from(UsageRecord)) == 7
        assert session.scalar(select(func.count()).select_from(LedgerEntry)) == 14
        assert session.scalar(select(func.sum(LedgerEntry.amount))) == 0
        recorded = session.execute(select(Prune.table_name, Prune.rows).order_by(Prune.id)).all()
        assert [tuple(row) for row in recorded] == [("failed_calls", 4), ("guard_events", 4)]
    # The job is in the audit trail, as the one who ran it.
    trail = [
        (row["actor"], row["action"], row["target"], row["detail"]["rows"]) for row in list(records(db))[-3:]
    ]
    assert trail == [
        ("cli", "retention.prune", "failed_calls", 4),
        ("cli", "retention.prune", "guard_events", 4),
        ("cli", "retention.prune", "audit_trail", 0),
    ]

    if not db.is_sqlite:
        # Whole months before the cutoff went as tables, not row by row.
        cutoff = now - 365 * DAY
        dropped = report["pruned"][0]["partitions_dropped"]
        whole = [m for m in moments["expired"] if partitions.next_month(partitions.month_of(m)) <= cutoff]
        expected = sorted({f"failed_calls_{moment:%Y_%m}" for moment in whole})
        assert sorted(dropped) == expected and expected

    # The hourly sums keep the failed calls that are gone; checking or rebuilding leaves those hours be.
    assert _failed_summed(db) == failed_sums == 7
    assert rollups.verify(db) == []
    rollups.rebuild(db)
    assert _failed_summed(db) == 7

    again = dizuo("admin", "prune", "--json", env=env)
    assert [entry["rows"] for entry in json.loads(again.stdout)["pruned"]] == [0, 0, 0]
    db.dispose()


def test_retention_shorter_than_six_months_is_refused(empty_database_url: str) -> None:
    result = dizuo(
        "admin",
        "prune",
        env={"DIZUO_DATABASE_URL": empty_database_url, "DIZUO_RETAIN_FAILED_CALLS_DAYS": "90"},
    )
    assert result.returncode == 2
    assert "DIZUO_RETAIN_FAILED_CALLS_DAYS" in result.stderr and "180" in result.stderr


async def test_the_server_runs_the_job_and_a_peer_that_just_ran_it_is_not_repeated(
    empty_database_url: str,
) -> None:
    db = Database(empty_database_url)
    db.upgrade()
    _history(db, utcnow())
    policy = kept(Settings(database_url=empty_database_url))
    first = Housekeeper(db, policy, lambda: b"k" * 32, first=0.01, every=3600)
    await first.start()
    for _ in range(200):  # both kinds done
        with db.session() as session:
            if session.scalar(select(func.count()).where(Prune.finished_at.is_not(None))) == 2:
                break
        await asyncio.sleep(0.05)
    await first.stop()
    assert _count(db, FailedCall) == 3 and _count(db, GuardEvent) == 3
    runs = _count(db, Prune)
    assert runs == 2
    # Another worker starting now finds the job done within the period and skips its turn.
    second = Housekeeper(db, policy, lambda: b"k" * 32, first=0.01, every=3600)
    await second.start()
    await asyncio.sleep(0.3)
    await second.stop()
    assert _count(db, Prune) == runs
    db.dispose()


@pytest.fixture
def postgresql_url(empty_database_url: str) -> str:
    if empty_database_url.startswith("sqlite"):
        pytest.skip("partitions are PostgreSQL's")
    return empty_database_url


def test_months_are_made_ahead_and_rows_outside_them_move_in_when_theirs_is_made(postgresql_url: str) -> None:
    db = Database(postgresql_url)
    db.upgrade()
    now = utcnow()
    with db.engine.connect() as connection:
        names = {p.name for p in partitions.partitions(connection, "usage_records")}
    month = partitions.month_of(now)
    for _ in range(partitions.AHEAD + 1):
        assert f"usage_records_{month:%Y_%m}" in names
        month = partitions.next_month(month)
    # A call stamped far ahead (a clock gone wrong) is kept in the default partition...
    org = create_org(db, "clock-skew")
    later = now + 1000 * DAY
    record, legs = _usage(org.id, later)
    with db.engine.begin() as connection:
        connection.execute(insert(UsageRecord).values(record))
        connection.execute(insert(LedgerEntry), legs)
        assert connection.execute(text("SELECT count(*) FROM usage_records_default")).scalar() == 1
    # A server starting makes the coming months but moves nothing (a loaded history could take
    # minutes): the row waits ...
    make_months(db, later - 1000 * DAY + 2 * DAY, move=False)
    with db.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM usage_records_default")).scalar() == 1
    # ... until the job makes its month, which takes it in; it reads the same from the table.
    made = dizuo("admin", "prune", "--json", env={"DIZUO_DATABASE_URL": postgresql_url})
    assert f"usage_records_{later:%Y_%m}" in json.loads(made.stdout)["partitions_made"]
    with db.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM usage_records_default")).scalar() == 0
        assert connection.execute(text("SELECT count(*) FROM ledger_entries_default")).scalar() == 0
        moved = f"usage_records_{later:%Y_%m}"
        assert connection.execute(text(f"SELECT request_id FROM {moved}")).scalar() == record["request_id"]
    with db.session() as session:
        assert (
            session.scalar(select(UsageRecord.cost).where(UsageRecord.request_id == record["request_id"]))
            == 70
        )
    db.dispose()
