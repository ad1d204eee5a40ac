"""Monthly partitions of the PostgreSQL tables that grow with every call.

A table is kept in months when its ``info`` names the column to split it on
(``info={PARTITIONED: "created_at"}``): the ledger's legs, usage records, failed calls and the guard's
events. Each month is a table of its own, ``<table>_YYYY_MM``, holding [the first of the month, the
first of the next) in UTC, and ``<table>_default`` holds whatever no month holds (a clock far off, a
history loaded from elsewhere) until :func:`ensure` makes its month and moves it there.

So a month's statement, report or export reads one or two months' tables and their indexes; a month
whose data has outlived its retention is dropped whole (:func:`drop_before`), with no row-by-row
delete and nothing left for VACUUM. SQLite has no partitions: its tables stay whole, and nothing
here runs on it.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, MetaData, text

log = logging.getLogger(__name__)

__all__ = [
    "AHEAD",
    "PARTITIONED",
    "Partition",
    "bounds",
    "create_month",
    "drop_before",
    "ensure",
    "expired",
    "is_partition",
    "is_partitioned",
    "month_of",
    "next_month",
    "partitioned_tables",
    "partitions",
]

PARTITIONED = "partitioned_on"  # the key, in a table's info, of the column its months split on
AHEAD = 3  # months made ahead of the current one, so that no call waits for a month to be made
# Held (per transaction) by whoever makes or drops months, so that replicas doing it at once take
# turns instead of racing to create the same table.
_LOCK = 0x6469_7A75_6F70  # "dizuop"

_NAME = re.compile(r"^(?P<table>[a-z_]+?)_(?:(?P<year>\d{4})_(?P<month>\d{2})|default)$")


@dataclass(frozen=True, slots=True)
class Partition:
    name: str
    start: dt.datetime | None  # None: the default partition
    end: dt.datetime | None


def partitioned_tables(metadata: MetaData) -> dict[str, str]:
    """The tables of *metadata* kept in months, each with the column it splits on."""
    return {
        name: table.info[PARTITIONED] for name, table in metadata.tables.items() if PARTITIONED in table.info
    }


def is_partition(name: str, metadata: MetaData) -> bool:
    """Whether *name* is a month (or the default) of one of *metadata*'s partitioned tables: a table
    the schema's comparison with the models leaves out, as the models describe only the parent."""
    match = _NAME.match(name)
    return match is not None and match["table"] in partitioned_tables(metadata)


def month_of(moment: dt.datetime) -> dt.datetime:
    """The first instant (UTC) of *moment*'s month."""
    moment = moment.astimezone(dt.UTC) if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month(month: dt.datetime) -> dt.datetime:
    return (month + dt.timedelta(days=32)).replace(day=1)


def _months(first: dt.datetime, last: dt.datetime) -> Iterable[dt.datetime]:
    month = month_of(first)
    while month <= last:
        yield month
        month = next_month(month)


def is_partitioned(connection: Connection, table: str) -> bool:
    query = text("SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass(:t)")
    return connection.execute(query, {"t": table}).first() is not None


def partitions(connection: Connection, table: str) -> list[Partition]:
    """*table*'s months in order, then its default partition if it has one. Tables attached under
    other names (an operator's own) are not listed: they are left alone."""
    names = connection.scalars(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = to_regclass(:t)"
        ),
        {"t": table},
    )
    months, default = [], []
    for name in names:
        match = _NAME.match(name)
        if match is None or match["table"] != table:
            continue
        if match["year"] is None:
            default.append(Partition(name, None, None))
        else:
            start = dt.datetime(int(match["year"]), int(match["month"]), 1, tzinfo=dt.UTC)
            months.append(Partition(name, start, next_month(start)))
    return sorted(months, key=lambda p: p.start or dt.datetime.min.replace(tzinfo=dt.UTC)) + default


def bounds(month: dt.datetime) -> str:
    return f"FROM ('{month.isoformat()}') TO ('{next_month(month).isoformat()}')"


def _strays(connection: Connection, table: str, column: str, month: dt.datetime) -> bool:
    """Whether *table*'s default partition holds rows of *month*."""
    default = f"{table}_default"
    if connection.execute(text("SELECT to_regclass(:d)"), {"d": default}).scalar() is None:
        return False
    span = {"start": month, "end": next_month(month)}
    query = text(f"SELECT 1 FROM {default} WHERE {column} >= :start AND {column} < :end LIMIT 1")
    return connection.execute(query, span).first() is not None


def create_month(connection: Connection, table: str, column: str, month: dt.datetime) -> str:
    """Make *table*'s partition for *month*, moving into it the default partition's rows of that
    month (PostgreSQL refuses a new month while the default holds rows of it)."""
    name = f"{table}_{month:%Y_%m}"
    if not _strays(connection, table, column, month):
        connection.execute(text(f"CREATE TABLE {name} PARTITION OF {table} FOR VALUES {bounds(month)}"))
        return name
    connection.execute(text(f"CREATE TABLE {name} (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"))
    connection.execute(
        text(
            f"WITH moved AS (DELETE FROM {table}_default WHERE {column} >= :start AND {column} < :end"
            f" RETURNING *) INSERT INTO {name} SELECT * FROM moved"
        ),
        {"start": month, "end": next_month(month)},
    )
    connection.execute(text(f"ALTER TABLE {table} ATTACH PARTITION {name} FOR VALUES {bounds(month)}"))
    return name


def ensure(
    connection: Connection, tables: dict[str, str], now: dt.datetime, ahead: int = AHEAD, *, move: bool = True
) -> list[str]:
    """Make the months *tables* (name → column) lack: the last one, this one and *ahead* more, and
    every month the default partition holds rows of, moving those rows in. Without *move* (a server
    starting: a history loaded into the default partition could take minutes to move), only the
    months the default holds nothing of. Returns the partitions made. Tables that are not partitioned
    (SQLite, or a schema not yet upgraded) are skipped."""
    if connection.dialect.name != "postgresql":
        return []
    connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK})
    made = []
    for table, column in tables.items():
        if not is_partitioned(connection, table):
            continue
        have = partitions(connection, table)
        held = {p.start for p in have if p.start is not None}
        this = month_of(now)
        wanted = set(_months(this - dt.timedelta(days=1), this + dt.timedelta(days=31 * ahead)))
        if move and any(p.start is None for p in have):
            strays = connection.scalars(
                text(f"SELECT DISTINCT date_trunc('month', {column} AT TIME ZONE 'UTC') FROM {table}_default")
            )
            wanted |= {stray.replace(tzinfo=dt.UTC) for stray in strays}
        for month in sorted(wanted - held):
            if not move and _strays(connection, table, column, month):
                log.warning(
                    "%s_default holds rows of %s: `dizuo admin prune` moves them into a month of their own",
                    table,
                    f"{month:%Y-%m}",
                )
                continue
            made.append(create_month(connection, table, column, month))
    return made


def expired(connection: Connection, table: str, cutoff: dt.datetime) -> list[Partition]:
    """*table*'s months that end at or before *cutoff*: every row of them is older."""
    return [p for p in partitions(connection, table) if p.end is not None and p.end <= cutoff]


def drop_before(connection: Connection, table: str, cutoff: dt.datetime) -> list[tuple[str, int]]:
    """Drop *table*'s :func:`expired` months. Returns each dropped partition with the rows it held."""
    connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK})
    dropped = []
    for partition in expired(connection, table, cutoff):
        rows = connection.execute(text(f"SELECT count(*) FROM {partition.name}")).scalar_one()
        connection.execute(text(f"DROP TABLE {partition.name}"))
        dropped.append((partition.name, int(rows)))
    return dropped
