"""Scenario reviews: the program office's rubric and each reviewer's scores

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-05 20:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0031"
down_revision = "0030"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scenario_rubric",
        sa.Column("key", sa.String(32), primary_key=True),
        sa.Column("name_zh", sa.String(64), nullable=False),
        sa.Column("name_en", sa.String(64), nullable=False),
        sa.Column("weight", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
    )
    op.create_table(
        "scenario_reviews",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("scenario_id", sa.String(32), sa.ForeignKey("scenarios.id"), nullable=False),
        sa.Column("reviewer", sa.String(128), nullable=False),
        sa.Column("scores", sa.JSON(), nullable=False),
        sa.Column("total", sa.Float(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("rubric", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("scenario_id", "reviewer", name="uq_scenario_reviews_scenario_reviewer"),
    )
    op.create_index("ix_scenario_reviews_scenario_id", "scenario_reviews", ["scenario_id"])


def downgrade() -> None:
    op.drop_index("ix_scenario_reviews_scenario_id", table_name="scenario_reviews")
    op.drop_table("scenario_reviews")
    op.drop_table("scenario_rubric")
