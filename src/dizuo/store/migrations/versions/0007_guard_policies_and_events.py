"""guard policies and events

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 17:03:16.686681
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "guard_events",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("org_id", sa.String(length=32), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=True),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("model", sa.String(length=256), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_guard_events")),
    )
    with op.batch_alter_table("guard_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_guard_events_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_guard_events_org_id"), ["org_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_guard_events_request_id"), ["request_id"], unique=False)

    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("guard", sa.JSON(), nullable=True))

    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("guard", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.drop_column("guard")

    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("guard")

    with op.batch_alter_table("guard_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_guard_events_request_id"))
        batch_op.drop_index(batch_op.f("ix_guard_events_org_id"))
        batch_op.drop_index(batch_op.f("ix_guard_events_created_at"))

    op.drop_table("guard_events")
