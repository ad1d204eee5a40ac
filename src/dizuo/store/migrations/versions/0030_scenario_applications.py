"""Scenario applications: suppliers' applications to take a published scenario

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-05 18:10:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scenario_applications",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("scenario_id", sa.String(32), sa.ForeignKey("scenarios.id"), nullable=False),
        sa.Column("org_id", sa.String(32), sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("proposal", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("decided_by", sa.String(128), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("scenario_id", "org_id", name="uq_scenario_applications_scenario_org"),
    )
    op.create_index("ix_scenario_applications_scenario_id", "scenario_applications", ["scenario_id"])


def downgrade() -> None:
    op.drop_index("ix_scenario_applications_scenario_id", table_name="scenario_applications")
    op.drop_table("scenario_applications")
