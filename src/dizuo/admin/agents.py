"""Admin routes of agents: ``/admin/v1/agents`` (an organization's agents: create, change, publish,
delete, with their calls and users of the last 30 days), ``/admin/v1/mcp-servers`` and
``/admin/v1/tool-hosts`` (platform admins), and each organization's enabled MCP servers.

No ``from __future__ import annotations``: FastAPI reads the route annotations at run time.
"""

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from dizuo.accounts import get_org
from dizuo.accounts.members import Actor
from dizuo.accounts.permissions import sees_all_orgs
from dizuo.accounts.service import visible_orgs
from dizuo.admin.schemas import AgentIn, McpServerIn, ToolHostIn
from dizuo.agents.service import AgentNotFound, Agents
from dizuo.errors import RouteNotFound
from dizuo.evalbench.service import EvalService
from dizuo.store import Database

__all__ = ["agent_routes"]


def agent_routes(
    prefix: str,
    db: Database,
    agents: Agents,
    actor: Callable[..., Actor],
    may: Callable[..., None],
    evals: EvalService | None = None,
) -> APIRouter:
    """Return the agents' routes; *may* checks a role as the other admin routes do."""
    router = APIRouter()
    Caller = Annotated[Actor, Depends(actor)]

    def with_usage(view: dict[str, Any], org: str) -> dict[str, Any]:
        return {**view, "organization": org, "last_30_days": agents.usage(view["id"])}

    @router.get(f"{prefix}/agents")
    def list_agents(who: Caller, org: str | None = None) -> list[dict[str, Any]]:
        """The agents of the organizations this member may see (or of *org*), with their calls and
        calling organizations in the last 30 days."""
        may(who, "read agents")
        if org is not None:
            chosen = get_org(db, org)
            may(who, "read agents", org=chosen)
            names = [(chosen.id, chosen.name)]
        else:
            names = [(row["id"], row["name"]) for row in visible_orgs(db, who)]
        views = [(view, name) for org_id, name in names for view in agents.of_org(org_id)]
        used = agents.usages(view["id"] for view, _ in views)  # one query, not one an agent
        return [{**view, "organization": name, "last_30_days": used[view["id"]]} for view, name in views]

    @router.post(f"{prefix}/agents", status_code=201)
    def create_agent(body: AgentIn, who: Caller) -> dict[str, Any]:
        """Create an agent of ``org`` from its ``definition`` (docs/agents.md); checked against the
        platform first, nothing stored on a mistake."""
        org = get_org(db, body.org)
        may(who, "change agents", org=org)
        return with_usage(agents.create(org.id, body.definition), org.name)

    @router.get(f"{prefix}/agents/{{org}}/{{name}}")
    def show_agent(org: str, name: str, who: Caller) -> dict[str, Any]:
        """One agent: its draft, its versions (grade, whether tested), its use in the last 30 days."""
        chosen = get_org(db, org)
        may(who, "read agents", org=chosen)
        return with_usage(agents.show(chosen.id, name), chosen.name)

    @router.put(f"{prefix}/agents/{{org}}/{{name}}")
    def update_agent(org: str, name: str, body: AgentIn, who: Caller) -> dict[str, Any]:
        """Replace the agent's draft (``org`` in the body must name the same organization)."""
        chosen = get_org(db, org)
        may(who, "change agents", org=chosen)
        if body.org != chosen.name:
            raise AgentNotFound(name=name)
        return with_usage(agents.update(chosen.id, name, body.definition), chosen.name)

    @router.post(f"{prefix}/agents/{{org}}/{{name}}/publish")
    def publish_agent(
        org: str, name: str, who: Caller, platform: bool = False, version: int | None = None
    ) -> dict[str, Any]:
        """Make the draft the next version; calls of ``agent/NAME`` run it from now on. With
        ``?platform=true[&version=V]``: list a version for every organization, once the bench graded
        ``agent/NAME@V`` (tool-calling and refusal runs, grade A to C; 400 ``agent_untested``)."""
        chosen = get_org(db, org)
        may(who, "change agents", org=chosen)
        if platform:
            if evals is None:
                raise RouteNotFound(path=f"{prefix}/evals")
            return with_usage(agents.list_on_platform(chosen.id, name, version, evals.catalog()), chosen.name)
        return with_usage(agents.publish(chosen.id, name), chosen.name)

    @router.delete(f"{prefix}/agents/{{org}}/{{name}}", status_code=204)
    def delete_agent(org: str, name: str, who: Caller) -> Response:
        """Delete the agent and its versions (the records of its calls stay)."""
        chosen = get_org(db, org)
        may(who, "change agents", org=chosen)
        agents.delete(chosen.id, name)
        return Response(status_code=204)

    @router.get(f"{prefix}/mcp-servers")
    def list_mcp(who: Caller, org: str | None = None) -> list[dict[str, Any]]:
        """The registered MCP servers; with ``org``, whether it enabled each. Org members see their
        own organization's view."""
        may(who, "read agents")
        if org is None and not sees_all_orgs(who):
            return agents.mcp_servers(who.org_id)
        chosen = get_org(db, org) if org is not None else None
        if chosen is not None:
            may(who, "read agents", org=chosen)
        return agents.mcp_servers(chosen.id if chosen is not None else None)

    @router.post(f"{prefix}/mcp-servers", status_code=201)
    def add_mcp(body: McpServerIn, who: Caller) -> dict[str, Any]:
        """Register (or change) an MCP server: a ``command`` (argv) the platform starts and speaks
        to over stdio, or a streamable HTTP ``url`` (platform admins)."""
        may(who, "change tool access")
        return agents.add_mcp(body.name, body.command, body.url, body.note)

    @router.delete(f"{prefix}/mcp-servers/{{name}}", status_code=204)
    def remove_mcp(name: str, who: Caller) -> Response:
        """Unregister an MCP server (and every organization's enabling of it)."""
        may(who, "change tool access")
        if not agents.remove_mcp(name):
            raise RouteNotFound(path=f"{prefix}/mcp-servers/{name}")
        return Response(status_code=204)

    @router.put(f"{prefix}/orgs/{{org}}/mcp-servers/{{name}}", status_code=204)
    def enable_mcp(org: str, name: str, who: Caller) -> Response:
        """Let the organization's agents use the MCP server."""
        chosen = get_org(db, org)
        may(who, "enable mcp servers", org=chosen)
        agents.enable_mcp(chosen.id, name)
        return Response(status_code=204)

    @router.delete(f"{prefix}/orgs/{{org}}/mcp-servers/{{name}}", status_code=204)
    def disable_mcp(org: str, name: str, who: Caller) -> Response:
        """Stop the organization's agents using the MCP server."""
        chosen = get_org(db, org)
        may(who, "enable mcp servers", org=chosen)
        agents.enable_mcp(chosen.id, name, on=False)
        return Response(status_code=204)

    @router.get(f"{prefix}/tool-hosts")
    def list_hosts(who: Caller) -> list[dict[str, Any]]:
        """The hosts agents' ``http`` tools may reach."""
        may(who, "read agents")
        return agents.hosts()

    @router.post(f"{prefix}/tool-hosts", status_code=201)
    def add_host(body: ToolHostIn, who: Caller) -> dict[str, Any]:
        """Allow ``http`` tools to reach a host (platform admins)."""
        may(who, "change tool access")
        return agents.allow_host(body.host, body.note)

    @router.delete(f"{prefix}/tool-hosts/{{host}}", status_code=204)
    def remove_host(host: str, who: Caller) -> Response:
        """Stop ``http`` tools reaching a host."""
        may(who, "change tool access")
        if not agents.remove_host(host):
            raise RouteNotFound(path=f"{prefix}/tool-hosts/{host}")
        return Response(status_code=204)

    return router
