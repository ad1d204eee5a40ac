"""hourly rollups of usage and failed calls

Views of long ranges (the console's overview, statements, indicators) read these sums instead of
every record. The migration fills them from the records there are (one pass over each table).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 16:30:00.000000
"""

import itertools

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

# The latency histogram's buckets as this revision made them (upper bounds in milliseconds).
EDGES = (1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 80, 100, 125, 150, 200, 250, 300, 400)
EDGES_MORE = (500, 600, 800, 1000, 1250, 1500, 2000, 2500, 3000, 4000, 5000, 6000, 8000, 10000, 12500)
EDGES_LAST = (15000, 20000, 25000, 30000, 40000, 50000, 60000, 80000, 100000, 120000)
LATENCY_COLUMNS = [f"ms_le_{edge}" for edge in (*EDGES, *EDGES_MORE, *EDGES_LAST)] + ["ms_gt_120000"]


def _counts(*names: str) -> list[sa.Column[int]]:
    return [sa.Column(name, sa.BigInteger(), nullable=False, server_default=sa.text("0")) for name in names]


def upgrade() -> None:
    op.create_table(
        "usage_hourly",
        sa.Column("org_id", sa.String(length=32), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=256), nullable=False),
        sa.Column("deployment", sa.String(length=128), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("region", sa.String(length=64), nullable=False),
        *_counts(
            "calls",
            "failed",
            "errors",
            "prompt_tokens",
            "completion_tokens",
            "cost",
            "voucher_part",
            "own_part",
            "uncollected",
            "latency_ms",
        ),
        sa.PrimaryKeyConstraint(
            "org_id",
            "hour",
            "key_id",
            "model",
            "deployment",
            "provider",
            "region",
            name=op.f("pk_usage_hourly"),
        ),
    )
    op.create_table(
        "activity_hourly",
        sa.Column("scope", sa.String(length=32), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        *_counts("calls", "failed", "errors", "prompt_tokens", "completion_tokens", "cost", "voucher_part"),
        *_counts(*LATENCY_COLUMNS),
        sa.PrimaryKeyConstraint("scope", "hour", name=op.f("pk_activity_hourly")),
    )

    _backfill()


SUMS = "calls, failed, errors, prompt_tokens, completion_tokens, cost, voucher_part"
CUT = "('upstream_cut', 'client_gone', 'blocked')"


def _backfill() -> None:
    """The rollups of the records there are (as ``dizuo admin rollups rebuild`` would write them)."""
    sqlite = op.get_bind().dialect.name == "sqlite"
    hour = (
        "strftime('%Y-%m-%d %H:00:00.000000', created_at)"
        if sqlite
        else "date_trunc('hour', created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
    )
    edges = (0, *EDGES, *EDGES_MORE, *EDGES_LAST)
    buckets = [
        f"sum(CASE WHEN latency_ms > {low} AND latency_ms <= {high} THEN 1 ELSE 0 END)"
        for low, high in itertools.pairwise(edges)
    ]
    buckets[0] = f"sum(CASE WHEN latency_ms <= {edges[1]} THEN 1 ELSE 0 END)"
    buckets.append(f"sum(CASE WHEN latency_ms > {edges[-1]} THEN 1 ELSE 0 END)")
    zeros = ", ".join(["0"] * len(LATENCY_COLUMNS))
    latency = ", ".join(LATENCY_COLUMNS)
    answered = (
        f"count(*), 0, sum(CASE WHEN status IN {CUT} THEN 1 ELSE 0 END), sum(prompt_tokens),"
        " sum(completion_tokens), sum(cost), sum(voucher_part)"
    )
    op.execute(
        "INSERT INTO usage_hourly (org_id, hour, key_id, model, deployment, provider, region,"
        f" {SUMS}, own_part, uncollected, latency_ms)"
        f" SELECT org_id, {hour}, key_id, model, deployment, provider, region, {answered},"
        " sum(own_part), sum(uncollected), sum(latency_ms) FROM usage_records GROUP BY 1, 2, 3, 4, 5, 6, 7"
    )
    # Failed calls have no deployment: their rows never meet those of answered calls.
    op.execute(
        "INSERT INTO usage_hourly (org_id, hour, key_id, model, deployment, provider, region,"
        f" {SUMS}, own_part, uncollected, latency_ms)"
        f" SELECT org_id, {hour}, key_id, coalesce(model, ''), '', '', '', 0, count(*), 0, 0, 0, 0, 0, 0, 0, 0"
        " FROM failed_calls GROUP BY 1, 2, 3, 4"
    )
    for scope, group in (("org_id", "1, 2"), ("'*0'", "2")):
        op.execute(
            f"INSERT INTO activity_hourly (scope, hour, {SUMS}, {latency})"
            f" SELECT {scope}, {hour}, {answered}, {', '.join(buckets)} FROM usage_records GROUP BY {group}"
        )
        op.execute(
            f"INSERT INTO activity_hourly (scope, hour, {SUMS}, {latency})"
            f" SELECT {scope}, {hour}, 0, count(*), 0, 0, 0, 0, 0, {zeros} FROM failed_calls"
            f" WHERE true GROUP BY {group}"
            " ON CONFLICT (scope, hour) DO UPDATE SET failed = activity_hourly.failed + excluded.failed"
        )


def downgrade() -> None:
    op.drop_table("activity_hourly")
    op.drop_table("usage_hourly")
