"""Data sandbox: datasets, access requests, grants and queries

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-05 15:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sandbox_datasets",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("owner_org_id", sa.String(32), sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("classification", sa.String(16), nullable=False),
        sa.Column("personal", sa.Boolean(), nullable=False),
        sa.Column("columns", sa.JSON(), nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("schedule", sa.String(64), nullable=False),
        sa.Column("store_file", sa.String(256), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.UniqueConstraint("name", name=op.f("uq_sandbox_datasets_name")),
    )
    op.create_index("ix_sandbox_datasets_owner_org_id", "sandbox_datasets", ["owner_org_id"])
    op.create_table(
        "sandbox_requests",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("dataset_id", sa.String(32), sa.ForeignKey("sandbox_datasets.id"), nullable=False),
        sa.Column("org_id", sa.String(32), sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("until", WHEN, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
    )
    op.create_index("ix_sandbox_requests_org_id", "sandbox_requests", ["org_id"])
    op.create_index("ix_sandbox_requests_dataset_status", "sandbox_requests", ["dataset_id", "status"])
    op.create_table(
        "sandbox_grants",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("dataset_id", sa.String(32), sa.ForeignKey("sandbox_datasets.id"), nullable=False),
        sa.Column("org_id", sa.String(32), sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("request_id", sa.String(32), nullable=True),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("allowed_columns", sa.JSON(), nullable=False),
        sa.Column("min_group", sa.Integer(), nullable=False),
        sa.Column("rows_allowed", sa.Boolean(), nullable=False),
        sa.Column("epsilon", sa.Float(), nullable=True),
        sa.Column("epsilon_spent", sa.Float(), nullable=False),
        sa.Column("query_budget", sa.Integer(), nullable=False),
        sa.Column("queries_used", sa.Integer(), nullable=False),
        sa.Column("expires_at", WHEN, nullable=True),
        sa.Column("revoked_at", WHEN, nullable=True),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
    )
    op.create_index("ix_sandbox_grants_org_id", "sandbox_grants", ["org_id"])
    op.create_index("ix_sandbox_grants_dataset_org", "sandbox_grants", ["dataset_id", "org_id"])
    op.create_table(
        "sandbox_queries",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("grant_id", sa.String(32), nullable=True),
        sa.Column("dataset_id", sa.String(32), nullable=True),
        sa.Column("org_id", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("sql", sa.Text(), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(64), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("kind", sa.String(16), nullable=True),
        sa.Column("filter_sql", sa.Text(), nullable=True),
        sa.Column("group_by", sa.JSON(), nullable=True),
        sa.Column("rows_out", sa.Integer(), nullable=False),
        sa.Column("suppressed", sa.Integer(), nullable=False),
        sa.Column("epsilon", sa.Float(), nullable=False),
        sa.Column("ms", sa.Integer(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
    )
    op.create_index("ix_sandbox_queries_dataset_id", "sandbox_queries", ["dataset_id"])
    op.create_index("ix_sandbox_queries_org_id", "sandbox_queries", ["org_id"])
    op.create_index("ix_sandbox_queries_grant_created", "sandbox_queries", ["grant_id", "created_at"])


def downgrade() -> None:
    op.drop_table("sandbox_queries")
    op.drop_table("sandbox_grants")
    op.drop_table("sandbox_requests")
    op.drop_table("sandbox_datasets")
