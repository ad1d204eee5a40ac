"""Agents: definitions, published versions, the steps of their calls, the hosts http tools may reach,
the MCP servers agents may use and the organizations that enabled each

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-05 09:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("org_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("org_id", "name", name="uq_agents_org_id_name"),
    )
    op.create_table(
        "agent_versions",
        sa.Column("agent_id", sa.String(32), primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("visibility", sa.String(16), nullable=False),
        sa.Column("grade", sa.String(16), nullable=True),
        sa.Column("run_id", sa.String(40), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "agent_steps",
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("step", sa.Integer(), primary_key=True),
        sa.Column("agent_id", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.String(32), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("call_request_id", sa.String(64), nullable=True),
        sa.Column("ms", sa.Integer(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_agent_steps_agent_id_created_at", "agent_steps", ["agent_id", "created_at"])
    op.create_table(
        "agent_tool_hosts",
        sa.Column("host", sa.String(253), primary_key=True),
        sa.Column("note", sa.String(500), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "agent_mcp_servers",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("command", sa.JSON(), nullable=True),
        sa.Column("url", sa.String(2000), nullable=True),
        sa.Column("note", sa.String(500), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "agent_mcp_enabled",
        sa.Column("org_id", sa.String(32), primary_key=True),
        sa.Column("server", sa.String(64), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("agent_mcp_enabled")
    op.drop_table("agent_mcp_servers")
    op.drop_table("agent_tool_hosts")
    op.drop_index("ix_agent_steps_agent_id_created_at", table_name="agent_steps")
    op.drop_table("agent_steps")
    op.drop_table("agent_versions")
    op.drop_table("agents")
