"""Exports an accountant can add up: amounts are numbers shown as CNY to two decimals with the exact
value kept, headers in the reader's language, times and months in the platform's time zone."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
from decimal import Decimal
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from sqlalchemy import func, select, update

from dizuo.accounts.tables import Organization
from dizuo.billing import rollups
from dizuo.billing.journal import Journal
from dizuo.billing.reports import month_bounds, render, statement, usage_rows
from dizuo.billing.tables import LedgerEntry, UsageRecord
from dizuo.store import Database
from tests.billing.records import settled_charge

SHANGHAI = ZoneInfo("Asia/Shanghai")
ROWS = [
    {
        "request_id": "req_1",
        "created_at": "2026-11-30T17:30:00+00:00",  # 2026-12-01 01:30 in Shanghai
        "model": "深度求索-chat",
        "prompt_tokens": 12,
        "cost": "14.100000",
        "voucher_part": "0.000001",
    },
    {
        "request_id": "req_2",
        "created_at": "2026-12-01T02:00:00+00:00",
        "model": "qwen",
        "prompt_tokens": 3,
        "cost": "1234.567890",
        "voucher_part": "0.000000",
    },
]


def sheet_of(data: bytes) -> openpyxl.worksheet.worksheet.Worksheet:
    sheet = openpyxl.load_workbook(io.BytesIO(data)).active
    assert sheet is not None
    return sheet


def test_xlsx_amounts_are_numbers_that_sum_exactly_shown_to_two_decimals() -> None:
    sheet = sheet_of(render("xlsx", ROWS, zone=SHANGHAI))
    header = [cell.value for cell in sheet[1]]
    assert header == [
        "请求 ID",
        "时间（Asia/Shanghai）",
        "模型",
        "输入 Token",
        "费用（元）",
        "算力券支付（元）",
    ]
    costs = [sheet.cell(row=r, column=5) for r in (2, 3)]
    assert [c.value for c in costs] == [14.1, 1234.56789]  # exact, and numbers: SUM adds them
    assert all(c.number_format == '"¥"#,##0.00' for c in costs)
    assert sheet.cell(row=2, column=6).value == pytest.approx(0.000001)
    assert sheet.cell(row=2, column=4).value == 12 and sheet.cell(row=2, column=4).data_type == "n"
    # Shanghai time, as the console shows it; Excel holds it as a date-time.
    assert sheet.cell(row=2, column=2).value == dt.datetime(2026, 12, 1, 1, 30)
    assert sheet.freeze_panes == "A2"
    # Whole seconds, as the console shows the time: 10:00:00.9 is not rounded up to 10:00:01.
    late = sheet_of(render("xlsx", [{"created_at": "2026-12-01T02:00:00.900000+00:00"}], zone=SHANGHAI))
    assert late["A2"].value == dt.datetime(2026, 12, 1, 10, 0, 0)
    assert sheet.column_dimensions["C"].width >= 15  # "深度求索-chat": wide characters count twice
    assert sheet.cell(row=1, column=1).font.bold


def test_headers_follow_the_reader_s_language_and_csv_keeps_exact_amounts() -> None:
    english = sheet_of(render("xlsx", ROWS, lang="en", zone=SHANGHAI))
    assert [cell.value for cell in english[1]][:3] == ["Request ID", "Time (Asia/Shanghai)", "Model"]
    text = render("csv", ROWS, lang="zh", zone=SHANGHAI).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows[0]["时间（Asia/Shanghai）"] == "2026-12-01 01:30:00"
    assert [r["费用（元）"] for r in rows] == ["14.100000", "1234.567890"]
    flags = [{"stream": True}, {"stream": False}]
    assert render("csv", flags, zone=SHANGHAI).decode("utf-8-sig").split() == ["流式", "是", "否"]
    assert sheet_of(render("xlsx", flags, lang="en", zone=SHANGHAI))["A2"].value == "yes"
    json_rows = render("json", ROWS, zone=SHANGHAI)  # programs keep keys, UTC and exact strings
    assert b'"cost":"14.100000"' in json_rows and b'"created_at":"2026-11-30T17:30:00+00:00"' in json_rows


def test_a_statement_summary_is_labelled_and_numeric() -> None:
    summary = {
        "organization": "重庆某船机",
        "month": "2026-12",
        "opening_balance": "100.000000",
        "topups": "0",
    }
    sheet = sheet_of(render("xlsx", ROWS, summary, zone=SHANGHAI))
    cells = {row[0].value: row[1] for row in sheet.iter_rows(max_row=4)}
    assert cells["组织"].value == "重庆某船机"
    assert cells["期初余额（元）"].value == 100 and cells["期初余额（元）"].number_format == '"¥"#,##0.00'
    assert sheet.freeze_panes == "A7"  # under the table's header, below the summary and a blank line


def test_a_month_and_its_days_are_the_platform_s(journal: tuple[Journal, Database, str]) -> None:
    writer, db, org_id = journal  # an organization of ¥10
    with db.session() as session:
        name = session.get(Organization, org_id).name  # type: ignore[union-attr]
    at = {
        1_000: dt.datetime(2026, 11, 30, 15, 59),  # 23:59 on 30 November in Shanghai: November
        2_000: dt.datetime(2026, 11, 30, 16, 0),  # midnight, 1 December in Shanghai: December
        4_000: dt.datetime(2026, 12, 1, 15, 59),  # still 1 December in Shanghai
        8_000: dt.datetime(2026, 12, 1, 16, 30),  # 2 December
    }

    async def charge_all() -> None:
        for cost in at:
            charge = await settled_charge(writer.book, org_id, cost)
            await writer.record(charge, alone=True)
            request_id = charge.record["request_id"]
            with db.session() as session:
                for table in (UsageRecord, LedgerEntry):
                    session.execute(
                        update(table).where(table.request_id == request_id).values(created_at=at[cost])
                    )

    asyncio.run(charge_all())
    # Moved back in time by hand: the rollups statements read are rebuilt, as after any hand-made change.
    rollups.rebuild(db, dt.datetime(2026, 11, 30, tzinfo=dt.UTC))
    summary, lines = statement(db, name, "2026-12", SHANGHAI)
    assert [(line["date"], line["calls"], line["cost"]) for line in lines] == [
        ("2026-12-01", 2, "0.006000"),
        ("2026-12-02", 1, "0.008000"),
    ]
    assert summary["own_charges"] == "0.014000"
    november, _ = statement(db, name, "2026-11", SHANGHAI)
    assert november["own_charges"] == "0.001000"
    assert Decimal(november["closing_balance"]) == Decimal(summary["opening_balance"])
    # Balances (the account's other legs and the calls' part from the rollups) are the ledger's own sums.
    for month, figures in (("2026-11", november), ("2026-12", summary)):
        start, end = month_bounds(month, SHANGHAI)
        for moment, figure in ((start, "opening_balance"), (end, "closing_balance")):
            with db.session() as session:
                plain = session.scalar(
                    select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
                        LedgerEntry.account == f"org:{org_id}:cash", LedgerEntry.created_at < moment
                    )
                )
            assert Decimal(figures[figure]) == Decimal(plain) / 1_000_000, (month, figure)
    times = [row["created_at"] for row in usage_rows(db, name)]
    sheet = sheet_of(render("xlsx", [{"created_at": t} for t in times], zone=SHANGHAI))
    assert sheet.cell(row=3, column=1).value == dt.datetime(2026, 12, 1, 0, 0)
