"""AIGC labels: the explicit notice per organization or key, and the checks of labels

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-04 22:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("organizations") as batch:
        batch.add_column(sa.Column("label", sa.String(16), nullable=True))
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("label", sa.String(16), nullable=True))
    op.create_table(
        "label_checks",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("result", sa.String(24), nullable=False),
        sa.Column("content_id", sa.String(64), nullable=True),
        sa.Column("org_id", sa.String(32), nullable=True),
        sa.Column("checked_by", sa.String(128), nullable=False),
    )
    op.create_index("ix_label_checks_at", "label_checks", ["at"])


def downgrade() -> None:
    op.drop_index("ix_label_checks_at", table_name="label_checks")
    op.drop_table("label_checks")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("label")
    with op.batch_alter_table("organizations") as batch:
        batch.drop_column("label")
