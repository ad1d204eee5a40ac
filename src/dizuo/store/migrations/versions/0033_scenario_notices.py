"""Scenario notices: what each side of the scenario lists hears in the console, and what it has seen

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-05 21:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0033"
down_revision = "0032"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scenario_notices",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("audience", sa.String(16), nullable=False),
        sa.Column("org_id", sa.String(32), nullable=True),
        sa.Column("scenario_id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("text_zh", sa.Text(), nullable=False),
        sa.Column("text_en", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_scenario_notices_audience_org_id", "scenario_notices", ["audience", "org_id", "id"])
    op.create_table(
        "notice_seen",
        sa.Column("member_id", sa.String(32), primary_key=True),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("notice_seen")
    op.drop_index("ix_scenario_notices_audience_org_id", table_name="scenario_notices")
    op.drop_table("scenario_notices")
