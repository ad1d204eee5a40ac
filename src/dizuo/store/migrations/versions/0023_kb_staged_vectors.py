"""Vectors a re-embedding job stages for a knowledge base until it commits them all at once

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-05 06:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kb_staged_vectors",
        sa.Column("job_id", sa.String(32), nullable=False),
        sa.Column("chunk_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["chunk_id"],
            ["kb_chunks.id"],
            name=op.f("fk_kb_staged_vectors_chunk_id_kb_chunks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("job_id", "chunk_id", name=op.f("pk_kb_staged_vectors")),
    )


def downgrade() -> None:
    op.drop_table("kb_staged_vectors")
