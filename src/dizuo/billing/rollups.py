"""Hourly rollups: the sums of the usage records, failed calls and voucher payments, kept by the
write path.

Views of long ranges read these instead of every record: the console's overview reads
``activity_hourly`` (per organization, and per share of the whole platform, with a latency
histogram), statements read ``usage_hourly`` (per organization, key, model, deployment, provider and
region), voucher reports ``voucher_hourly`` (per voucher, provider and region). The raw records and
the ledger stay the source of truth for exports and audits.

Exact by construction: the journal adds a batch's sums in the transaction that writes its records
(and the failure log likewise), so a rollup is never behind its records and never disagrees with
them, whatever stops the process. ``dizuo admin rollups rebuild`` recomputes them from the records
(after an upgrade, or a hand-made change); ``dizuo admin rollups verify`` compares and names any
difference.

Times are UTC hours. A view in the platform's time zone folds hours into its days, exact for zones
whose offset is whole hours (statements of other zones read the records).
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import os
import socket
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, func, select

from dizuo.billing.tables import LATENCY_COLUMNS, LATENCY_EDGES, activity_hourly, usage_hourly, voucher_hourly
from dizuo.store import Database, stamper, utc
from dizuo.store.batches import row_groups
from dizuo.store.pruning import horizon

__all__ = [
    "ACTIVITY_KEYS",
    "ACTIVITY_SUMS",
    "CUT",
    "USAGE_KEYS",
    "USAGE_SUMS",
    "Difference",
    "Sums",
    "activity_hourly",
    "all_scopes",
    "hour_of",
    "percentile",
    "rebuild",
    "upsert",
    "usage_hourly",
    "verify",
]

# Usage statuses that mean the answer did not reach the client whole: counted as errors.
CUT = ("upstream_cut", "client_gone", "blocked")
SHARES = 16  # rows per hour that together hold the whole platform's activity


def _split(table: Table) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A rollup table's key columns and its sums, in the table's order."""
    return (
        tuple(c.name for c in table.columns if c.primary_key),
        tuple(c.name for c in table.columns if not c.primary_key),
    )


COLUMNS = {table.name: _split(table) for table in (usage_hourly, activity_hourly, voucher_hourly)}
USAGE_KEYS, USAGE_SUMS = COLUMNS["usage_hourly"]  # org_id, hour, key_id, model, …; calls, failed, errors, …
ACTIVITY_KEYS, ACTIVITY_SUMS = COLUMNS["activity_hourly"]  # scope, hour; calls, …, the latency histogram
ACTIVITY_BASE = ACTIVITY_SUMS[: len(ACTIVITY_SUMS) - len(LATENCY_COLUMNS)]
VOUCHER_KEYS, VOUCHER_SUMS = COLUMNS["voucher_hourly"]  # voucher_id, hour, provider, region; calls, paid
ROWS_PER_STATEMENT = 128


def hour_of(moment: dt.datetime) -> dt.datetime:
    """The UTC hour that *moment* falls in."""
    return utc(moment).replace(minute=0, second=0, microsecond=0)


def latency_bucket(ms: int) -> int:
    """The histogram bucket of a latency: the first whose upper bound is at least *ms*."""
    return bisect.bisect_left(LATENCY_EDGES, ms)


def percentile(histogram: Sequence[int], share: float) -> int | None:
    """The latency below which *share* of the calls of *histogram* fell, read within its bucket by
    linear interpolation (so within a bucket's width, about a quarter, of the exact figure)."""
    total = sum(histogram)
    if not total:
        return None
    rank = min(total - 1, int(share * total))  # the same rank as the sorted list's index
    seen = 0
    for index, count in enumerate(histogram):
        if seen + count > rank:
            if index == len(LATENCY_EDGES):  # beyond the last bound: say the bound
                return LATENCY_EDGES[-1]
            low = LATENCY_EDGES[index - 1] if index else 0
            high = LATENCY_EDGES[index]
            return round(low + (high - low) * (rank - seen + 0.5) / count)
        seen += count
    return None  # unreachable: the counts add up to total


def _process_share() -> str:
    name = f"{socket.gethostname()}-{os.getpid()}"
    return f"*{zlib.crc32(name.encode()) % SHARES}"


_share: tuple[int, str] | None = None


def process_share() -> str:
    """This process's share of the platform-wide rows (per process: a forked worker gets its own)."""
    global _share
    if _share is None or _share[0] != os.getpid():
        _share = (os.getpid(), _process_share())
    return _share[1]


def all_scopes() -> list[str]:
    """The scopes whose rows add up to the whole platform."""
    return [f"*{index}" for index in range(SHARES)]


class Sums:
    """The rollup rows of some records and failed calls, summed in memory before they are added to
    the tables in one statement each."""

    __slots__ = ("activity", "share", "usage", "vouchers")

    def __init__(self, share: str | None = None) -> None:
        self.share = share if share is not None else process_share()
        self.usage: dict[tuple[Any, ...], list[int]] = {}
        self.activity: dict[tuple[str, dt.datetime], list[int]] = {}
        self.vouchers: dict[tuple[str, dt.datetime, str, str], list[int]] = {}

    def _activity(self, scope: str, hour: dt.datetime) -> list[int]:
        return _row(self.activity, (scope, hour), len(ACTIVITY_SUMS))

    def record(self, hour: dt.datetime, record: Mapping[str, Any]) -> None:
        """Add one usage record (the journal's column values) of *hour*."""
        org_id = record["org_id"]
        key = (
            org_id,
            hour,
            record["key_id"],
            record["model"],
            record["deployment"],
            record["provider"],
            record["region"],
        )
        row = _row(self.usage, key, len(USAGE_SUMS))
        cut = 1 if record["status"] in CUT else 0
        prompt, completion = record["prompt_tokens"], record["completion_tokens"]
        cost, voucher, latency = record["cost"], record["voucher_part"], record["latency_ms"]
        row[0] += 1
        row[2] += cut
        row[3] += prompt
        row[4] += completion
        row[5] += cost
        row[6] += voucher
        row[7] += record["own_part"]
        row[8] += record["uncollected"]
        row[9] += latency
        bucket = len(ACTIVITY_BASE) + latency_bucket(latency)
        for scope in (org_id, self.share):
            sums = self._activity(scope, hour)
            sums[0] += 1
            sums[2] += cut
            sums[3] += prompt
            sums[4] += completion
            sums[5] += cost
            sums[6] += voucher
            sums[bucket] += 1

    def voucher(
        self, hour: dt.datetime, voucher_id: str, provider: str, region: str, paid: int, calls: int = 1
    ) -> None:
        """Add what a voucher paid for *calls* calls of *hour* (a charge's leg of its account)."""
        row = _row(self.vouchers, (voucher_id, hour, provider, region), len(VOUCHER_SUMS))
        row[0] += calls
        row[1] += paid

    def charge(
        self, hour: dt.datetime, record: Mapping[str, Any], vouchers: Iterable[tuple[str, int]]
    ) -> None:
        """Add one charged usage *record* of *hour* and what each of its *vouchers* paid (a voucher
        that paid nothing has no leg, so no row)."""
        self.record(hour, record)
        for voucher_id, paid in vouchers:
            if paid:
                self.voucher(hour, voucher_id, record["provider"], record["region"], paid)

    def failed(self, hour: dt.datetime, org_id: str, key_id: str, model: str | None, count: int = 1) -> None:
        """Add *count* failed calls of *hour* (no deployment answered them: those columns are empty)."""
        _row(self.usage, (org_id, hour, key_id, model or "", "", "", ""), len(USAGE_SUMS))[1] += count
        for scope in (org_id, self.share):
            self._activity(scope, hour)[1] += count

    def usage_rows(self, stamp: Callable[[dt.datetime], Any]) -> list[tuple[Any, ...]]:
        """The usage rows as parameters (keys then sums), in key order: replicas adding to the same
        rows lock them in the same order and cannot deadlock."""
        return [
            (org_id, stamp(hour), *rest, *sums)
            for (org_id, hour, *rest), sums in sorted(self.usage.items(), key=_by_key)
        ]

    def activity_rows(self, stamp: Callable[[dt.datetime], Any]) -> list[tuple[Any, ...]]:
        return [
            (scope, stamp(hour), *sums) for (scope, hour), sums in sorted(self.activity.items(), key=_by_key)
        ]

    def voucher_rows(self, stamp: Callable[[dt.datetime], Any]) -> list[tuple[Any, ...]]:
        return [
            (voucher_id, stamp(hour), provider, region, *sums)
            for (voucher_id, hour, provider, region), sums in sorted(self.vouchers.items(), key=_by_key)
        ]


def _row(rows: dict[Any, list[int]], key: Any, width: int) -> list[int]:
    """The sums of *key* in *rows*, zeros when they are new."""
    row = rows.get(key)
    if row is None:
        row = rows[key] = [0] * width
    return row


def _by_key(item: tuple[tuple[Any, ...], list[int]]) -> tuple[Any, ...]:
    return item[0]


def upsert_sql(
    table: Table, rows: int, mark: Callable[[int, str], str], sums: tuple[str, ...] | None = None
) -> str:
    """An INSERT of *rows* rows into a rollup table that adds to the rows that exist (SQLite and
    PostgreSQL alike); *mark* writes the placeholder of a row's column. Only the *sums* named (all,
    by default) are written: the others stay as they are, or 0 in a new row."""
    keys, every = COLUMNS[table.name]
    sums = every if sums is None else sums
    columns = keys + sums
    values = ", ".join("(" + ", ".join(mark(row, column) for column in columns) + ")" for row in range(rows))
    updates = ", ".join(f"{column} = {table.name}.{column} + excluded.{column}" for column in sums)
    return (
        f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES {values}"
        f" ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}"
    )


def positional(paramstyle: str) -> Callable[[int, str], str]:
    mark = "?" if paramstyle == "qmark" else "%s"
    return lambda _row, _column: mark


def _memo(stamp: Callable[[dt.datetime], Any]) -> Callable[[dt.datetime], Any]:
    """*stamp*, converting each hour once (a batch names a few hours many times)."""
    done: dict[dt.datetime, Any] = {}

    def once(hour: dt.datetime) -> Any:
        value = done.get(hour)
        if value is None:
            value = done[hour] = stamp(hour)
        return value

    return once


def upsert(cursor: Any, paramstyle: str, sums: Sums, stamp: Callable[[dt.datetime], Any]) -> None:
    """Add *sums* to the rollup tables through a driver *cursor*, in the caller's transaction.

    Each statement names only the sums that are not zero in any of its rows: a call adds to a few
    of an hour's 57 activity columns (its latency is in one bucket), and each column named costs
    its binding and its update (docs/benchmarks.md)."""
    stamp = _memo(stamp)
    tables = (
        (usage_hourly, sums.usage_rows(stamp)),
        (activity_hourly, sums.activity_rows(stamp)),
        (voucher_hourly, sums.voucher_rows(stamp)),
    )
    for table, rows in tables:
        width = len(COLUMNS[table.name][0])
        for start, size in row_groups(len(rows), ROWS_PER_STATEMENT):  # a few statement texts, reused
            part = rows[start : start + size]
            columns = list(zip(*part, strict=True))
            used = tuple(
                index for index in range(width, len(columns)) if index == width or any(columns[index])
            )
            sql = _upsert_sql(table, len(part), paramstyle, used)
            cursor.execute(sql, [value for row in part for value in (*row[:width], *(row[i] for i in used))])


@functools.lru_cache(maxsize=512)
def _upsert_sql(table: Table, rows: int, paramstyle: str, used: tuple[int, ...]) -> str:
    """:func:`upsert_sql` naming the sums at the row positions *used* (keys first)."""
    keys, every = COLUMNS[table.name]
    names = tuple(every[index - len(keys)] for index in used)
    return upsert_sql(table, rows, positional(paramstyle), names)


# ---- rebuilding and verifying from the records ----------------------------------------------------


def _buckets_sql() -> str:
    whens = " ".join(f"WHEN latency_ms <= {edge} THEN {index}" for index, edge in enumerate(LATENCY_EDGES))
    return f"CASE {whens} ELSE {len(LATENCY_EDGES)} END"


def _hour_sql(is_sqlite: bool) -> str:
    if is_sqlite:
        return "strftime('%Y-%m-%d %H:00:00', created_at)"
    return "date_trunc('hour', created_at AT TIME ZONE 'UTC')"


def _moment(value: Any) -> dt.datetime:
    """A timestamp as the driver returned it (SQLite: text), as an aware UTC datetime."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return utc(value)


def recompute(
    cursor: Any, is_sqlite: bool, start: dt.datetime, end: dt.datetime, stamp: Any, org_id: str | None = None
) -> Sums:
    """The rollups of [*start*, *end*) (whole hours) from the records, summed by the database (of one
    organization's records, with *org_id*: then without the platform's rows)."""
    mark = "?" if is_sqlite else "%s"
    hour = _hour_sql(is_sqlite)
    cut = ", ".join(f"'{status}'" for status in CUT)
    span: tuple[Any, ...] = (stamp(start), stamp(end))
    where = f"created_at >= {mark} AND created_at < {mark}"
    if org_id is not None:
        where += f" AND org_id = {mark}"
        span += (org_id,)
    sums = Sums(share="*0")
    cursor.execute(
        f"SELECT {hour}, org_id, key_id, model, deployment, provider, region, count(*),"
        f" sum(CASE WHEN status IN ({cut}) THEN 1 ELSE 0 END), sum(prompt_tokens), sum(completion_tokens),"
        " sum(cost), sum(voucher_part), sum(own_part), sum(uncollected), sum(latency_ms)"
        f" FROM usage_records WHERE {where} GROUP BY 1, 2, 3, 4, 5, 6, 7",
        span,
    )
    for moment, org, key_id, model, deployment, provider, region, *values in cursor.fetchall():
        when = _moment(moment)
        calls, errors, *rest = (int(value) for value in values)  # rest: tokens, money, latency
        row = [calls, 0, errors, *rest]
        sums.usage[(org, when, key_id, model, deployment, provider, region)] = row
        for scope in (org, sums.share):
            activity = sums._activity(scope, when)
            for index in range(len(ACTIVITY_BASE)):
                activity[index] += row[index]
    cursor.execute(
        f"SELECT {hour}, org_id, {_buckets_sql()}, count(*) FROM usage_records WHERE {where} GROUP BY 1, 2, 3",
        span,
    )
    for moment, org, bucket, count in cursor.fetchall():
        when = _moment(moment)
        for scope in (org, sums.share):
            sums._activity(scope, when)[len(ACTIVITY_BASE) + int(bucket)] += int(count)
    cursor.execute(
        f"SELECT {hour}, org_id, key_id, model, count(*) FROM failed_calls WHERE {where} GROUP BY 1, 2, 3, 4",
        span,
    )
    for moment, org, key_id, model, count in cursor.fetchall():
        sums.failed(_moment(moment), org, key_id, model, int(count))
    # What vouchers paid: their accounts' charge legs, each with its call's provider and region.
    legs = where.replace("created_at", "l.created_at").replace("org_id", "l.org_id")
    cursor.execute(
        f"SELECT {hour.replace('created_at', 'l.created_at')}, l.voucher_id, coalesce(u.provider, '?'),"
        " coalesce(u.region, '?'), count(*), -sum(l.amount) FROM ledger_entries l"
        " LEFT JOIN usage_records u ON u.request_id = l.request_id"
        f" WHERE {legs} AND l.kind = 'charge' AND l.voucher_id IS NOT NULL GROUP BY 1, 2, 3, 4",
        span,
    )
    for moment, voucher_id, provider, region, count, paid in cursor.fetchall():
        sums.voucher(_moment(moment), voucher_id, provider, region, int(paid), int(count))
    if org_id is not None:
        sums.activity = {key: row for key, row in sums.activity.items() if key[0] == org_id}
    return sums


def _stored(
    cursor: Any, is_sqlite: bool, start: dt.datetime, end: dt.datetime, stamp: Any, org_id: str | None = None
) -> Sums:
    """The rollups of [*start*, *end*) as the tables hold them (one organization's, with *org_id*)."""
    mark = "?" if is_sqlite else "%s"
    span: tuple[Any, ...] = (stamp(start), stamp(end))
    sums = Sums(share="*0")
    which = ""
    if org_id is not None:
        span += (org_id,)
        which = f" AND org_id = {mark}"
    cursor.execute(
        f"SELECT {', '.join(USAGE_KEYS + USAGE_SUMS)} FROM usage_hourly"
        f" WHERE hour >= {mark} AND hour < {mark}{which}",
        span,
    )
    for org, moment, *rest in cursor.fetchall():
        keys, values = rest[: len(USAGE_KEYS) - 2], rest[len(USAGE_KEYS) - 2 :]
        sums.usage[(org, _moment(moment), *keys)] = [int(v) for v in values]
    cursor.execute(
        f"SELECT {', '.join(ACTIVITY_KEYS + ACTIVITY_SUMS)} FROM activity_hourly"
        f" WHERE hour >= {mark} AND hour < {mark}{which.replace('org_id', 'scope')}",
        span,
    )
    for scope, moment, *values in cursor.fetchall():
        # The platform's shares are compared as their sum: how it is shared out is nobody's concern.
        row = sums._activity("*0" if scope.startswith("*") else scope, _moment(moment))
        for index, value in enumerate(values):
            row[index] += int(value)
    vouchers = f" AND voucher_id IN (SELECT id FROM vouchers WHERE org_id = {mark})" if org_id else ""
    cursor.execute(
        f"SELECT {', '.join(VOUCHER_KEYS + VOUCHER_SUMS)} FROM voucher_hourly"
        f" WHERE hour >= {mark} AND hour < {mark}{vouchers}",
        span,
    )
    for voucher_id, moment, provider, region, calls, paid in cursor.fetchall():
        sums.voucher(_moment(moment), voucher_id, provider, region, int(paid), int(calls))
    return sums


@dataclass(frozen=True)
class Difference:
    """A rollup row that does not say what its records say."""

    table: str
    key: tuple[str, ...]  # the row's key, the hour in ISO 8601
    column: str
    expected: int  # from the records
    found: int  # in the rollup

    def __str__(self) -> str:
        return f"{self.table} {' / '.join(self.key)}: {self.column} {self.found} ≠ {self.expected}"


def _compare(expected: Sums, found: Sums) -> Iterator[Difference]:
    tables = (
        ("usage_hourly", expected.usage, found.usage, USAGE_SUMS),
        ("activity_hourly", expected.activity, found.activity, ACTIVITY_SUMS),
        ("voucher_hourly", expected.vouchers, found.vouchers, VOUCHER_SUMS),
    )
    for name, want, have, columns in tables:
        for key in sorted(set(want) | set(have), key=lambda k: tuple(str(part) for part in k)):
            a = want.get(key, [0] * len(columns))
            b = have.get(key, [0] * len(columns))
            label = tuple(part.isoformat() if isinstance(part, dt.datetime) else str(part) for part in key)
            if name == "activity_hourly" and label[0] == "*0":
                label = ("*", *label[1:])  # the whole platform
            for column, x, y in zip(columns, a, b, strict=True):
                if x != y:
                    yield Difference(name, label, column, x, y)


def _days(db: Database, since: dt.datetime | None) -> Iterable[tuple[dt.datetime, dt.datetime]]:
    """[start, end) spans of whole UTC days from *since* (or the first record) to the last record."""
    with db.engine.connect() as connection:
        first, last = connection.exec_driver_sql(
            "SELECT min(created_at), max(created_at) FROM"
            " (SELECT created_at FROM usage_records UNION ALL SELECT created_at FROM failed_calls"
            " UNION ALL SELECT hour FROM usage_hourly) AS moments"
        ).one()
    if first is None:
        return []
    start = hour_of(since if since is not None else _moment(first))
    if since is None:
        start = start.replace(hour=0)
    # Before retention's horizon some failed calls are gone, their sums kept only here: those hours
    # are left as they are (the hour the horizon falls in included).
    pruned = horizon(db, "failed_calls")
    if pruned is not None:
        start = max(start, hour_of(pruned - dt.timedelta(microseconds=1)) + dt.timedelta(hours=1))
    stop = hour_of(_moment(last)) + dt.timedelta(hours=1)
    spans = []
    while start < stop:
        end = min(start.replace(hour=0) + dt.timedelta(days=1), stop)
        spans.append((start, end))
        start = end
    return spans


def rebuild(db: Database, since: dt.datetime | None = None) -> int:
    """Recompute the rollups from the records, a day at a time (from *since*'s hour, or all of them).
    Returns the number of usage rows written.

    Each day is one transaction that holds the write lock (SQLite) or locks the rollup tables (PostgreSQL)
    while it reads the day's records and replaces its rows, so calls committed meanwhile wait a moment
    and are then added to the new rows, never lost or counted twice."""
    stamp = stamper(db.engine.dialect)
    written = 0
    for start, end in _days(db, since):
        connection = db.engine.raw_connection()
        try:
            cursor = connection.cursor()
            if db.is_sqlite:
                cursor.execute("BEGIN IMMEDIATE")
            else:
                cursor.execute(
                    "LOCK TABLE usage_hourly, activity_hourly, voucher_hourly IN SHARE ROW EXCLUSIVE MODE"
                )
            sums = recompute(cursor, db.is_sqlite, start, end, stamp)
            mark = "?" if db.is_sqlite else "%s"
            for table in ("usage_hourly", "activity_hourly", "voucher_hourly"):
                cursor.execute(
                    f"DELETE FROM {table} WHERE hour >= {mark} AND hour < {mark}", (stamp(start), stamp(end))
                )
            upsert(cursor, db.engine.dialect.paramstyle, sums, stamp)
            connection.commit()
            written += len(sums.usage)
        except BaseException:
            connection.rollback()
            raise
        finally:
            connection.close()
    return written


def verify(db: Database, since: dt.datetime | None = None, org_id: str | None = None) -> list[Difference]:
    """Compare the rollups with the records, a day at a time, each day in one snapshot (only
    *org_id*'s rows, when given; the platform's rows are then not compared)."""
    stamp = stamper(db.engine.dialect)
    differences: list[Difference] = []
    for start, end in _days(db, since):
        connection = db.engine.raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute("BEGIN" if db.is_sqlite else "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            expected = recompute(cursor, db.is_sqlite, start, end, stamp, org_id)
            found = _stored(cursor, db.is_sqlite, start, end, stamp, org_id)
            differences += _compare(expected, found)
        finally:
            connection.rollback()
            connection.close()
    return differences


def read_activity(
    db: Database, scopes: list[str], start: dt.datetime, end: dt.datetime
) -> dict[dt.datetime, list[int]]:
    """The platform's (or an organization's) sums per UTC hour in [*start*, *end*)."""
    table = activity_hourly
    columns = [func.sum(table.c[name]) for name in ACTIVITY_SUMS]
    query = (
        select(table.c.hour, *columns)
        .where(table.c.scope.in_(scopes), table.c.hour >= utc(start), table.c.hour < utc(end))
        .group_by(table.c.hour)
    )
    hours: dict[dt.datetime, list[int]] = defaultdict(lambda: [0] * len(ACTIVITY_SUMS))
    with db.session() as session:
        for moment, *values in session.execute(query):
            hours[_moment(moment)] = [int(value or 0) for value in values]
    return hours
