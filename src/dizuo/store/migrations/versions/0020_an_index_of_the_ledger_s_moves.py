"""an index of the ledger's legs that are not a call's charge

A statement's balances sum an account's top-ups, grants and revocations from it, and its charges
from the hourly rollups, instead of every call's leg since the account began. Charges are not in
it: calls pay nothing for it.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-04 22:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

MOVES = sa.text("kind <> 'charge'")


def upgrade() -> None:
    op.create_index(
        "ix_ledger_entries_moves",
        "ledger_entries",
        ["account", "created_at", "kind", "amount"],
        postgresql_where=MOVES,
        sqlite_where=MOVES,
    )


def downgrade() -> None:
    op.drop_index("ix_ledger_entries_moves", table_name="ledger_entries")
