"""Scenarios: the GB/T 4754 division a need names, beside its section

Revision ID: 0036
Revises: 0035
Create Date: 2026-12-05 23:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0036"
down_revision = "0035"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("scenarios") as batch:
        batch.add_column(sa.Column("division", sa.String(2), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("scenarios") as batch:
        batch.drop_column("division")
