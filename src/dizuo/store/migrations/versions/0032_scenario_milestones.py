"""Scenario milestones: a taken scenario's construction, what is due when and its evidence

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-05 20:40:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0032"
down_revision = "0031"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scenario_milestones",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("scenario_id", sa.String(32), sa.ForeignKey("scenarios.id"), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("due", sa.Date(), nullable=False),
        sa.Column("done_on", sa.Date(), nullable=True),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("done_by", sa.String(128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_scenario_milestones_scenario_id", "scenario_milestones", ["scenario_id"])


def downgrade() -> None:
    op.drop_index("ix_scenario_milestones_scenario_id", table_name="scenario_milestones")
    op.drop_table("scenario_milestones")
