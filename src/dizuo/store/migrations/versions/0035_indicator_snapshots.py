"""Indicators: each closed month's document, kept as it was when the month closed

Revision ID: 0035
Revises: 0034
Create Date: 2026-12-05 23:10:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0035"
down_revision = "0034"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "indicator_snapshots",
        sa.Column("month", sa.String(7), primary_key=True),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("taken_by", sa.String(128), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("indicator_snapshots")
