"""Compute jobs and run-time pools, money jobs hold durably, compute vouchers, scripts per organization

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-05 02:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("organizations") as batch:
        batch.add_column(sa.Column("allow_scripts", sa.Boolean(), server_default=sa.false(), nullable=False))
    with op.batch_alter_table("wallets") as batch:
        batch.add_column(sa.Column("standing", sa.BigInteger(), server_default=sa.text("0"), nullable=False))
    with op.batch_alter_table("vouchers") as batch:
        batch.add_column(sa.Column("pools", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("accelerators", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("standing", sa.BigInteger(), server_default=sa.text("0"), nullable=False))
    op.create_table(
        "leases",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(128), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "compute_jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("org_id", sa.String(32), sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("entrypoint", sa.Text(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("data_class", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("pool", sa.String(64), nullable=True),
        sa.Column("region", sa.String(64), nullable=True),
        sa.Column("accelerator", sa.String(64), nullable=True),
        sa.Column("considered", sa.JSON(), nullable=False),
        sa.Column("blocked", sa.JSON(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("hourly", sa.String(40), nullable=True),
        sa.Column("held", sa.BigInteger(), nullable=False),
        sa.Column("held_own", sa.BigInteger(), nullable=False),
        sa.Column("held_vouchers", sa.JSON(), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("waiting_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("message", sa.String(1000), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("cost", sa.BigInteger(), nullable=True),
        sa.Column("voucher_paid", sa.BigInteger(), nullable=True),
        sa.Column("own_paid", sa.BigInteger(), nullable=True),
        sa.Column("uncollected", sa.BigInteger(), nullable=True),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_compute_jobs_org_id_created_at", "compute_jobs", ["org_id", "created_at"])
    op.create_index("ix_compute_jobs_state", "compute_jobs", ["state"])
    op.create_table(
        "compute_pools",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_compute_pools_updated_at", "compute_pools", ["updated_at"])
    op.create_table(
        "pool_samples",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
        ),
        sa.Column("pool", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("up", sa.Boolean(), nullable=False),
        sa.Column("accelerators_total", sa.Float(), nullable=False),
        sa.Column("accelerators_free", sa.Float(), nullable=False),
        sa.Column("cpus_total", sa.Float(), nullable=False),
        sa.Column("cpus_free", sa.Float(), nullable=False),
        sa.Column("running", sa.Integer(), nullable=False),
        sa.Column("waiting", sa.Integer(), nullable=False),
    )
    op.create_index("ix_pool_samples_at", "pool_samples", ["at"])
    op.create_table(
        "compute_packages",
        sa.Column("uri", sa.String(128), primary_key=True),
        sa.Column("data", sa.LargeBinary(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("compute_packages")
    op.drop_index("ix_pool_samples_at", table_name="pool_samples")
    op.drop_table("pool_samples")
    op.drop_index("ix_compute_pools_updated_at", table_name="compute_pools")
    op.drop_table("compute_pools")
    op.drop_index("ix_compute_jobs_state", table_name="compute_jobs")
    op.drop_index("ix_compute_jobs_org_id_created_at", table_name="compute_jobs")
    op.drop_table("compute_jobs")
    op.drop_table("leases")
    with op.batch_alter_table("vouchers") as batch:
        batch.drop_column("standing")
        batch.drop_column("accelerators")
        batch.drop_column("pools")
    with op.batch_alter_table("wallets") as batch:
        batch.drop_column("standing")
    with op.batch_alter_table("organizations") as batch:
        batch.drop_column("allow_scripts")
