"""Scenario lists: scenarios and their moves

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-05 11:10:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scenarios",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("org_id", sa.String(32), sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("industry", sa.String(8), nullable=False),
        sa.Column("district", sa.String(64), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("data_available", sa.Text(), nullable=False),
        sa.Column("budget_min", sa.String(32), nullable=True),
        sa.Column("budget_max", sa.String(32), nullable=True),
        sa.Column("expected", sa.Text(), nullable=False),
        sa.Column("contact", sa.String(200), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("list_name", sa.String(64), nullable=True),
        sa.Column("taker_org_id", sa.String(32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_scenarios_org_id", "scenarios", ["org_id"])
    op.create_index("ix_scenarios_status", "scenarios", ["status"])
    op.create_table(
        "scenario_moves",
        sa.Column("scenario_id", sa.String(32), primary_key=True),
        sa.Column("seq", sa.Integer(), primary_key=True),
        sa.Column("from_status", sa.String(24), nullable=False),
        sa.Column("to_status", sa.String(24), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("scenario_moves")
    op.drop_index("ix_scenarios_status", table_name="scenarios")
    op.drop_index("ix_scenarios_org_id", table_name="scenarios")
    op.drop_table("scenarios")
