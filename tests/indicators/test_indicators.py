"""The monitoring indicators of a month, from a seeded month of usage: the figures the command, the
admin API and the module give match the same figures computed by plain SQL over the usage records,
agent steps and compute jobs (the indicators read the hourly rollups, rebuilt here by the platform's
own code from the records)."""

from __future__ import annotations

import datetime as dt
import io
import json
import random
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from sqlalchemy import text

from dizuo.accounts import create_org
from dizuo.agents.tables import AgentStep
from dizuo.billing import rollups
from dizuo.billing.money import format_cny
from dizuo.billing.tables import UsageRecord, Voucher, voucher_hourly
from dizuo.compute.tables import ComputeJob
from dizuo.errors import DizuoError
from dizuo.indicators import monthly, series, snapshot, take_due
from dizuo.scenarios.service import STAGES
from dizuo.store import Database
from tests.support.cli import dizuo
from tests.support.platform import GatewayApp
from tests.support.platform import admin_api as api

ZONE = ZoneInfo("Asia/Shanghai")
MONTH = "2026-11"
START = dt.datetime(2026, 11, 1, tzinfo=ZONE)  # the month in the platform's zone
END = dt.datetime(2026, 12, 1, tzinfo=ZONE)


@pytest.fixture
def db(empty_database_url: str) -> Iterator[Database]:
    database = Database(empty_database_url)
    database.upgrade()
    yield database
    database.dispose()


def seed(db: Database) -> dict[str, str]:
    """Four organizations of the month (and one registered after it), a month of calls with some
    just outside it, agent calls, compute jobs."""
    chance = random.Random(11)
    orgs = {
        "船机": create_org(db, "船机", industry="制造业", district="两江新区", size="small").id,
        "电子": create_org(db, "电子", industry="信息技术", district="渝北区", size="medium").id,
        "纺织": create_org(db, "纺织", industry="制造业", district="渝北区").id,
        "静默": create_org(db, "静默", industry="农业", district="涪陵区").id,
    }
    late = create_org(db, "后来者", industry="制造业").id
    with db.session() as session:  # registered before the month, and one after it
        moved = "UPDATE organizations SET created_at = :at WHERE id = :id"
        for org_id in orgs.values():
            session.execute(
                text(moved), {"at": (START - dt.timedelta(days=10)).astimezone(dt.UTC), "id": org_id}
            )
        session.execute(text(moved), {"at": (END + dt.timedelta(days=2)).astimezone(dt.UTC), "id": late})
    with db.session() as session:
        for n in range(600):
            org = chance.choice(["船机", "电子", "电子", "纺织"])
            # Mostly inside the month; some in the hours on either side of its edges.
            at = START + dt.timedelta(seconds=chance.randrange(-6 * 3600, 30 * 86400 + 6 * 3600))
            compute = n % 50 == 0
            cost = chance.randrange(1, 5000)
            voucher = cost // 3 if org == "电子" else 0
            session.add(
                UsageRecord(
                    request_id=f"req-{n}", org_id=orgs[org], key_id="k", model="compute:script" if compute else "m",
                    deployment="d", provider="compute" if compute else "openai-compatible", region="cq",
                    endpoint="compute.jobs" if compute else "chat", prompt_tokens=0 if compute else chance.randrange(1, 900),
                    completion_tokens=0 if compute else chance.randrange(1, 300), cost=cost, voucher_part=voucher,
                    own_part=cost - voucher, uncollected=0, latency_ms=10, data_class="general", stream=False,
                    status="ok", created_at=at.astimezone(dt.UTC),
                )
            )  # fmt: skip
        for n, (org, day) in enumerate(
            (("船机", 3), ("船机", 4), ("纺织", 31))
        ):  # 纺织's call is in December
            session.add(
                AgentStep(
                    request_id=f"agent-{n}", step=0, agent_id=f"agt_{n % 2}", version=1, org_id=orgs[org], key_id="k",
                    kind="model", name="m", ms=5, ok=True, created_at=(START + dt.timedelta(days=day - 1)).astimezone(dt.UTC),
                )
            )  # fmt: skip
        jobs = [
            ("船机", 2.5, 2, START + dt.timedelta(days=10)),
            ("电子", 1.0, 0, START + dt.timedelta(days=20)),
            ("电子", 3.0, 8, END + dt.timedelta(hours=1)),
        ]
        for n, (org, hours, accelerators, ended) in enumerate(jobs):
            session.add(
                ComputeJob(
                    id=f"job-{n}", org_id=orgs[org], key_id="k", kind="script", entrypoint="python x.py",
                    spec={"accelerators": accelerators}, data_class="general", state="succeeded", considered=[],
                    blocked=[], held_vouchers=[], started_at=(ended - dt.timedelta(hours=hours)).astimezone(dt.UTC),
                    ended_at=ended.astimezone(dt.UTC),
                )
            )  # fmt: skip
    rollups.rebuild(db)
    return orgs


def plain(db: Database, sql: str, **params: object) -> list[tuple[object, ...]]:
    with db.session() as session:
        return [tuple(row) for row in session.execute(text(sql), {"start": START.astimezone(dt.UTC), "end": END.astimezone(dt.UTC), **params})]  # fmt: skip


def test_the_months_indicators_are_what_plain_sql_over_the_records_says(db: Database) -> None:
    orgs = seed(db)
    document = monthly(db, MONTH, ZONE)
    in_month = "created_at >= :start AND created_at < :end"

    calls, tokens = plain(db, f"SELECT COUNT(*), SUM(prompt_tokens + completion_tokens) FROM usage_records WHERE {in_month} AND endpoint != 'compute.jobs'")[0]  # fmt: skip
    spend, vouchers = plain(db, f"SELECT SUM(cost), SUM(voucher_part) FROM usage_records WHERE {in_month}")[0]
    active = {row[0] for row in plain(db, f"SELECT DISTINCT org_id FROM usage_records WHERE {in_month} UNION SELECT DISTINCT org_id FROM agent_steps WHERE {in_month}")}  # fmt: skip
    using = {row[0] for row in plain(db, f"SELECT DISTINCT org_id FROM agent_steps WHERE {in_month}")}
    assert (
        document["organizations"]
        == {"registered": 4, "active": len(active)}
        == {"registered": 4, "active": 3}
    )
    assert document["usage"]["calls"] == calls and document["usage"]["tokens"] == tokens
    assert document["usage"]["spend"] == format_cny(int(str(spend)))
    assert document["usage"]["voucher_paid"] == format_cny(int(str(vouchers)))
    # 2.5 h on 2 accelerators and 1 h on none ended in the month; the 3 h job ended in December.
    assert document["usage"]["compute_hours"] == 3.5 and document["usage"]["accelerator_hours"] == 5.0
    assert document["agent_adoption"] == {
        "using": len(using), "organizations": 4, "share": 0.25, "active_agents": 2, "target": 0.7,
    }  # fmt: skip

    by_industry = {row["name"]: row for row in document["by_industry"]}
    assert set(by_industry) == {"制造业", "信息技术", "农业"}
    for industry, row in by_industry.items():
        members = tuple(orgs[name] for name, org_industry in (("船机", "制造业"), ("电子", "信息技术"), ("纺织", "制造业"), ("静默", "农业")) if org_industry == industry)  # fmt: skip
        marks = ", ".join(f":o{n}" for n in range(len(members)))
        named = {f"o{n}": org for n, org in enumerate(members)}
        count, cost = plain(db, f"SELECT COUNT(*), COALESCE(SUM(cost), 0) FROM usage_records WHERE {in_month} AND endpoint != 'compute.jobs' AND org_id IN ({marks})", **named)[0]  # fmt: skip
        all_cost = plain(db, f"SELECT COALESCE(SUM(cost), 0) FROM usage_records WHERE {in_month} AND org_id IN ({marks})", **named)[0][0]  # fmt: skip
        assert row["registered"] == len(members) and row["calls"] == count, industry
        assert row["spend"] == format_cny(int(str(all_cost))), industry
        del cost
    assert by_industry["农业"]["active"] == 0 and by_industry["制造业"]["agent_using"] == 1
    by_district = {row["name"]: row for row in document["by_district"]}
    assert by_district["渝北区"]["registered"] == 2 and by_district["两江新区"]["agent_using"] == 1
    assert {row["name"] for row in document["by_size"]} == {"", "small", "medium"}
    assert document["scenarios"] == dict.fromkeys(STAGES, 0)
    # Money adds up: the groups' spend is the month's.
    assert sum(Decimal(row["spend"]) for row in document["by_industry"]) == Decimal(
        document["usage"]["spend"]
    )


def test_each_voucher_program_s_money_and_leverage_are_what_plain_sql_says(db: Database) -> None:
    orgs = seed(db)  # rebuilds the rollups from the records; the vouchers' own rollup is written below
    face = 10_000_000
    with db.session() as session:
        for n, (org, issuer, program) in enumerate(
            (
                ("电子", "大数据局", "2026 算力券"),
                ("船机", "大数据局", "2026 算力券"),
                ("纺织", "经信委", "制造业专项"),
            )
        ):
            session.add(
                Voucher(
                    id=f"vch-{n}", org_id=orgs[org], issuer=issuer, program=program, face=face, remaining=face,
                    copay=Decimal("0.3"), valid_from=(START - dt.timedelta(days=30)).astimezone(dt.UTC),
                    valid_to=(END + dt.timedelta(days=30)).astimezone(dt.UTC),
                )
            )  # fmt: skip
        session.flush()
        hourly = voucher_hourly.insert()
        # 电子's voucher paid in the month (and once after it); 船机's never did; 纺织's in the month.
        for voucher_id, at, paid in (
            ("vch-0", START + dt.timedelta(days=2), 120_000),
            ("vch-0", START + dt.timedelta(days=9), 30_000),
            ("vch-0", END + dt.timedelta(hours=2), 999_999),
            ("vch-2", START + dt.timedelta(days=5), 50_000),
        ):
            session.execute(hourly.values(voucher_id=voucher_id, hour=at.astimezone(dt.UTC), provider="p", region="cq", calls=1, paid=paid))  # fmt: skip
    document = monthly(db, MONTH, ZONE)
    programs = {(row["issuer"], row["program"]): row for row in document["voucher_programs"]}
    in_month = "created_at >= :start AND created_at < :end"
    for key, org, paid in (
        (("大数据局", "2026 算力券"), "电子", 150_000),
        (("经信委", "制造业专项"), "纺织", 50_000),
    ):
        own = plain(db, f"SELECT SUM(cost - voucher_part) FROM usage_records WHERE {in_month} AND org_id = :o", o=orgs[org])[0][0]  # fmt: skip
        row = programs[key]
        assert row["organizations"] == 1 and row["voucher_paid"] == format_cny(paid), key
        assert row["own_spent"] == format_cny(int(str(own))) and row["leverage"] == round(
            int(str(own)) / paid, 4
        ), key


def test_the_command_prints_the_same_document_and_a_workbook_and_refuses_a_bad_month(
    db: Database, empty_database_url: str, tmp_path: Path
) -> None:
    seed(db)
    env = {"DIZUO_DATABASE_URL": empty_database_url, "DIZUO_TIMEZONE": "Asia/Shanghai"}
    printed = dizuo("indicators", "--month", MONTH, "--json", env=env)
    assert printed.returncode == 0, printed.stderr
    assert json.loads(printed.stdout) == json.loads(json.dumps(monthly(db, MONTH, ZONE)))
    readable = dizuo("indicators", "--month", MONTH, env=env).stdout
    assert (
        "使用智能体的组织 using agents 1 / 4 (25.0%)（目标 70% / target）" in readable
        and "两江新区" in readable
    )
    # The workbook: a summary and a sheet per grouping, Chinese intact, money as numbers of yuan.
    book_path = tmp_path / "指标.xlsx"
    written = dizuo("indicators", "--month", MONTH, "--xlsx", str(book_path), env=env)
    assert written.returncode == 0, written.stderr
    document = monthly(db, MONTH, ZONE)
    book = openpyxl.load_workbook(book_path)
    assert book.sheetnames == ["总览", "按行业", "按区县", "按规模", "场景清单", "场景清单批次", "算力券"]
    summary = {row[0]: row[1] for row in book["总览"].iter_rows(min_row=2, values_only=True)}
    assert summary["注册组织"] == 4 and summary["智能体普及率"] == 0.25 and summary["年度目标"] == 0.7
    assert Decimal(str(summary["花费（元）"])) == Decimal(document["usage"]["spend"])
    industries = {row[0]: row for row in book["按行业"].iter_rows(min_row=2, values_only=True)}
    assert set(industries) == {"制造业", "信息技术", "农业"}
    assert Decimal(str(industries["制造业"][6])) == Decimal(
        next(r for r in document["by_industry"] if r["name"] == "制造业")["spend"]
    )
    scenarios = {row[0]: row[1] for row in book["场景清单"].iter_rows(min_row=2, values_only=True)}
    progress = document["scenario_progress"]
    assert scenarios["逾期里程碑"] == progress["milestones_late"]
    assert scenarios["本月揭榜的场景"] == progress["publication_to_award_days"]["awarded"]
    assert all(scenarios[stage] == count for stage, count in document["scenarios"].items())
    english = dizuo(
        "indicators", "--month", MONTH, "--xlsx", str(tmp_path / "en.xlsx"), "--lang", "en", env=env
    )
    assert english.returncode == 0 and openpyxl.load_workbook(tmp_path / "en.xlsx").sheetnames[0] == "Summary"
    bad = dizuo("indicators", "--month", "2026-13", env=env)
    assert bad.returncode == 2 and "YYYY-MM" in bad.stderr


async def test_the_admin_api_answers_the_document_to_operators_and_auditors_only(
    gateway_app: GatewayApp,
) -> None:
    platform = await gateway_app()
    tokens = platform.people()
    db = Database(platform.settings.resolved_database_url)
    try:
        expected = json.loads(json.dumps(monthly(db, MONTH, ZONE)))  # a past month: nothing changes it now
    finally:
        db.dispose()
    expected.pop("snapshot")  # the server's housekeeping may keep the closed month meanwhile
    for who in ("admin", "auditor"):
        answer = await api(platform, tokens[who], "GET", "/indicators", params={"month": MONTH})
        assert (
            answer.status_code == 200
            and {k: v for k, v in answer.json().items() if k != "snapshot"} == expected
        )
    workbook = await api(
        platform, tokens["auditor"], "GET", "/indicators", params={"month": MONTH, "format": "xlsx"}
    )
    assert workbook.status_code == 200 and workbook.content[:2] == b"PK"
    assert openpyxl.load_workbook(io.BytesIO(workbook.content)).sheetnames == [
        "总览",
        "按行业",
        "按区县",
        "按规模",
        "场景清单",
        "场景清单批次",
        "算力券",
    ]
    for who in ("a-admin", "a-dev", "bureau"):
        assert (
            await api(platform, tokens[who], "GET", "/indicators", params={"month": MONTH})
        ).status_code == 403
    bad = await api(platform, tokens["admin"], "GET", "/indicators", params={"month": "十一月"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "month"


def test_a_closed_month_is_kept_as_it_was_while_organizations_change(
    db: Database, empty_database_url: str
) -> None:
    orgs = seed(db)
    before = monthly(db, MONTH, ZONE)
    assert before["snapshot"] is None  # not kept yet: computed from the records
    # The server's housekeeping keeps the month once it is over, once.
    assert take_due(db, ZONE, now=dt.datetime(2026, 12, 2, 3, tzinfo=ZONE)) == MONTH
    assert take_due(db, ZONE, now=dt.datetime(2026, 12, 3, 3, tzinfo=ZONE)) is None
    with db.session() as session:  # 船机 moves to another industry and district after the month
        session.execute(text("UPDATE organizations SET industry = '软件', district = '渝中区' WHERE id = :id"), {"id": orgs["船机"]})  # fmt: skip
    kept = monthly(db, MONTH, ZONE)
    assert kept["snapshot"]["taken_by"] == "housekeeping"
    assert {k: v for k, v in kept.items() if k != "snapshot"} == {
        k: v for k, v in before.items() if k != "snapshot"
    }
    live = monthly(db, MONTH, ZONE, live=True)
    assert "软件" in [row["name"] for row in live["by_industry"]]
    assert "软件" not in [row["name"] for row in kept["by_industry"]]
    # Kept again on purpose, it takes the change; a month not over cannot be kept.
    again = snapshot(db, MONTH, ZONE, by="程序办公室", replace=True)
    assert again["snapshot"]["taken_by"] == "程序办公室" and again["by_industry"] == live["by_industry"]
    with pytest.raises(DizuoError) as refused:
        snapshot(db, dt.datetime.now(ZONE).strftime("%Y-%m"), ZONE)
    assert refused.value.code == "indicators_month_open"
    # The months side by side, each from its snapshot where kept.
    points = series(db, "2026-10", MONTH, ZONE)
    assert [(p["month"], p["snapshot"]) for p in points] == [("2026-10", False), (MONTH, True)]
    november = points[1]
    assert (november["agent_using"], november["registered"], november["target"]) == (1, 4, 0.7)
    assert (
        november["agent_share"] == again["agent_adoption"]["share"]
        and november["spend"] == again["usage"]["spend"]
    )
    env = {"DIZUO_DATABASE_URL": empty_database_url, "DIZUO_TIMEZONE": "Asia/Shanghai"}
    printed = dizuo("indicators", "--month", MONTH, "--since", "2026-10", "--json", env=env)
    assert printed.returncode == 0 and json.loads(printed.stdout)["data"] == json.loads(json.dumps(points))
    assert "快照 snapshot" in dizuo("indicators", "--month", MONTH, "--since", "2026-10", env=env).stdout
    open_month = dizuo("indicators", "--month", "2099-01", "--keep", env=env)
    assert open_month.returncode == 2 and "not over yet" in open_month.stderr


async def test_operators_keep_a_month_and_everyone_who_reads_indicators_reads_the_series(
    gateway_app: GatewayApp,
) -> None:
    platform = await gateway_app()
    tokens = platform.people()
    refused = await api(
        platform, tokens["auditor"], "POST", "/indicators/snapshots", json={"month": "2026-10"}
    )
    assert refused.status_code == 403
    kept = await api(platform, tokens["admin"], "POST", "/indicators/snapshots", json={"month": "2026-10"})
    assert kept.status_code == 201 and kept.json()["snapshot"]["taken_by"]
    bad = await api(platform, tokens["admin"], "POST", "/indicators/snapshots", json={"month": "2099-01"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "indicators_month_open"
    answer = await api(
        platform, tokens["auditor"], "GET", "/indicators/series", params={"from": "2026-09", "to": "2026-10"}
    )
    assert answer.status_code == 200
    assert [(p["month"], p["snapshot"]) for p in answer.json()["data"]] == [
        ("2026-09", False),
        ("2026-10", True),
    ]
    live = await api(
        platform, tokens["auditor"], "GET", "/indicators", params={"month": "2026-10", "live": "true"}
    )
    assert live.status_code == 200 and live.json()["snapshot"] is None
    too_long = await api(
        platform, tokens["auditor"], "GET", "/indicators/series", params={"from": "2020-01", "to": "2026-10"}
    )
    assert too_long.status_code == 400 and too_long.json()["error"]["param"] == "from"
    assert (await api(platform, tokens["a-dev"], "GET", "/indicators/series", params={"from": "2026-09", "to": "2026-10"})).status_code == 403  # fmt: skip
