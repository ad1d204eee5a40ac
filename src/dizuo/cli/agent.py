"""``dizuo agent``: an organization's agents. ``create``, ``update``, ``publish``, ``list``, ``show`` and
``delete`` act on the platform's database (``--org``), as ``dizuo admin`` does, and check a definition
against the platform's models, knowledge bases and allowed hosts; ``run`` calls an agent through a
running ``dizuo serve`` with an API key, as any client would. ``dizuo admin tool-host`` keeps the
hosts ``http`` tools may reach."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import orjson

from dizuo.cli.common import database, reported
from dizuo.cli.remote import connected, print_json

__all__ = ["add_admin_commands", "agent"]


def _agents(db: Any) -> Any:
    from dizuo.agents.service import Agents
    from dizuo.config import load_config
    from dizuo.routing.catalog import Catalog
    from dizuo.routing.deployments import served
    from dizuo.settings import Settings

    catalog = Catalog(db, load_config(Settings().config))
    return Agents(db, lambda: [d.model for d in served(catalog.effective()) if d.mode == "chat"])


def _org(db: Any, name: str) -> str:
    from dizuo.accounts.service import get_org

    return str(get_org(db, name).id)


def _line(view: dict[str, Any]) -> str:
    version = view["version"] or "-"
    tools = ",".join(next(iter(tool)) for tool in view["definition"]["tools"]) or "-"
    return f"{view['name']}\tv{version}\t{view['definition']['model']}\t{tools}\t{view['id']}"


@click.group("agent")
def agent() -> None:
    """Agents (智能体): definitions, published versions, calls."""


org_option = click.option("--org", required=True, help="The organization that owns the agent.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
file_option = click.option(
    "--file",
    "path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The definition (YAML).",
)


@agent.command("create")
@org_option
@file_option
@json_option
def create_command(org: str, path: Path, as_json: bool) -> None:
    """Create an agent from its definition; prints its id. Publish it to call it."""
    with reported(), database() as db:
        made = _agents(db).create(_org(db, org), path.read_bytes())
    print_json(made) if as_json else click.echo(made["id"])


@agent.command("update")
@org_option
@click.argument("name")
@file_option
@json_option
def update_command(org: str, name: str, path: Path, as_json: bool) -> None:
    """Replace an agent's draft (its published versions stay as they are)."""
    with reported(), database() as db:
        view = _agents(db).update(_org(db, org), name, path.read_bytes())
    print_json(view) if as_json else click.echo(_line(view))


@agent.command("publish")
@org_option
@click.argument("name")
@click.option(
    "--platform",
    is_flag=True,
    help="List a published version for every organization, once the bench graded it (visibility: platform).",
)
@click.option("--version", type=int, help="With --platform: the version (the newest by default).")
@json_option
def publish_command(org: str, name: str, platform: bool, version: int | None, as_json: bool) -> None:
    """Make the draft the next version: calls of agent/NAME run it from now on. With --platform, list
    a version for every organization: it needs the bench's tool-calling and refusal runs against
    agent/NAME@V and a grade of A to C."""
    with reported(), database() as db:
        if platform:
            view = _agents(db).list_on_platform(_org(db, org), name, version, _catalog(db))
        else:
            view = _agents(db).publish(_org(db, org), name)
    if as_json:
        print_json(view)
        return
    shown = next(v for v in view["versions"] if v["version"] == (version or view["version"]))
    where = f"\t{shown['visibility']}\t{shown['grade']}" if platform else ""
    click.echo(f"{shown['model']}{where}")


def _catalog(db: Any) -> list[dict[str, Any]]:
    from dizuo.evalbench.service import EvalService
    from dizuo.settings import Settings

    return EvalService(db, Settings().data_dir).catalog()


@agent.command("list")
@org_option
@json_option
def list_command(org: str, as_json: bool) -> None:
    """The organization's agents: name, newest version, model, tools, id."""
    with reported(), database() as db:
        views = _agents(db).of_org(_org(db, org))
    if as_json:
        print_json({"object": "list", "data": views})
        return
    for view in views:
        click.echo(_line(view))


@agent.command("show")
@org_option
@click.argument("name")
def show_command(org: str, name: str) -> None:
    """One agent: its draft and its versions (JSON)."""
    with reported(), database() as db:
        print_json(_agents(db).show(_org(db, org), name))


@agent.command("delete")
@org_option
@click.argument("name")
def delete_command(org: str, name: str) -> None:
    """Delete an agent and its versions (the records of its calls stay)."""
    with reported(), database() as db:
        _agents(db).delete(_org(db, org), name)
    click.echo(name)


@agent.command("run")
@connected
@click.argument("name")
@click.argument("question")
@click.option(
    "--steps", is_flag=True, help="Also print each step (model call, tool) as it happens, on stderr."
)
def run_command(base_url: str, api_key: str | None, name: str, question: str, steps: bool) -> None:
    """Ask agent NAME (or NAME@VERSION) QUESTION through the platform; prints the answer."""
    import urllib.error
    import urllib.request

    from dizuo.cli.common import fail

    if not api_key:
        fail(
            "需要 API 密钥：--api-key 或环境变量 DIZUO_API_KEY / an API key is needed: --api-key or DIZUO_API_KEY"
        )
    model = name if name.startswith("agent/") else f"agent/{name}"
    body = {
        "model": model,
        "messages": [{"role": "user", "content": question}],
        "stream": True,
        "stream_options": {"include_steps": steps},
    }
    request = urllib.request.Request(
        base_url.rstrip("/") + "/chat/completions",
        data=orjson.dumps(body),
        method="POST",
        headers={"authorization": f"Bearer {api_key}", "content-type": "application/json"},
    )
    try:
        response = urllib.request.urlopen(request, timeout=600)
    except urllib.error.HTTPError as exc:
        fail(f"{exc.code}: {_message(exc.read())}")
    except urllib.error.URLError as exc:
        fail(f"无法连接 {base_url}（dizuo serve 是否在运行？）/ cannot reach {base_url}: {exc.reason}")
    with response:
        for raw in response:
            line = raw.decode("utf-8").strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = orjson.loads(line[6:])
            if "error" in event:
                click.echo()
                fail(_message(orjson.dumps(event)))
            step = (event.get("dizuo") or {}).get("step")
            if step is not None:
                arguments = f" {step['arguments']}" if step.get("arguments") else ""
                click.echo(
                    f"[{step['step']}] {step['kind']} {step['name']}{arguments} {step['ms']} ms", err=True
                )
            for choice in event.get("choices") or []:
                click.echo((choice.get("delta") or {}).get("content") or "", nl=False)
    click.echo()
    sys.stdout.flush()


@agent.group("mcp")
def mcp_group() -> None:
    """The MCP servers an organization's agents may use (registered by platform admins)."""


@mcp_group.command("list")
@org_option
@json_option
def mcp_list(org: str, as_json: bool) -> None:
    """The registered MCP servers and whether ORG enabled each."""
    with reported(), database() as db:
        servers = _agents(db).mcp_servers(_org(db, org))
    if as_json:
        print_json({"object": "list", "data": servers})
        return
    for row in servers:
        where = row["url"] or " ".join(row["command"] or [])
        click.echo(f"{row['name']}\t{'enabled' if row['enabled'] else '-'}\t{where}\t{row['note']}")


@mcp_group.command("enable")
@org_option
@click.argument("server")
def mcp_enable(org: str, server: str) -> None:
    """Let ORG's agents use SERVER's tools (mcp: {server: SERVER})."""
    with reported(), database() as db:
        _agents(db).enable_mcp(_org(db, org), server)
    click.echo(server)


@mcp_group.command("disable")
@org_option
@click.argument("server")
def mcp_disable(org: str, server: str) -> None:
    """Stop ORG's agents using SERVER (their next calls are not offered its tools)."""
    with reported(), database() as db:
        _agents(db).enable_mcp(_org(db, org), server, on=False)
    click.echo(server)


def _message(raw: bytes) -> str:
    try:
        return str(orjson.loads(raw)["error"]["message"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return raw.decode("utf-8", "replace")[:500]


def add_admin_commands(admin: click.Group) -> None:
    """``dizuo admin tool-host add|remove|list`` and ``dizuo admin mcp-server add|remove|list``."""

    @admin.group("tool-host")
    def tool_host() -> None:
        """The hosts agents' http tools may reach (exactly these names)."""

    @tool_host.command("add")
    @click.argument("host")
    @click.option("--note", default="", help="Why it is allowed, whose it is.")
    def add(host: str, note: str) -> None:
        """Allow http tools to reach HOST."""
        with reported(), database() as db:
            click.echo(_agents(db).allow_host(host, note)["host"])

    @tool_host.command("remove")
    @click.argument("host")
    def remove(host: str) -> None:
        """Stop http tools reaching HOST (agents that name it are refused at their next call's tool)."""
        with reported(), database() as db:
            _agents(db).remove_host(host)
        click.echo(host)

    @admin.group("mcp-server")
    def mcp_server() -> None:
        """The MCP servers agents may use: a command the platform starts (stdio) or a URL."""

    @mcp_server.command("add")
    @click.argument("name")
    @click.option("--command", "command", help="The command that starts it, speaking MCP on stdio.")
    @click.option("--url", help="Its streamable HTTP endpoint (https://…/mcp).")
    @click.option("--note", default="", help="What it is, whose it is.")
    def mcp_add(name: str, command: str | None, url: str | None, note: str) -> None:
        """Register (or change) the MCP server NAME; organizations enable it with dizuo agent mcp enable."""
        import shlex

        with reported(), database() as db:
            _agents(db).add_mcp(name, shlex.split(command) if command is not None else None, url, note)
        click.echo(name)

    @mcp_server.command("remove")
    @click.argument("name")
    def mcp_remove(name: str) -> None:
        """Unregister NAME (agents that name it are not offered its tools from their next call)."""
        with reported(), database() as db:
            _agents(db).remove_mcp(name)
        click.echo(name)

    @mcp_server.command("list")
    @json_option
    def mcp_listed(as_json: bool) -> None:
        """The registered MCP servers."""
        with reported(), database() as db:
            servers = _agents(db).mcp_servers()
        if as_json:
            print_json({"object": "list", "data": servers})
            return
        for row in servers:
            click.echo(f"{row['name']}\t{row['url'] or ' '.join(row['command'] or [])}\t{row['note']}")

    @tool_host.command("list")
    @json_option
    def listed(as_json: bool) -> None:
        """The allowed hosts."""
        with reported(), database() as db:
            hosts = _agents(db).hosts()
        if as_json:
            print_json({"object": "list", "data": hosts})
            return
        for row in hosts:
            click.echo(f"{row['host']}\t{row['note']}")
