"""Sandbox jobs: grants that let compute jobs read a dataset in a pool, and what such jobs wrote out,
held until the dataset's owner releases it

Revision ID: 0034
Revises: 0033
Create Date: 2026-12-05 23:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0034"
down_revision = "0033"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sandbox_grants") as batch:
        batch.add_column(sa.Column("jobs_allowed", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "sandbox_releases",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("job_id", sa.String(32), nullable=False),
        sa.Column("grant_id", sa.String(32), nullable=False),
        sa.Column("dataset_id", sa.String(32), sa.ForeignKey("sandbox_datasets.id"), nullable=False),
        sa.Column("org_id", sa.String(32), sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("job_state", sa.String(16), nullable=True),
        sa.Column("logs", sa.Text(), nullable=False),
        sa.Column("rows_read", sa.Integer(), nullable=False),
        sa.Column("decided_by", sa.String(128), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("job_id", name=op.f("uq_sandbox_releases_job_id")),
    )
    op.create_index("ix_sandbox_releases_dataset_id", "sandbox_releases", ["dataset_id"])
    op.create_index("ix_sandbox_releases_org_id", "sandbox_releases", ["org_id"])
    op.create_table(
        "sandbox_outputs",
        sa.Column("release_id", sa.String(32), sa.ForeignKey("sandbox_releases.id"), primary_key=True),
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("findings", sa.JSON(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("sandbox_outputs")
    op.drop_index("ix_sandbox_releases_org_id", table_name="sandbox_releases")
    op.drop_index("ix_sandbox_releases_dataset_id", table_name="sandbox_releases")
    op.drop_table("sandbox_releases")
    with op.batch_alter_table("sandbox_grants") as batch:
        batch.drop_column("jobs_allowed")
