"""Agents (智能体): the agents an organization's members see (their own and those listed for every
organization) with owner, description, tools, version, grade, and calls and calling organizations in
the last 30 days; platform admins and auditors see every organization's, and the adoption indicator:
active agents and the share of organizations that called at least one, by industry and district.

The builder (``/console/agents/edit``): members who may change an organization's agents write a
definition (YAML, as ``dizuo agent create`` takes it), save it as the draft and publish it as the
next version; a definition the service refuses comes back with the error beside it, as typed."""

import asyncio
from typing import Annotated, Any
from urllib.parse import quote

import yaml
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from dizuo.accounts.permissions import allowed, sees_all_orgs
from dizuo.accounts.service import visible_orgs
from dizuo.accounts.sessions import SignedIn
from dizuo.agents.service import Agents, adoption
from dizuo.console.web import PREFIX, Console, redirect
from dizuo.errors import DizuoError

__all__ = ["routes"]

# What the builder starts from: every field of a definition, the tools as comments to fill in.
TEMPLATE = """name: 质检助手
model: {model}
description: 回答检验规范与历史质量问题
instructions: |
  你是船用柴油机零件的质检助手。先检索规范，再回答，并注明出处。
tools: []
  # - kb_search: {{knowledge_bases: [质检规范], k: 5}}
  # - http: {{name: erp_lookup, url: https://erp.example.cn/api/parts, method: GET}}
  # - mcp: {{server: parts-db}}
max_steps: 8
max_cost: 0.50
data_class: general
visibility: org
# suites: [质检红线]   # visibility: platform 时，列入全平台目录前须跑过的本组织评测题库
"""


def routes(console: Console, agents: Agents) -> APIRouter:
    router = APIRouter()
    Signed = Annotated[SignedIn, Depends(console.signed_in)]
    Posted = Annotated[SignedIn, Depends(console.posted)]

    @router.get(f"{PREFIX}/agents")
    async def listed(request: Request, signed: Signed, org: str = "") -> Response:
        org, org_id = await asyncio.to_thread(console.scoped_org, signed, org, "read agents")
        everyone = sees_all_orgs(signed.actor)
        found = await asyncio.to_thread(agents.catalog, org_id)
        indicator = await asyncio.to_thread(adoption, agents.db) if everyone and not org else None
        names = [o["name"] for o in await asyncio.to_thread(visible_orgs, console.db, signed.actor)]
        return console.render(
            request,
            "agents.html",
            signed,
            agents=found,
            org=org,
            orgs=sorted(names) if everyone else [],
            adoption=indicator,
            may_change=(bool(org_id) and allowed(signed.actor, "change agents", org_id=org_id))
            or (not everyone and allowed(signed.actor, "change agents", org_id=signed.actor.org_id)),
        )

    def builder(request: Request, signed: SignedIn, org: str, status: int = 200, **context: Any) -> Response:
        names = [o["name"] for o in visible_orgs(console.db, signed.actor)]
        return console.render(
            request, "agent_edit.html", signed, status, org=org, orgs=sorted(names), **context
        )

    @router.get(f"{PREFIX}/agents/edit")
    async def edit(
        request: Request, signed: Signed, org: str = "", name: str = "", done: str = ""
    ) -> Response:
        org, org_id = await asyncio.to_thread(console.scoped_org, signed, org, "change agents")
        if org_id is None:  # a platform admin chooses the organization first
            return await asyncio.to_thread(builder, request, signed, org, definition="", original="")
        if name:
            shown = await asyncio.to_thread(agents.show, org_id, name)
            text = yaml.safe_dump(shown["definition"], allow_unicode=True, sort_keys=False)
            saved = done if done in ("saved", "published") else ""
            return await asyncio.to_thread(
                builder, request, signed, org, definition=text, original=name, agent=shown, saved=saved
            )
        models = console.chat_models()
        text = TEMPLATE.format(model=models[0] if models else "deepseek-chat")
        return await asyncio.to_thread(builder, request, signed, org, definition=text, original="")

    @router.post(f"{PREFIX}/agents/edit")
    async def save(
        request: Request,
        signed: Posted,
        org: Annotated[str, Form()] = "",
        original: Annotated[str, Form()] = "",
        definition: Annotated[str, Form()] = "",
        publish: Annotated[str, Form()] = "",
    ) -> Response:
        org, org_id = await asyncio.to_thread(console.scoped_org, signed, org, "change agents")
        typed = {"definition": definition, "original": original}
        if org_id is None:
            return await asyncio.to_thread(builder, request, signed, org, 400, problem=console.words(request).t("agents.edit.org"), **typed)  # fmt: skip

        def store() -> str:
            saved = (
                agents.update(org_id, original, definition) if original else agents.create(org_id, definition)
            )
            if publish:
                agents.publish(org_id, saved["name"])
            return str(saved["name"])

        try:
            name = await asyncio.to_thread(store)
        except DizuoError as exc:
            words = console.words(request)
            shown = await asyncio.to_thread(agents.show, org_id, original) if original else None
            return await asyncio.to_thread(
                builder,
                request,
                signed,
                org,
                exc.status,
                problem=exc.message(words.lang),
                agent=shown,
                **typed,
            )
        done = "published" if publish else "saved"
        return redirect(f"{PREFIX}/agents/edit?org={quote(org)}&name={quote(name)}&done={done}")

    return router
