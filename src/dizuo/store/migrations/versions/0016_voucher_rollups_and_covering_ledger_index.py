"""voucher rollups and a covering index for account sums

``voucher_hourly`` holds what each voucher paid per hour, provider and region (voucher reports read
it), filled from the ledger there is. The ledger's account index gains the kind and amount, so that
a statement's balances and top-ups are summed from the index alone.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 17:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "voucher_hourly",
        sa.Column("voucher_id", sa.String(length=32), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("region", sa.String(length=64), nullable=False),
        sa.Column("calls", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
        sa.Column("paid", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
        sa.PrimaryKeyConstraint("voucher_id", "hour", "provider", "region", name=op.f("pk_voucher_hourly")),
    )
    sqlite = op.get_bind().dialect.name == "sqlite"
    hour = (
        "strftime('%Y-%m-%d %H:00:00.000000', l.created_at)"
        if sqlite
        else "date_trunc('hour', l.created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
    )
    op.execute(
        "INSERT INTO voucher_hourly (voucher_id, hour, provider, region, calls, paid)"
        f" SELECT l.voucher_id, {hour}, coalesce(u.provider, '?'), coalesce(u.region, '?'), count(*),"
        " -sum(l.amount) FROM ledger_entries l LEFT JOIN usage_records u ON u.request_id = l.request_id"
        " WHERE l.kind = 'charge' AND l.voucher_id IS NOT NULL GROUP BY 1, 2, 3, 4"
    )
    op.drop_index("ix_ledger_entries_account_created_at", table_name="ledger_entries")
    op.create_index(
        "ix_ledger_entries_account_created_at", "ledger_entries", ["account", "created_at", "kind", "amount"]
    )


def downgrade() -> None:
    op.drop_index("ix_ledger_entries_account_created_at", table_name="ledger_entries")
    op.create_index("ix_ledger_entries_account_created_at", "ledger_entries", ["account", "created_at"])
    op.drop_table("voucher_hourly")
