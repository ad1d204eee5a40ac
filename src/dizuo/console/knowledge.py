"""An organization's knowledge bases and their documents; uploads and questions go through the real
``/v1/knowledge-bases`` API from the page, with a key the member pastes (as in the playground), so
they are metered, limited and guarded like any client's."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from dizuo.accounts import get_org
from dizuo.accounts.permissions import authorize
from dizuo.accounts.sessions import SignedIn
from dizuo.console.web import PREFIX, Console
from dizuo.kb.service import KnowledgeBases

__all__ = ["routes"]


def routes(console: Console, kbs: KnowledgeBases) -> APIRouter:
    router = APIRouter()
    Signed = Annotated[SignedIn, Depends(console.signed_in)]

    @router.get(f"{PREFIX}/orgs/{{org}}/kbs")
    def knowledge_bases(request: Request, signed: Signed, org: str) -> Response:
        found = get_org(console.db, org)
        authorize(signed.actor, "read knowledge bases", org_id=found.id)
        bases = kbs.list_bases(found.id)
        documents = {kb["name"]: kbs.documents(found.id, kb["name"]) for kb in bases}
        return console.render(
            request,
            "kbs.html",
            signed,
            org=found.name,
            org_id=found.id,
            bases=bases,
            documents=documents,
            models=console.chat_models(),
            english_only={
                d["model"]
                for d in console.deployments()
                if d["mode"] == "chat" and d.get("languages") == ["en"]
            },
        )

    return router
