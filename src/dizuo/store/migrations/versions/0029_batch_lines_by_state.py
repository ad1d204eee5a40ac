"""Batch lines by state: an index of (batch, status, line)

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-05 17:30:00.000000
"""

from alembic import op

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_batch_lines_batch_id_status_code_line", "batch_lines", ["batch_id", "status_code", "line"]
    )


def downgrade() -> None:
    op.drop_index("ix_batch_lines_batch_id_status_code_line", table_name="batch_lines")
