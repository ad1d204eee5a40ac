"""Agents: an organization's definitions, checked against the platform before anything is stored;
published versions; what ``agent/NAME[@VERSION]`` names for a caller; the hosts ``http`` tools may
reach; the steps of each call.

A definition is checked twice: its shape (:func:`dizuo.agents.spec.parse`), then what depends on the
platform: its model is a chat model here (and not an agent), its knowledge bases are the
organization's, each ``http`` tool's host was allowed by a platform admin. Every refusal names the
field; nothing is stored.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, or_, select

from dizuo.accounts.tables import Organization
from dizuo.agents.spec import (
    SERVER_NAME,
    AgentSpec,
    HttpTool,
    InspectionAuditTool,
    KbSearchTool,
    McpTool,
    SandboxQueryTool,
    bad,
    names_standard,
    parse,
)
from dizuo.agents.tables import Agent, AgentStep, AgentVersion, McpEnabled, McpServer, ToolHost
from dizuo.errors import DizuoError, InvalidRequest
from dizuo.kb.tables import KbDocument, KnowledgeBase
from dizuo.sandbox.tables import SandboxDataset
from dizuo.store import Database, utcnow

__all__ = [
    "PREFIX",
    "AgentConflict",
    "AgentNotFound",
    "Agents",
    "McpEndpoint",
    "Resolved",
    "Step",
    "adoption",
    "split_alias",
    "unpinned",
]

PREFIX = "agent/"  # agents are called as models named agent/NAME or agent/NAME@VERSION


class AgentNotFound(DizuoError):
    status = 404
    type = "invalid_request_error"
    default_code = "agent_not_found"


class AgentConflict(DizuoError):
    status = 409
    type = "invalid_request_error"
    default_code = "agent_exists"


@dataclass(frozen=True)
class Resolved:
    """The published version a call of an agent runs."""

    agent_id: str
    org_id: str  # the owner's
    name: str
    version: int
    spec: AgentSpec

    @property
    def alias(self) -> str:
        return f"{PREFIX}{self.name}@{self.version}"


@dataclass(frozen=True)
class Step:
    """One step of a call, as recorded."""

    kind: str  # model | tool
    name: str
    ms: int
    ok: bool
    call_request_id: str | None = None


@dataclass(frozen=True)
class McpEndpoint:
    """How to reach a registered MCP server: a command to start (stdio) or a streamable HTTP URL."""

    name: str
    command: tuple[str, ...] | None
    url: str | None


def unpinned(alias: str) -> str:
    """``agent/NAME@3`` → ``agent/NAME``: what a key's model list names."""
    return PREFIX + split_alias(alias)[0]


def split_alias(alias: str) -> tuple[str, int | None]:
    """``agent/NAME@3`` → (NAME, 3); ``agent/NAME`` → (NAME, None)."""
    rest = alias[len(PREFIX) :]
    name, at, version = rest.rpartition("@")
    if at and version.isdigit():
        return name, int(version)
    return rest, None


class Agents:
    """The agents of every organization.

    *chat_models* says which aliases are chat models on the platform now (the router changes at run
    time).
    """

    def __init__(self, db: Database, chat_models: Callable[[], Iterable[str]]) -> None:
        self.db = db
        self.chat_models = chat_models

    # ---- definitions -----------------------------------------------------------------------

    def create(self, org_id: str, source: str | bytes | dict[str, Any]) -> dict[str, Any]:
        spec = self.check(org_id, parse(source))
        now = utcnow()
        with self.db.session() as session:
            taken = session.scalar(select(Agent.id).where(Agent.org_id == org_id, Agent.name == spec.name))
            if taken is not None:
                raise AgentConflict(name=spec.name)
            agent = Agent(
                id=f"agt_{secrets.token_hex(12)}",
                org_id=org_id,
                name=spec.name,
                spec=spec.public(),
                version=0,
                created_at=now,
                updated_at=now,
            )
            session.add(agent)
            session.flush()
            return self._view(session, agent)

    def update(self, org_id: str, name: str, source: str | bytes | dict[str, Any]) -> dict[str, Any]:
        """Replace the draft of *name* (its published versions stay as they are)."""
        spec = self.check(org_id, parse(source))
        if spec.name != name:
            raise bad("name", f"智能体不能改名（{name} → {spec.name}）", f"an agent cannot be renamed ({name} → {spec.name})")  # fmt: skip
        with self.db.session() as session:
            agent = self._own(session, org_id, name)
            agent.spec = spec.public()
            agent.updated_at = utcnow()
            return self._view(session, agent)

    def publish(self, org_id: str, name: str) -> dict[str, Any]:
        """Make the draft the next version, immutable; calls of ``agent/NAME`` by the organization's
        keys run it from now on. It is listed for every organization only once it passed its
        evaluation (:meth:`list_on_platform`)."""
        with self.db.session() as session:
            agent = self._own(session, org_id, name, lock=True)
            spec = parse(dict(agent.spec))
            self.check(org_id, spec)  # what it names may have gone since it was saved
            agent.version += 1
            session.add(
                AgentVersion(
                    agent_id=agent.id,
                    version=agent.version,
                    spec=agent.spec,
                    visibility="org",
                    created_at=utcnow(),
                )
            )
            agent.updated_at = utcnow()
            return self._view(session, agent, versions=True)

    def list_on_platform(
        self, org_id: str, name: str, version: int | None, catalog: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """List version *version* (the newest when None) of a ``visibility: platform`` agent for every
        organization, once the evaluation bench graded ``agent/NAME@V``: its latest tool-calling and
        refusal runs finished, a run of each of the owner's own suites the definition names
        (``suites``), and its catalog grade (*catalog*, the bench's, over all of them) A to C. 400
        ``agent_untested`` saying what is missing otherwise."""
        with self.db.session() as session:
            agent = self._own(session, org_id, name, lock=True)
            number = version or agent.version
            row = session.get(AgentVersion, (agent.id, number)) if number else None
            if row is None:
                raise bad("version", f"{name} 没有第 {version} 版", f"{name} has no version {version}")
            spec = parse(dict(row.spec))
            if spec.visibility != "platform":
                raise bad("visibility", "该版本的定义是 visibility: org（仅本组织）", "that version's definition says visibility: org")  # fmt: skip
            model = f"{PREFIX}{name}@{number}"
            graded = next((entry for entry in catalog if entry["model"] == model), None)
            runs = graded["runs"] if graded else []
            kinds = {run["kind"] for run in runs}
            missing = [
                suite
                for kind, suite in (("agent", "tool-calling"), ("refusal", "refusal"))
                if kind not in kinds
            ]
            ran = {run["suite"] for run in runs}
            missing += [suite for suite in spec.suites if suite not in ran]
            grade = graded["grade"] if graded else None
            if missing or grade not in ("A", "B", "C"):
                found = (
                    f"缺少 {'、'.join(missing)} 评测 / no {', '.join(missing)} run"
                    if missing
                    else f"评级 {grade or '无'} / grade {grade or 'none'}"
                )
                raise InvalidRequest("agent_untested", model=model, found=found)
            row.visibility, row.grade = "platform", grade
            row.run_id = max(runs, key=lambda run: run["finished_at"] or "")["id"]
            agent.updated_at = utcnow()
            return self._view(session, agent, versions=True)

    def delete(self, org_id: str, name: str) -> dict[str, Any]:
        """Remove the agent and its versions; the records of its calls stay."""
        with self.db.session() as session:
            agent = self._own(session, org_id, name)
            session.execute(delete(AgentVersion).where(AgentVersion.agent_id == agent.id))
            session.delete(agent)
            return {"id": agent.id, "name": name, "deleted": True}

    def of_org(self, org_id: str) -> list[dict[str, Any]]:
        """The organization's agents, by name (Chinese names in pinyin order where the database sorts so)."""
        with self.db.session() as session:
            agents = session.scalars(select(Agent).where(Agent.org_id == org_id).order_by(Agent.name))
            return [self._view(session, agent) for agent in agents]

    def show(self, org_id: str, name: str) -> dict[str, Any]:
        with self.db.session() as session:
            return self._view(session, self._own(session, org_id, name), versions=True)

    def _own(self, session: Any, org_id: str, name: str, lock: bool = False) -> Agent:
        query = select(Agent).where(Agent.org_id == org_id, Agent.name == name)
        agent = session.scalar(query.with_for_update() if lock else query)
        if agent is None:
            raise AgentNotFound(name=name)
        return agent  # type: ignore[no-any-return]

    def _view(self, session: Any, agent: Agent, versions: bool = False) -> dict[str, Any]:
        view: dict[str, Any] = {
            "id": agent.id,
            "object": "agent",
            "name": agent.name,
            "model": f"{PREFIX}{agent.name}",
            "version": agent.version or None,
            "definition": agent.spec,
            "created_at": int(agent.created_at.timestamp()),
            "updated_at": int(agent.updated_at.timestamp()),
        }
        if versions:
            rows = session.scalars(
                select(AgentVersion).where(AgentVersion.agent_id == agent.id).order_by(AgentVersion.version)
            )
            view["versions"] = [
                {
                    "version": row.version,
                    "model": f"{PREFIX}{agent.name}@{row.version}",
                    "visibility": row.visibility,
                    "grade": row.grade,
                    "evaluation": row.run_id,
                    "tested": row.grade is not None,
                    "created_at": int(row.created_at.timestamp()),
                }
                for row in rows
            ]
        return view

    # ---- what a definition names -----------------------------------------------------------

    def check(self, org_id: str, spec: AgentSpec) -> AgentSpec:
        """Check what *spec* names against the platform; 400 naming the field otherwise."""
        if spec.model.startswith(PREFIX):
            raise bad("model", "智能体不能以另一个智能体为模型", "an agent's model cannot be another agent")
        if spec.model not in set(self.chat_models()):
            raise bad("model", f"本平台没有对话模型 {spec.model}", f"there is no chat model {spec.model} on this platform")  # fmt: skip
        with self.db.session() as session:
            kbs = set(session.scalars(select(KnowledgeBase.name).where(KnowledgeBase.org_id == org_id)))
            hosts = set(session.scalars(select(ToolHost.host)))
            servers = set(session.scalars(select(McpServer.name)))
            enabled = set(session.scalars(select(McpEnabled.server).where(McpEnabled.org_id == org_id)))
            datasets = set(session.scalars(select(SandboxDataset.name)))
            # The documents' names, read only for a definition with the auditor's tool.
            auditing = any(isinstance(tool, InspectionAuditTool) for tool in spec.tools)
            sources = (
                set(
                    session.scalars(
                        select(KbDocument.source)
                        .join(KnowledgeBase, KnowledgeBase.id == KbDocument.kb_id)
                        .where(KnowledgeBase.org_id == org_id)
                    )
                )
                if auditing
                else set()
            )
        for n, tool in enumerate(spec.tools):
            if isinstance(tool, KbSearchTool):
                for m, kb in enumerate(tool.knowledge_bases):
                    if kb not in kbs:
                        raise bad(f"tools[{n}].kb_search.knowledge_bases[{m}]", f"本组织没有知识库 {kb}", f"this organization has no knowledge base {kb}")  # fmt: skip
            elif isinstance(tool, SandboxQueryTool):
                for m, dataset in enumerate(tool.datasets):
                    if dataset not in datasets:
                        raise bad(f"tools[{n}].sandbox_query.datasets[{m}]", f"数据沙盒中没有数据集 {dataset}", f"the data sandbox has no dataset {dataset}")  # fmt: skip
            elif isinstance(tool, InspectionAuditTool):
                if not any(names_standard(source, tool.standard) for source in sources):
                    raise bad(f"tools[{n}].inspection_audit.standard", f"本组织的知识库里没有文件名含 {tool.standard} 的标准（先把标准文件加入知识库）", f"no document of this organization's knowledge bases has {tool.standard} in its file name (add the standard's file to a knowledge base)")  # fmt: skip
                if tool.defects is not None and tool.defects not in kbs:
                    raise bad(f"tools[{n}].inspection_audit.defects", f"本组织没有知识库 {tool.defects}", f"this organization has no knowledge base {tool.defects}")  # fmt: skip
            elif isinstance(tool, McpTool) and tool.server not in servers:
                raise bad(f"tools[{n}].mcp.server", f"平台没有登记 MCP 服务 {tool.server}（平台管理员可用 dizuo admin mcp-server add 登记）", f"the platform has no MCP server {tool.server} (a platform admin registers one with dizuo admin mcp-server add)")  # fmt: skip
            elif isinstance(tool, McpTool) and tool.server not in enabled:
                raise bad(f"tools[{n}].mcp.server", f"本组织没有启用 MCP 服务 {tool.server}（dizuo agent mcp enable --org 组织 {tool.server}）", f"this organization has not enabled the MCP server {tool.server} (dizuo agent mcp enable --org ORG {tool.server})")  # fmt: skip
            elif isinstance(tool, HttpTool) and tool.host not in hosts:
                raise bad(f"tools[{n}].http.url", f"主机 {tool.host} 不在平台允许的工具主机之列（平台管理员可用 dizuo admin tool-host add 添加）", f"the host {tool.host} is not one the platform allows tools to reach (a platform admin adds it with dizuo admin tool-host add)")  # fmt: skip
        return spec

    # ---- calls -----------------------------------------------------------------------------

    def resolve(self, org_id: str, alias: str) -> Resolved:
        """The version ``agent/NAME[@V]`` runs for a caller of *org_id*: its own agent, or one published
        for every organization; 404 otherwise (another organization's private agent included)."""
        name, version = split_alias(alias)
        with self.db.session() as session:
            query = (
                select(Agent, AgentVersion)
                .join(AgentVersion, AgentVersion.agent_id == Agent.id)
                .where(
                    Agent.name == name,
                    or_(Agent.org_id == org_id, AgentVersion.visibility == "platform"),
                    AgentVersion.version == (version if version is not None else Agent.version),
                )
                .order_by((Agent.org_id == org_id).desc())
                .limit(1)
            )
            found = session.execute(query).first()
        if found is None:
            raise AgentNotFound(name=alias[len(PREFIX) :])
        agent, row = found
        return Resolved(agent.id, agent.org_id, agent.name, row.version, parse(dict(row.spec)))

    def prepare(self, org_id: str, alias: str) -> tuple[Resolved, set[str], dict[str, McpEndpoint]]:
        """What a call of ``agent/NAME[@V]`` needs, read at once: the version it runs, the hosts
        ``http`` tools may reach, and the MCP servers of its tools that the owner enabled."""
        resolved = self.resolve(org_id, alias)
        with self.db.session() as session:
            hosts = set(session.scalars(select(ToolHost.host)))
        servers = [tool.server for tool in resolved.spec.tools if isinstance(tool, McpTool)]
        return resolved, hosts, self.mcp_endpoints(resolved.org_id, servers)

    def callable_names(self, org_id: str) -> list[str]:
        """The ``agent/NAME`` models a key of *org_id* may call (:func:`published_names`)."""
        return published_names(self.db, org_id)

    def record(
        self, request_id: str, resolved: Resolved, org_id: str, key_id: str, steps: list[Step]
    ) -> None:
        """Write the steps of one call."""
        if not steps:
            return
        now = utcnow()
        with self.db.session() as session:
            session.add_all(
                AgentStep(
                    request_id=request_id,
                    step=n,
                    agent_id=resolved.agent_id,
                    version=resolved.version,
                    org_id=org_id,
                    key_id=key_id,
                    kind=step.kind,
                    name=step.name[:256],
                    call_request_id=step.call_request_id,
                    ms=step.ms,
                    ok=step.ok,
                    created_at=now,
                )
                for n, step in enumerate(steps)
            )

    def usage(self, agent_id: str, days: int = 30) -> dict[str, int]:
        """Calls of the agent and the organizations that made them in the last *days*."""
        return self.usages([agent_id], days)[agent_id]

    def usages(self, agent_ids: Iterable[str], days: int = 30) -> dict[str, dict[str, int]]:
        """:meth:`usage` of each of *agent_ids* (zeros included), in one query."""
        since = utcnow() - dt.timedelta(days=days)
        query = (
            select(
                AgentStep.agent_id,
                func.count(func.distinct(AgentStep.request_id)),
                func.count(func.distinct(AgentStep.org_id)),
            )
            .where(AgentStep.created_at >= since)
            .group_by(AgentStep.agent_id)
        )
        wanted = list(agent_ids)
        found = dict.fromkeys(wanted, (0, 0))
        if wanted:
            with self.db.session() as session:
                for agent_id, calls, orgs in session.execute(query.where(AgentStep.agent_id.in_(wanted))):
                    found[agent_id] = (int(calls), int(orgs))
        return {
            agent_id: {"calls": calls, "organizations": orgs} for agent_id, (calls, orgs) in found.items()
        }

    # ---- the catalog and the adoption indicator ------------------------------------------------

    def catalog(self, org_id: str | None, days: int = 30) -> list[dict[str, Any]]:
        """The agents *org_id* sees: its own and those listed for every organization (all of them
        when None), each with its owner, description, tools, newest version, whether (and with what
        grade) a version is listed for every organization, and its calls and calling organizations
        in the last *days*; by name."""
        with self.db.session() as session:
            listed = select(AgentVersion.agent_id).where(AgentVersion.visibility == "platform")
            query = select(Agent, Organization.name).join(Organization, Organization.id == Agent.org_id)
            if org_id is not None:
                query = query.where(or_(Agent.org_id == org_id, Agent.id.in_(listed)))
            rows = session.execute(query.order_by(Agent.name)).all()
            grades = {
                agent_id: grade
                for agent_id, grade in session.execute(
                    select(AgentVersion.agent_id, AgentVersion.grade)
                    .where(AgentVersion.visibility == "platform")
                    .order_by(AgentVersion.version)
                )
            }
        used = self.usages([agent.id for agent, _ in rows], days)
        found = []
        for agent, owner in rows:
            spec = agent.spec
            found.append(
                {
                    "id": agent.id,
                    "name": agent.name,
                    "model": f"{PREFIX}{agent.name}",
                    "owner": owner,
                    "own": agent.org_id == org_id,
                    "description": spec.get("description", ""),
                    "tools": [next(iter(tool)) for tool in spec.get("tools", [])],
                    "version": agent.version or None,
                    "platform": agent.id in grades,
                    "grade": grades.get(agent.id),
                    **used[agent.id],  # calls, organizations
                }
            )
        return found

    # ---- the hosts http tools may reach ------------------------------------------------------

    def allow_host(self, host: str, note: str = "") -> dict[str, Any]:
        host = host.strip().lower().rstrip(".")
        if not host or "/" in host or ":" in host or " " in host:
            raise bad("host", "只写主机名（如 erp.internal），不带协议、端口或路径", "a host name alone (erp.internal): no scheme, port or path")  # fmt: skip
        with self.db.session() as session:
            row = session.get(ToolHost, host)
            if row is None:
                session.add(ToolHost(host=host, note=note[:500], created_at=utcnow()))
            else:
                row.note = note[:500]
        return {"host": host, "note": note[:500]}

    def remove_host(self, host: str) -> bool:
        with self.db.session() as session:
            result = session.execute(delete(ToolHost).where(ToolHost.host == host.strip().lower()))
            return bool(getattr(result, "rowcount", 0))

    def hosts(self) -> list[dict[str, Any]]:
        with self.db.session() as session:
            return [{"host": row.host, "note": row.note} for row in session.scalars(select(ToolHost).order_by(ToolHost.host))]  # fmt: skip

    # ---- MCP servers ---------------------------------------------------------------------------

    def add_mcp(
        self, name: str, command: list[str] | None = None, url: str | None = None, note: str = ""
    ) -> dict[str, Any]:
        """Register (or change) the MCP server *name*: a command the platform starts and speaks to
        over stdio, or a streamable HTTP *url*."""
        if not SERVER_NAME.match(name):
            raise bad(
                "name", "只用字母、数字、- 和 _（至多 64 个）", "letters, digits, - and _ only (at most 64)"
            )
        if (command is None) == (url is None):
            raise bad("command", "给出 command（stdio）或 url（streamable HTTP）之一", "give a command (stdio) or a url (streamable HTTP), one of them")  # fmt: skip
        if url is not None and not url.startswith(("http://", "https://")):
            raise bad("url", "须是 http:// 或 https:// 地址", "must be an http:// or https:// URL")
        if command is not None and not command:
            raise bad("command", "不能为空", "must not be empty")
        with self.db.session() as session:
            row = session.get(McpServer, name) or McpServer(name=name, created_at=utcnow())
            row.command, row.url, row.note = command, url, note[:500]
            session.add(row)
        return {"name": name, "command": command, "url": url, "note": note[:500]}

    def remove_mcp(self, name: str) -> bool:
        with self.db.session() as session:
            session.execute(delete(McpEnabled).where(McpEnabled.server == name))
            result = session.execute(delete(McpServer).where(McpServer.name == name))
            return bool(getattr(result, "rowcount", 0))

    def mcp_servers(self, org_id: str | None = None) -> list[dict[str, Any]]:
        """The registered MCP servers; with *org_id*, whether that organization enabled each."""
        with self.db.session() as session:
            rows = list(session.scalars(select(McpServer).order_by(McpServer.name)))
            enabled = (
                set(session.scalars(select(McpEnabled.server).where(McpEnabled.org_id == org_id)))
                if org_id
                else set()
            )
        listed = []
        for row in rows:
            view: dict[str, Any] = {
                "name": row.name,
                "command": row.command,
                "url": row.url,
                "note": row.note,
            }
            if org_id:
                view["enabled"] = row.name in enabled
            listed.append(view)
        return listed

    def enable_mcp(self, org_id: str, name: str, on: bool = True) -> None:
        """Let the organization's agents use the MCP server *name* (or stop them: *on* False)."""
        with self.db.session() as session:
            if session.get(McpServer, name) is None:
                raise bad("server", f"平台没有登记 MCP 服务 {name}", f"the platform has no MCP server {name}")
            row = session.get(McpEnabled, (org_id, name))
            if on and row is None:
                session.add(McpEnabled(org_id=org_id, server=name, created_at=utcnow()))
            elif not on and row is not None:
                session.delete(row)

    def mcp_endpoints(self, org_id: str, names: Iterable[str]) -> dict[str, McpEndpoint]:
        """The registered servers among *names* that *org_id* has enabled now."""
        wanted = set(names)
        if not wanted:
            return {}
        with self.db.session() as session:
            rows = session.scalars(
                select(McpServer)
                .join(McpEnabled, McpEnabled.server == McpServer.name)
                .where(McpEnabled.org_id == org_id, McpServer.name.in_(wanted))
            )
            return {
                row.name: McpEndpoint(row.name, tuple(row.command) if row.command else None, row.url)
                for row in rows
            }


def adoption(db: Database, days: int = 30) -> dict[str, Any]:
    """The agents indicator: agents called in the last *days*, and the organizations that called
    at least one, of all, overall and by industry and by district."""
    since = utcnow() - dt.timedelta(days=days)
    with db.session() as session:
        active = int(
            session.scalar(
                select(func.count(func.distinct(AgentStep.agent_id))).where(AgentStep.created_at >= since)
            )
            or 0
        )
        users = set(session.scalars(select(AgentStep.org_id).where(AgentStep.created_at >= since).distinct()))
        orgs = session.execute(select(Organization.id, Organization.industry, Organization.district)).all()

    def split(by: int) -> list[dict[str, Any]]:
        groups: dict[str, list[int]] = {}
        for row in orgs:
            counts = groups.setdefault(row[by] or "", [0, 0])
            counts[0] += row[0] in users
            counts[1] += 1
        return [
            {"name": name, "using": using, "organizations": total, "share": using / total}
            for name, (using, total) in sorted(groups.items())
        ]

    using = sum(1 for row in orgs if row[0] in users)
    return {
        "days": days,
        "active_agents": active,
        "using": using,
        "organizations": len(orgs),
        "share": using / len(orgs) if orgs else 0.0,
        "by_industry": split(1),
        "by_district": split(2),
    }


def published_names(db: Database, org_id: str | None) -> list[str]:
    """The ``agent/NAME`` models *org_id* may call, by name: its own agents with a published version
    and those whose newest version is listed for every organization (what ``agent/NAME`` resolves to);
    every published one when None."""
    with db.session() as session:
        query = (
            select(Agent.name)
            .join(AgentVersion, AgentVersion.agent_id == Agent.id)
            .where(AgentVersion.version == Agent.version)
        )
        if org_id is not None:
            query = query.where(or_(Agent.org_id == org_id, AgentVersion.visibility == "platform"))
        return sorted({f"{PREFIX}{name}" for name in session.scalars(query)})
