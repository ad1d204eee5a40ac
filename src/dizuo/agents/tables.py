"""Tables of the agents: each organization's agents (the draft being edited), the versions it
published (immutable), the steps of every call of an agent (which model call or tool, how long), and
the hosts a platform admin allows ``http`` tools to reach, the MCP servers a platform admin registered
and the organizations that enabled each."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from dizuo.store import Base, utcnow

__all__ = ["Agent", "AgentStep", "AgentVersion", "McpEnabled", "McpServer", "ToolHost"]


class Agent(Base):
    """An organization's agent: its draft definition and the number of its newest published version
    (0: none yet)."""

    __tablename__ = "agents"
    __table_args__ = (UniqueConstraint("org_id", "name", name="uq_agents_org_id_name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # agt_<hex>
    org_id: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(64))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AgentVersion(Base):
    """A published version: the definition as it was then, never changed; its evaluation, if any."""

    __tablename__ = "agent_versions"

    agent_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    visibility: Mapped[str] = mapped_column(String(16))  # org | platform
    grade: Mapped[str | None] = mapped_column(String(16))  # the evaluation's grade; None: untested
    run_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AgentStep(Base):
    """One step of one call of an agent: a model call (its own request id and usage record) or a
    tool's run."""

    __tablename__ = "agent_steps"
    __table_args__ = (Index("ix_agent_steps_agent_id_created_at", "agent_id", "created_at"),)

    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the agent call's
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent_id: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer)
    org_id: Mapped[str] = mapped_column(String(32))
    key_id: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(8))  # model | tool
    name: Mapped[str] = mapped_column(String(256))  # the model alias or the tool's name
    call_request_id: Mapped[str | None] = mapped_column(String(64))  # a model call's usage record
    ms: Mapped[int] = mapped_column(Integer)
    ok: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ToolHost(Base):
    """A host ``http`` tools may reach (exactly this name; a platform admin adds it)."""

    __tablename__ = "agent_tool_hosts"

    host: Mapped[str] = mapped_column(String(253), primary_key=True)
    note: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class McpServer(Base):
    """An MCP server agents' ``mcp`` tools may use: a command the platform starts (stdio) or a
    streamable HTTP URL."""

    __tablename__ = "agent_mcp_servers"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    command: Mapped[list[str] | None] = mapped_column(JSON)  # argv, for stdio
    url: Mapped[str | None] = mapped_column(String(2000))  # for streamable HTTP
    note: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class McpEnabled(Base):
    """An organization that enabled an MCP server for its agents."""

    __tablename__ = "agent_mcp_enabled"

    org_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    server: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
