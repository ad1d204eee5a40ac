"""leaner indexes on the journal's tables

Every call writes a usage record and ledger legs, so every index on them costs each call a page
write. Dropped: indexes no query reads (ledger tx_id and org_id, wallets version); account and
org_id become (account, created_at) and (org_id, created_at), which is how statements read them.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-24 05:46:03.910346
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_entries_account"))
        batch_op.drop_index(batch_op.f("ix_ledger_entries_org_id"))
        batch_op.drop_index(batch_op.f("ix_ledger_entries_tx_id"))
        batch_op.create_index("ix_ledger_entries_account_created_at", ["account", "created_at"], unique=False)

    with op.batch_alter_table("usage_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_usage_records_org_id"))
        batch_op.create_index("ix_usage_records_org_id_created_at", ["org_id", "created_at"], unique=False)

    with op.batch_alter_table("wallets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_wallets_version"))


def downgrade() -> None:
    with op.batch_alter_table("wallets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_wallets_version"), ["version"], unique=False)

    with op.batch_alter_table("usage_records", schema=None) as batch_op:
        batch_op.drop_index("ix_usage_records_org_id_created_at")
        batch_op.create_index(batch_op.f("ix_usage_records_org_id"), ["org_id"], unique=False)

    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_ledger_entries_account_created_at")
        batch_op.create_index(batch_op.f("ix_ledger_entries_tx_id"), ["tx_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_ledger_entries_org_id"), ["org_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_ledger_entries_account"), ["account"], unique=False)
