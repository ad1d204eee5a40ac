"""monthly partitions of the ledger, usage records, failed calls and guard events; prunes

On PostgreSQL, each table is rebuilt as a table partitioned by range of ``created_at``, with a
partition for every month it holds rows of, the last month, this one and the next ones, and a
default partition; its rows are copied over, then its indexes made again. A partitioned table's primary key must hold the partition
column: ``(request_id, created_at)`` for usage records, ``(id, created_at)`` for the others (ids stay
unique: they come from the same sequences). SQLite keeps its tables as they are. Both get ``prunes``,
the record of what retention removed.

A copy of every row: on a large database, run the upgrade in a maintenance window (about a minute per
few million rows on modest hardware).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04 20:00:00.000000
"""

import datetime as dt

import sqlalchemy as sa
from alembic import op

from dizuo.store import partitions

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

# Each table with its primary key before partitioning.
TABLES = {
    "usage_records": ("request_id",),
    "ledger_entries": ("id",),
    "failed_calls": ("id",),
    "guard_events": ("id",),
}


def _rebuild(table: str, key: tuple[str, ...], *, partitioned: bool) -> None:
    bind = op.get_bind()
    indexes = sa.inspect(bind).get_indexes(table)
    new = f"{table}_rebuilt"
    split = " PARTITION BY RANGE (created_at)" if partitioned else ""
    op.execute(f"CREATE TABLE {new} (LIKE {table} INCLUDING DEFAULTS){split}")
    # A serial id's sequence belongs to its table and would go with it: it moves to the new one.
    for column in key:
        sequence = bind.execute(sa.text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table, "c": column})
        name = sequence.scalar()
        if name is not None:
            op.execute(f"ALTER SEQUENCE {name} OWNED BY {new}.{column}")
    if partitioned:
        months = bind.execute(
            sa.text(f"SELECT DISTINCT date_trunc('month', created_at AT TIME ZONE 'UTC') FROM {table}")
        ).scalars()
        now = dt.datetime.now(dt.UTC)
        wanted = {month.replace(tzinfo=dt.UTC) for month in months}
        month = partitions.month_of(now - dt.timedelta(days=now.day))  # the last one
        for _ in range(partitions.AHEAD + 2):
            wanted.add(month)
            month = partitions.next_month(month)
        for month in sorted(wanted):
            bounds = partitions.bounds(month)
            op.execute(f"CREATE TABLE {table}_{month:%Y_%m} PARTITION OF {new} FOR VALUES {bounds}")
        op.execute(f"CREATE TABLE {table}_default PARTITION OF {new} DEFAULT")
    op.execute(f"INSERT INTO {new} SELECT * FROM {table}")
    op.execute(f"DROP TABLE {table}")
    op.execute(f"ALTER TABLE {new} RENAME TO {table}")
    columns = (*key, "created_at") if partitioned else key
    op.execute(f"ALTER TABLE {table} ADD CONSTRAINT pk_{table} PRIMARY KEY ({', '.join(columns)})")
    for index in indexes:
        names = [column for column in index["column_names"] if column is not None]  # no expressions here
        op.create_index(index["name"], table, names, unique=index["unique"])
    op.execute(f"ANALYZE {table}")


def upgrade() -> None:
    op.create_table(
        "prunes",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("table_name", sa.String(length=64), nullable=False),
        sa.Column("cutoff", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=True),
        sa.Column("partitions", sa.String(length=2000), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prunes")),
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, key in TABLES.items():
        _rebuild(table, key, partitioned=True)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table, key in TABLES.items():
            _rebuild(table, key, partitioned=False)
    op.drop_table("prunes")
