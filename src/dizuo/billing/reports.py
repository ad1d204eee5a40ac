"""Usage exports, monthly statements and voucher issuers' reports, as rows and as CSV/XLSX files.

Rows hold amounts as exact CNY decimal strings (six places), never floats, and times in ISO 8601 UTC:
that is the JSON export. The CSV and XLSX files people open are written by ``billing.sheets``. A month
is a month in the platform's time zone, as are a statement's days.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from dizuo.accounts.service import org_by_name
from dizuo.accounts.tables import Organization
from dizuo.billing.money import format_cny
from dizuo.billing.sheets import neutralise, to_csv, to_xlsx
from dizuo.billing.tables import LedgerEntry, UsageRecord, Voucher
from dizuo.days import PLATFORM_ZONE, day_moment
from dizuo.errors import InvalidRequest, Lang
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


def month_bounds(month: str, zone: ZoneInfo = PLATFORM_ZONE) -> tuple[dt.datetime, dt.datetime]:
    """Return [start, end) in UTC of a ``YYYY-MM`` month in *zone*, or raise 400."""
    try:
        first = dt.datetime.strptime(month, "%Y-%m").date()
    except ValueError:
        raise InvalidRequest(
            "invalid_param",
            param="month",
            reason_zh=f"{month!r} 不是 YYYY-MM 格式",
            reason_en=f"{month!r} is not YYYY-MM",
        ) from None
    following = (first + dt.timedelta(days=32)).replace(day=1)
    return day_moment(first, zone), day_moment(following, zone)


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


def statement(
    db: Database, org_name: str, month: str, zone: ZoneInfo = PLATFORM_ZONE
) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """Return a month's statement: a summary from the ledger, and per-day, per-model lines from usage.
    The month and its days are those of *zone*, the platform's time zone."""
    start, end = month_bounds(month, zone)
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
        # Days are local days, which SQL cannot cut portably (SQLite has no time zones): records are
        # summed per UTC hour in SQL, and hours folded into the zone's days here. Zones whose offset
        # is not whole hours are summed record by record.
        whole_hours = all(
            (offset := moment.astimezone(zone).utcoffset()) is not None and offset.total_seconds() % 3600 == 0
            for moment in (start, end)
        )
        dialect = session.get_bind().dialect.name
        if whole_hours and dialect == "postgresql":
            # In UTC whatever the session's zone: a session in a half-hour zone would cut at :30.
            when: Any = func.date_trunc("hour", func.timezone("UTC", UsageRecord.created_at))
        elif whole_hours:
            when = func.strftime("%Y-%m-%d %H:00:00", UsageRecord.created_at)
        else:
            when = UsageRecord.created_at
        query = (
            select(
                when.label("moment"),
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
            .group_by(when, UsageRecord.model, UsageRecord.provider, UsageRecord.region)
        )
        sums: dict[tuple[str, str, str, str], list[int]] = defaultdict(lambda: [0] * 6)
        for row in session.execute(query):
            moment = (
                row.moment if isinstance(row.moment, dt.datetime) else dt.datetime.fromisoformat(row.moment)
            )
            day = utc(moment).astimezone(zone).date().isoformat()
            line = sums[(day, row.model, row.provider, row.region)]
            for index, value in enumerate(
                (
                    row.calls,
                    row.prompt_tokens,
                    row.completion_tokens,
                    row.cost,
                    row.voucher_part,
                    row.own_part,
                )
            ):
                line[index] += int(value)
        lines = [
            {
                "date": day,
                "model": model,
                "provider": provider,
                "region": region,
                "calls": calls,
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "cost": format_cny(cost),
                "voucher_part": format_cny(voucher),
                "own_part": format_cny(own),
            }
            for (day, model, provider, region), (calls, prompt, completion, cost, voucher, own) in sorted(
                sums.items()
            )
        ]
        summary["voucher_paid"] = format_cny(sum(v for _, _, _, _, v, _ in sums.values()))
        return summary, lines


def voucher_report(
    db: Database, issuer: str, month: str, zone: ZoneInfo = PLATFORM_ZONE
) -> list[dict[str, Any]]:
    """Return what an issuer's vouchers paid in a month of *zone*, per organization, program, provider
    and region."""
    start, end = month_bounds(month, zone)
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
    fmt: str,
    rows: list[dict[str, Any]],
    header: dict[str, str] | None = None,
    title: str = "dizuo",
    *,
    lang: Lang = "zh",
    zone: ZoneInfo = PLATFORM_ZONE,
) -> bytes:
    """Render an export as ``json`` (``{"summary", "lines"}`` when there is a header; keys and exact
    values for programs), or for people as ``csv`` or ``xlsx`` in *lang* with times in *zone*."""
    if fmt == "json":
        return orjson.dumps({"summary": header, "lines": rows} if header is not None else rows) + b"\n"
    if fmt == "csv":
        return to_csv(rows, header, lang=lang, zone=zone)
    return to_xlsx(rows, header, title=title, lang=lang, zone=zone)
