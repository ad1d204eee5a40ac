"""Usage exports, monthly statements and voucher issuers' reports, as rows and as CSV/XLSX files.

Rows hold amounts as exact CNY decimal strings (six places), never floats, and times in ISO 8601 UTC:
that is the JSON export. The CSV and XLSX files people open are written by ``billing.sheets``. A month
is a month in the platform's time zone, as are a statement's days.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy import Select, String, and_, func, literal, literal_column, select, tuple_
from sqlalchemy.orm import Session

from dizuo.accounts.service import org_by_name
from dizuo.accounts.tables import Organization
from dizuo.billing import ledger
from dizuo.billing.money import format_cny
from dizuo.billing.sheets import iter_csv, neutralise, to_csv, to_xlsx, write_xlsx
from dizuo.billing.tables import LedgerEntry, UsageRecord, Voucher, usage_hourly, voucher_hourly
from dizuo.days import PLATFORM_ZONE, day_moment
from dizuo.errors import InvalidRequest, Lang
from dizuo.store import Database, utc
from dizuo.store.audit import append

__all__ = [
    "MEDIA",
    "attachment",
    "issuer_line",
    "iter_usage_rows",
    "month_bounds",
    "neutralise",
    "recorded",
    "render",
    "statement",
    "stream",
    "to_csv",
    "to_xlsx",
    "usage_rows",
    "usage_summary",
    "voucher_report",
]


def recorded(
    db: Database, what: str, target: str, actor: str, *, org_id: str | None = None, **detail: Any
) -> None:
    """Write an export of *what* (``usage``, ``statement``, ``voucher-report``) to the audit trail:
    who took which records out of the platform, whichever way they asked."""
    with db.session() as session:
        given = {name: value for name, value in detail.items() if value is not None}
        append(session, f"export.{what}", target, actor=actor, org_id=org_id, detail=given or None)


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


def iter_usage_rows(
    db: Database,
    org_name: str,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    model: str | None = None,
) -> Iterator[dict[str, Any]]:
    """The organization's usage records in time order (of one model alias, when given), amounts as
    CNY strings, read a few thousand at a time: an export of any size holds only those in memory.
    The organization is looked up (and refused) before the first row."""
    with db.session() as session:
        org_id = org_by_name(session, org_name).id
    return _usage_rows(db, org_id, since, until, model)


def _usage_query(
    org_id: str, since: dt.datetime | None, until: dt.datetime | None, model: str | None
) -> Select[Any]:
    columns = [getattr(UsageRecord, name) for name in (*USAGE_COLUMNS, "attempts")]
    query = select(*columns).where(UsageRecord.org_id == org_id)
    if since is not None:
        query = query.where(UsageRecord.created_at >= utc(since))
    if until is not None:
        query = query.where(UsageRecord.created_at < utc(until))
    if model:
        query = query.where(UsageRecord.model == model)
    return query


def _usage_row(values: Sequence[Any]) -> dict[str, Any]:
    """A usage record's columns (and its attempts, last) as an export's row."""
    row = dict(zip(USAGE_COLUMNS, values, strict=False))
    row["created_at"] = _iso(row["created_at"])
    row["attempts"] = ",".join(
        f"{a['deployment']}({a['error']})" if a.get("error") else str(a["deployment"])
        for a in values[-1] or []
    )
    for money in ("cost", "voucher_part", "own_part", "uncollected"):
        row[money] = format_cny(row[money])
    return row


def _usage_rows(
    db: Database, org_id: str, since: dt.datetime | None, until: dt.datetime | None, model: str | None
) -> Iterator[dict[str, Any]]:
    """The rows in time order, a page at a time, each page read in a short transaction of its own
    (after the last row of the one before): a slow reader of a long export holds no transaction open,
    so the database's log keeps being checkpointed meanwhile."""
    query = _usage_query(org_id, since, until, model)
    order = (UsageRecord.created_at, UsageRecord.request_id)
    after: tuple[Any, Any] | None = None
    while True:
        page = query
        if after is not None:
            page = page.where(UsageRecord.created_at >= after[0], tuple_(*order) > after)
        with db.session() as session:
            found = session.execute(page.order_by(*order).limit(STREAMED)).all()
        for values in found:
            yield _usage_row(values)
        if len(found) < STREAMED:
            return
        after = (found[-1][1], found[-1][0])  # created_at, request_id


STREAMED = 2000  # rows read at a time by an export


def usage_rows(
    db: Database,
    org_name: str,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    model: str | None = None,
) -> list[dict[str, Any]]:
    """:func:`iter_usage_rows`, as a list."""
    return list(iter_usage_rows(db, org_name, since, until, model))


def usage_summary(
    db: Database,
    org_name: str,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    model: str | None = None,
    newest: int = 200,
) -> tuple[int, int, list[dict[str, Any]]]:
    """How many usage records match, what they cost in all (micro-yuan), and the *newest* of them,
    newest first: what a page shows, counted and summed by the database."""
    with db.session() as session:
        org_id = org_by_name(session, org_name).id
        query = _usage_query(org_id, since, until, model)
        matching = query.subquery()
        count, cost = session.execute(
            select(func.count(), func.coalesce(func.sum(matching.c.cost), 0)).select_from(matching)
        ).one()
        latest = query.order_by(UsageRecord.created_at.desc(), UsageRecord.request_id.desc()).limit(newest)
        rows = [_usage_row(values) for values in session.execute(latest)]
    return int(count), int(cost), rows


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
    if kind != "charge":  # read from the index of the legs that are not a call's charge
        conditions.append(LedgerEntry.kind != "charge")
    return int(
        session.scalar(select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(and_(*conditions))) or 0
    )


def _charged(session: Session, org_id: str, start: dt.datetime | None, end: dt.datetime) -> int:
    """What the organization's own money paid for calls in [*start*, *end*), whole UTC hours: the
    hourly rollups' sum of the records' own part, which is what the calls' cash legs took."""
    hourly = usage_hourly.c
    conditions = [hourly.org_id == org_id, hourly.hour < utc(end)]
    if start is not None:
        conditions.append(hourly.hour >= utc(start))
    return int(session.scalar(select(func.coalesce(func.sum(hourly.own_part), 0)).where(*conditions)) or 0)


def _balance(session: Session, org_id: str, account: str, moment: dt.datetime, hourly: bool) -> int:
    """The cash account's balance at *moment*: its other legs, less what calls took. *hourly*: the
    moment is a UTC hour's start, so the rollups hold the calls' part exactly; else every leg."""
    if not hourly:
        return _cash_sum(session, account, None, None, moment) + _cash_sum(
            session, account, "charge", None, moment
        )
    return _cash_sum(session, account, None, None, moment) - _charged(session, org_id, None, moment)


def _whole_hours(start: dt.datetime, end: dt.datetime, zone: ZoneInfo) -> bool:
    """Whether [start, end) in *zone* starts and ends on UTC hours (so hourly rollups add up to it)."""
    return all(
        (offset := moment.astimezone(zone).utcoffset()) is not None and offset.total_seconds() % 3600 == 0
        for moment in (start, end)
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
        # Balances sum the account's few other legs and the calls' part from the rollups: a month's
        # statement reads a month of rollups, not every call's leg since the account began.
        whole = _whole_hours(start, end, zone)
        charges = (
            _charged(session, org.id, start, end)
            if whole
            else -_cash_sum(session, cash, "charge", start, end)
        )
        summary = {
            "organization": org.name,
            "uscc": org.uscc or "",
            "month": month,
            "opening_balance": format_cny(_balance(session, org.id, cash, start, whole)),
            "topups": format_cny(_cash_sum(session, cash, "topup", start, end)),
            "own_charges": format_cny(charges),
            "closing_balance": format_cny(_balance(session, org.id, cash, end, whole)),
        }
        # Days are local days, which SQL cannot cut portably (SQLite has no time zones): the hourly
        # rollups are summed per UTC hour, and hours folded into the zone's days here. Zones whose
        # offset is not whole hours cut hours in two: their statements sum the records one by one.
        hourly = usage_hourly.c
        if _whole_hours(start, end, zone):
            query = (
                select(
                    hourly.hour.label("moment"),
                    hourly.model,
                    hourly.provider,
                    hourly.region,
                    func.sum(hourly.calls).label("calls"),
                    func.sum(hourly.prompt_tokens).label("prompt_tokens"),
                    func.sum(hourly.completion_tokens).label("completion_tokens"),
                    func.sum(hourly.cost).label("cost"),
                    func.sum(hourly.voucher_part).label("voucher_part"),
                    func.sum(hourly.own_part).label("own_part"),
                )
                .where(hourly.org_id == org.id, hourly.hour >= start, hourly.hour < end, hourly.calls > 0)
                .group_by(hourly.hour, hourly.model, hourly.provider, hourly.region)
            )
        else:
            query = select(
                UsageRecord.created_at.label("moment"),
                UsageRecord.model,
                UsageRecord.provider,
                UsageRecord.region,
                literal(1).label("calls"),
                UsageRecord.prompt_tokens,
                UsageRecord.completion_tokens,
                UsageRecord.cost,
                UsageRecord.voucher_part,
                UsageRecord.own_part,
            ).where(
                UsageRecord.org_id == org.id, UsageRecord.created_at >= start, UsageRecord.created_at < end
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
    and region.

    One query, grouped by the database, over the hourly voucher rollups of the issuer's vouchers: a
    few rows per voucher and hour, whatever the number of calls. In a zone whose offset is not whole
    hours, a month does not start on an hour: the month's charge legs of each of the issuer's voucher
    accounts are read instead (through the ledger's account index), each joined to its call's usage
    record for the provider and region."""
    start, end = month_bounds(month, zone)
    legs, records, hourly = LedgerEntry, UsageRecord, voucher_hourly.c
    with db.session() as session:
        vouchers = {v.id: v for v in session.scalars(select(Voucher).where(Voucher.issuer == issuer))}
        if not vouchers:
            return []
        if _whole_hours(start, end, zone):
            paid = (
                select(
                    Voucher.id,
                    hourly.provider,
                    hourly.region,
                    func.sum(hourly.paid).label("amount"),
                    func.sum(hourly.calls).label("calls"),
                )
                .select_from(Voucher)
                .join(voucher_hourly, hourly.voucher_id == Voucher.id)
                .where(Voucher.issuer == issuer, hourly.hour >= start, hourly.hour < end)
                .group_by(Voucher.id, hourly.provider, hourly.region)
            )
        else:
            # A call whose record is missing is '?': written in the SQL, not bound, so that PostgreSQL
            # sees the grouped expression and the selected one as the same.
            unknown = literal_column("'?'", String)
            by_provider = func.coalesce(records.provider, unknown)
            by_region = func.coalesce(records.region, unknown)
            paid = (
                select(
                    Voucher.id,
                    by_provider.label("paid_provider"),
                    by_region.label("paid_region"),
                    (-func.sum(legs.amount)).label("amount"),  # the voucher accounts' legs are negative
                    func.count().label("calls"),
                )
                .select_from(Voucher)
                .join(legs, legs.account == literal(ledger.voucher("")) + Voucher.id)
                .outerjoin(records, records.request_id == legs.request_id)
                .where(
                    Voucher.issuer == issuer,
                    legs.kind == "charge",
                    legs.created_at >= start,
                    legs.created_at < end,
                )
                .group_by(Voucher.id, by_provider, by_region)
            )
        totals: dict[tuple[str, str, str, str], list[int]] = defaultdict(lambda: [0, 0])
        for voucher_id, provider, region, amount, calls in session.execute(paid):
            voucher = vouchers[voucher_id]
            line = totals[(voucher.org_id, voucher.program, provider, region)]
            line[0] += int(amount)
            line[1] += int(calls)
        names = {
            o.id: o
            for o in session.scalars(
                select(Organization).where(Organization.id.in_({org_id for org_id, *_ in totals}))
            )
        }
        return [
            issuer_line(issuer, month, names.get(org_id), org_id, program, provider, region, calls, amount)
            for (org_id, program, provider, region), (amount, calls) in sorted(totals.items())
        ]


def issuer_line(
    issuer: str,
    month: str,
    org: Organization | None,
    org_id: str,
    program: str,
    provider: str,
    region: str,
    calls: int,
    paid: int,
) -> dict[str, Any]:
    """One line of an issuer's report: what its vouchers of *program* paid for *org* (*org_id* when it
    is gone) with *provider* in *region*."""
    return {
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


MEDIA = {
    "json": "application/json",
    "jsonl": "application/x-ndjson",
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


PIECE = 1 << 16  # bytes per piece of a streamed file


def stream(
    fmt: str,
    rows: Iterable[dict[str, Any]],
    header: dict[str, str] | None = None,
    title: str = "dizuo",
    *,
    lang: Lang = "zh",
    zone: ZoneInfo = PLATFORM_ZONE,
) -> Iterator[bytes]:
    """:func:`render`, a piece at a time, reading *rows* as it goes: memory stays flat whatever their
    number. ``jsonl`` (JSON Lines, one row a line) is for rows without a header. An XLSX file is a zip
    that is written whole before it can be read: it is written to a temporary file first."""
    if fmt == "json" and header is not None:
        yield render(fmt, list(rows), header)
    elif fmt in ("json", "jsonl"):
        lines = fmt == "jsonl"
        yield b"" if lines else b"["
        batch: list[bytes] = []
        first = True
        for row in rows:
            batch.append(orjson.dumps(row))
            if len(batch) == JSON_ROWS:
                yield _joined(batch, lines, first)
                batch, first = [], False
        if batch:
            yield _joined(batch, lines, first)
        yield b"" if lines else b"]\n"
    elif fmt == "csv":
        yield from iter_csv(rows, header, lang=lang, zone=zone)
    else:
        with tempfile.TemporaryFile() as file:
            write_xlsx(file, rows, header, title=title, lang=lang, zone=zone)
            file.seek(0)
            while piece := file.read(PIECE):
                yield piece


JSON_ROWS = 500  # rows per piece of a streamed JSON document


def _joined(batch: list[bytes], lines: bool, first: bool) -> bytes:
    if lines:
        return b"\n".join(batch) + b"\n"
    return (b"" if first else b",") + b",".join(batch)
