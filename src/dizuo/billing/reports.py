"""Usage exports, monthly statements and voucher issuers' reports, as rows and as CSV/XLSX files.

CSV is written as UTF-8 with a byte-order mark so that Excel opens Chinese text correctly; XLSX is
written with openpyxl. Amounts are decimal strings in CNY (six places), never floats.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections import defaultdict
from typing import Any
from urllib.parse import quote

import orjson
from openpyxl import Workbook
from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from dizuo.accounts.service import org_by_name
from dizuo.accounts.tables import Organization
from dizuo.billing.money import format_cny
from dizuo.billing.tables import LedgerEntry, UsageRecord, Voucher
from dizuo.errors import InvalidRequest
from dizuo.store import Database, utc

__all__ = [
    "MEDIA",
    "attachment",
    "month_bounds",
    "neutralise",
    "render",
    "statement",
    "to_csv",
    "to_xlsx",
    "usage_rows",
    "voucher_report",
]

USAGE_COLUMNS = [
    "request_id",
    "created_at",
    "model",
    "deployment",
    "provider",
    "region",
    "endpoint",
    "prompt_tokens",
    "completion_tokens",
    "cost",
    "voucher_part",
    "own_part",
    "uncollected",
    "latency_ms",
    "data_class",
    "stream",
    "status",
    "key_id",
]


def month_bounds(month: str) -> tuple[dt.datetime, dt.datetime]:
    """Return [start, end) in UTC of a ``YYYY-MM`` month, or raise 400."""
    try:
        start = dt.datetime.strptime(month, "%Y-%m").replace(tzinfo=dt.UTC)
    except ValueError:
        raise InvalidRequest(
            "invalid_param",
            param="month",
            reason_zh=f"{month!r} 不是 YYYY-MM 格式",
            reason_en=f"{month!r} is not YYYY-MM",
        ) from None
    end = (start + dt.timedelta(days=32)).replace(day=1)
    return start, end


def usage_rows(
    db: Database,
    org_name: str,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    model: str | None = None,
) -> list[dict[str, Any]]:
    """Return the organization's usage records in time order (of one model alias, when given),
    amounts as CNY strings."""
    with db.session() as session:
        org = org_by_name(session, org_name)
        query = select(UsageRecord).where(UsageRecord.org_id == org.id)
        if since is not None:
            query = query.where(UsageRecord.created_at >= utc(since))
        if until is not None:
            query = query.where(UsageRecord.created_at < utc(until))
        if model:
            query = query.where(UsageRecord.model == model)
        rows = []
        for record in session.scalars(query.order_by(UsageRecord.created_at, UsageRecord.request_id)):
            row = {column: getattr(record, column) for column in USAGE_COLUMNS}
            row["created_at"] = _iso(record.created_at)
            row["attempts"] = ",".join(
                f"{a['deployment']}({a['error']})" if a.get("error") else str(a["deployment"])
                for a in record.attempts or []
            )
            for money in ("cost", "voucher_part", "own_part", "uncollected"):
                row[money] = format_cny(row[money])
            rows.append(row)
        return rows


def _iso(moment: dt.datetime) -> str:
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).isoformat()


def _cash_sum(
    session: Session, account: str, kind: str | None, start: dt.datetime | None, end: dt.datetime
) -> int:
    conditions = [LedgerEntry.account == account, LedgerEntry.created_at < end]
    if start is not None:
        conditions.append(LedgerEntry.created_at >= start)
    if kind is not None:
        conditions.append(LedgerEntry.kind == kind)
    return int(
        session.scalar(select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(and_(*conditions))) or 0
    )


def statement(db: Database, org_name: str, month: str) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """Return a month's statement: a summary from the ledger, and per-day, per-model lines from usage."""
    start, end = month_bounds(month)
    with db.session() as session:
        org = org_by_name(session, org_name)
        cash = f"org:{org.id}:cash"
        opening = _cash_sum(session, cash, None, None, start)
        summary = {
            "organization": org.name,
            "uscc": org.uscc or "",
            "month": month,
            "opening_balance": format_cny(opening),
            "topups": format_cny(_cash_sum(session, cash, "topup", start, end)),
            "own_charges": format_cny(-_cash_sum(session, cash, "charge", start, end)),
            "closing_balance": format_cny(_cash_sum(session, cash, None, None, end)),
        }
        day = func.date(UsageRecord.created_at)
        query = (
            select(
                day.label("day"),
                UsageRecord.model,
                UsageRecord.provider,
                UsageRecord.region,
                func.count().label("calls"),
                func.sum(UsageRecord.prompt_tokens).label("prompt_tokens"),
                func.sum(UsageRecord.completion_tokens).label("completion_tokens"),
                func.sum(UsageRecord.cost).label("cost"),
                func.sum(UsageRecord.voucher_part).label("voucher_part"),
                func.sum(UsageRecord.own_part).label("own_part"),
            )
            .where(
                UsageRecord.org_id == org.id, UsageRecord.created_at >= start, UsageRecord.created_at < end
            )
            .group_by(day, UsageRecord.model, UsageRecord.provider, UsageRecord.region)
            .order_by(day, UsageRecord.model, UsageRecord.provider, UsageRecord.region)
        )
        lines = []
        voucher_paid = 0
        for row in session.execute(query):
            voucher_paid += int(row.voucher_part)
            lines.append(
                {
                    "date": str(row.day),
                    "model": row.model,
                    "provider": row.provider,
                    "region": row.region,
                    "calls": int(row.calls),
                    "prompt_tokens": int(row.prompt_tokens),
                    "completion_tokens": int(row.completion_tokens),
                    "cost": format_cny(int(row.cost)),
                    "voucher_part": format_cny(int(row.voucher_part)),
                    "own_part": format_cny(int(row.own_part)),
                }
            )
        summary["voucher_paid"] = format_cny(voucher_paid)
        return summary, lines


def voucher_report(db: Database, issuer: str, month: str) -> list[dict[str, Any]]:
    """Return what an issuer's vouchers paid in a month, per organization, program, provider and region."""
    start, end = month_bounds(month)
    with db.session() as session:
        vouchers = {v.id: v for v in session.scalars(select(Voucher).where(Voucher.issuer == issuer))}
        if not vouchers:
            return []
        orgs = {o.id: o for o in session.scalars(select(Organization))}
        # Each charge's voucher legs name the voucher; the revenue leg of the same transaction names
        # the provider, and the usage record of its request the region.
        legs = session.execute(
            select(
                LedgerEntry.tx_id, LedgerEntry.voucher_id, LedgerEntry.amount, LedgerEntry.request_id
            ).where(
                LedgerEntry.kind == "charge",
                LedgerEntry.voucher_id.in_(list(vouchers)),
                LedgerEntry.created_at >= start,
                LedgerEntry.created_at < end,
            )
        ).all()
        request_ids = [leg.request_id for leg in legs]
        usage = (
            {
                r.request_id: r
                for r in session.scalars(select(UsageRecord).where(UsageRecord.request_id.in_(request_ids)))
            }
            if request_ids
            else {}
        )
        totals: dict[tuple[str, str, str, str], list[int]] = defaultdict(lambda: [0, 0])
        for leg in legs:
            voucher = vouchers[leg.voucher_id]
            record = usage.get(leg.request_id)
            provider = record.provider if record else "?"
            region = record.region if record else "?"
            key = (voucher.org_id, voucher.program, provider, region)
            totals[key][0] += -leg.amount
            totals[key][1] += 1
        rows = []
        for (org_id, program, provider, region), (paid, calls) in sorted(totals.items()):
            org = orgs.get(org_id)
            rows.append(
                {
                    "issuer": issuer,
                    "month": month,
                    "organization": org.name if org else org_id,
                    "uscc": (org.uscc or "") if org else "",
                    "program": program,
                    "provider": provider,
                    "region": region,
                    "calls": calls,
                    "voucher_paid": format_cny(paid),
                }
            )
        return rows


# A cell a spreadsheet would read as a formula: a voucher program named =HYPERLINK("http://…?d="&A1, …)
# came back live in the voucher report. Numbers (a negative amount) are data, not formulas.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?")


def neutralise(value: Any) -> Any:
    """*value*, with text that a spreadsheet would run as a formula made inert by a leading ``'``
    (OWASP's advice for CSV injection); numbers and other values unchanged."""
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def to_csv(rows: list[dict[str, Any]], header: dict[str, str] | None = None) -> bytes:
    """Render rows as CSV in UTF-8 with a BOM (Excel reads Chinese correctly); *header* lines first.
    Text that would start a formula is neutralised."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    if header:
        for name, value in header.items():
            writer.writerow([neutralise(name), neutralise(value)])
        writer.writerow([])
    if rows:
        writer.writerow([neutralise(column) for column in rows[0]])
        for row in rows:
            writer.writerow([neutralise(row[column]) for column in rows[0]])
    return buffer.getvalue().encode("utf-8-sig")


def to_xlsx(rows: list[dict[str, Any]], header: dict[str, str] | None = None, title: str = "dizuo") -> bytes:
    """Render rows as an XLSX workbook; *header* lines first."""
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = title[:31]
    if header:
        for name, value in header.items():
            sheet.append([name, value])
        sheet.append([])
    if rows:
        sheet.append(list(rows[0]))
        for row in rows:
            sheet.append([row[column] for column in rows[0]])
    # openpyxl stores a string starting with "=" as a formula: every text cell is stored as text, and
    # text that would start a formula is neutralised as in CSV (a user re-typing the cell stays safe).
    for line in sheet.iter_rows():
        for cell in line:
            if isinstance(cell.value, str):
                cell.value = neutralise(cell.value)
                cell.data_type = "s"
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


MEDIA = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def attachment(name: str, fmt: str) -> dict[str, str]:
    """Return the headers of a download named *name* (Chinese allowed): an ASCII fallback name and
    the real one percent-encoded in UTF-8 (RFC 6266/5987)."""
    return {
        "content-type": MEDIA[fmt],
        "content-disposition": f"attachment; filename=\"export.{fmt}\"; filename*=UTF-8''{quote(f'{name}.{fmt}')}",
    }


def render(
    fmt: str, rows: list[dict[str, Any]], header: dict[str, str] | None = None, title: str = "dizuo"
) -> bytes:
    """Render an export as ``json`` (``{"summary", "lines"}`` when there is a header), ``csv`` or ``xlsx``."""
    if fmt == "json":
        return orjson.dumps({"summary": header, "lines": rows} if header is not None else rows) + b"\n"
    if fmt == "csv":
        return to_csv(rows, header)
    return to_xlsx(rows, header, title=title)
