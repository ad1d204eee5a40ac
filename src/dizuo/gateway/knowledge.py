"""``/v1/knowledge-bases``: an organization's knowledge bases, reached with its API key.

No ``from __future__ import annotations`` here: FastAPI reads the route annotations at run time.

Embeddings and chat answers go through this platform's own ``/v1`` with the caller's key, so they
are metered, limited, guarded and routed like any call; the gateway's refusals (402, 429, a guard
block) reach the client as the gateway gave them. Documents are uploaded as the raw request body
with ``?filename=`` (``curl --data-binary @规范.pdf``); the body is read no further than the limit.
"""

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, Literal
from urllib.parse import unquote

import aiohttp
from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from dizuo.accounts import KeyCache
from dizuo.accounts.keys import KeyInfo
from dizuo.compliance.labels import Labeling, read_label
from dizuo.errors import AuthenticationFailed
from dizuo.gateway.uploads import read_limited
from dizuo.http_errors import install_error_handlers
from dizuo.kb.answers import Answer, ask
from dizuo.kb.index import Filters
from dizuo.kb.models import GatewayModels, GatewayRefused
from dizuo.kb.service import KnowledgeBases
from dizuo.limits import Limit, Limiter, Subject

__all__ = ["PREFIX", "Outgoing", "create_kb_app"]


class Outgoing:
    """The one HTTP client (aiohttp) of the routes the knowledge-base app serves and of what runs
    beside them (compute pools, agents' loop), made on first use inside the running loop."""

    def __init__(self) -> None:
        self._sessions: list[aiohttp.ClientSession] = []

    def session(self) -> aiohttp.ClientSession:
        if not self._sessions:
            timeout = aiohttp.ClientTimeout(total=None, sock_read=600)
            self._sessions.append(aiohttp.ClientSession(timeout=timeout))
        return self._sessions[0]

    async def close(self) -> None:
        for session in self._sessions:
            await session.close()
        self._sessions.clear()


PREFIX = "/v1/knowledge-bases"


class KbIn(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    description: str = Field("", max_length=2000)
    embedding_model: str | None = Field(None, max_length=256)


class FiltersIn(BaseModel):
    sources: list[str] = Field(default_factory=list, description="Only these documents (file names).")
    clause_prefix: str | None = Field(None, description="Only clauses under this one: 4 matches 4.1, 4.2.1 …")
    kind: Literal["text", "table"] | None = None

    def filters(self) -> Filters:
        return Filters(frozenset(self.sources), self.clause_prefix or None, self.kind)


class QueryIn(BaseModel):
    question: str = Field(min_length=1, max_length=4000)
    k: int = Field(5, ge=1, le=50)
    mode: Literal["hybrid", "bm25", "vector"] = "hybrid"
    filters: FiltersIn = Field(default_factory=FiltersIn)


class AskIn(BaseModel):
    question: str = Field(min_length=1, max_length=4000)
    model: str | None = Field(None, description="Chat model alias; default: the platform's kb_chat_model.")
    k: int = Field(5, ge=1, le=20)
    filters: FiltersIn = Field(default_factory=FiltersIn)


def _requests_only(subjects: tuple[Subject, ...]) -> tuple[Subject, ...]:
    return tuple(Subject(s.id, Limit(rpm=s.limit.rpm)) for s in subjects if s.limit.rpm is not None)


def _label(
    labeling: Labeling | None, labels: list[dict[str, Any] | None], answer: Answer
) -> dict[str, str] | None:
    """The label of a cited answer: the model's answer's label (checked) sealed anew over the cited
    text; None for an extractive answer (quoted passages, no model's text) or where labels are off."""
    if labeling is None or not answer.found or not labels or labels[-1] is None:
        return None
    generated = read_label(labels[-1])
    if generated is None or labeling.labeler.open(generated) is None:
        return None
    return labeling.labeler.reseal(generated, answer.answer)


def create_kb_app(
    kbs: KnowledgeBases,
    keys: KeyCache,
    gateway_url: str,
    chat_model: str,
    limiter: Limiter,
    outgoing: Outgoing,
    writes: Callable[[str, str], bool] | None = None,
    labeling: Labeling | None = None,
) -> FastAPI:
    """Return the knowledge-base API; model calls go to *gateway_url* (this platform's ``/v1``)
    through *outgoing*'s client.
    Each route needs its scope (``kb:read``, ``kb:write``) and counts against the key's limits.
    *writes(model, lang)* says whether a chat model writes a language (answers in another are
    extractive)."""
    app = FastAPI(
        title="dizuo knowledge bases",
        version="1",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        redirect_slashes=False,
    )
    install_error_handlers(app)
    session = outgoing.session

    @app.exception_handler(GatewayRefused)
    async def _relay(request: Request, exc: GatewayRefused) -> Response:
        return Response(exc.body, status_code=exc.status, headers=exc.headers, media_type="application/json")

    app.state.session = session  # the one HTTP client of the routes this app serves (the compute pools')

    class Caller:
        def __init__(self, info: KeyInfo, token: str, language: str | None) -> None:
            self.info = info
            self.token = token
            self.language = language

        @property
        def org(self) -> str:
            return self.info.org_id

        def models(self) -> GatewayModels:
            headers = {"accept-language": self.language} if self.language else {}
            return GatewayModels(gateway_url, self.token, session(), headers)

    async def caller(
        authorization: Annotated[str | None, Header()] = None,
        accept_language: Annotated[str | None, Header()] = None,
    ) -> Caller:
        if not authorization:
            raise AuthenticationFailed("missing_api_key")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        info = await keys.lookup(token) if scheme.lower() == "bearer" and token else None
        if info is None:
            raise AuthenticationFailed()
        return Caller(info, token, accept_language)

    def scoped(scope: str | None, hold: bool = False) -> Callable[..., AsyncIterator[Caller]]:
        """The caller with *scope*, counted against its key's and organization's requests per
        minute; with *hold*, also holding a concurrency slot until the answer. Routes that call this
        platform's /v1 with the key (embeddings, answers) do not hold one: those calls take their own,
        and a key limited to one call at a time would wait on itself."""

        async def dependency(
            authorization: Annotated[str | None, Header()] = None,
            accept_language: Annotated[str | None, Header()] = None,
        ) -> AsyncIterator[Caller]:
            who = await caller(authorization, accept_language)
            if scope is not None:  # None: any key of the platform
                who.info.require(scope)
            subjects = who.info.limits if hold else _requests_only(who.info.limits)
            permit = await limiter.acquire(subjects, 0) if subjects else None
            try:
                yield who
            finally:
                if permit is not None:
                    await limiter.release(permit, 0)

        return dependency

    Reader = Annotated[Caller, Depends(scoped("kb:read"))]
    Writer = Annotated[Caller, Depends(scoped("kb:write"))]
    app.state.scoped = scoped  # routes of other apps served by this one (the inspection auditor)

    async def run(fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)

    # Both spellings of the collection answer directly (clients join paths differently); no redirects.
    @app.get(PREFIX)
    @app.get(PREFIX + "/", include_in_schema=False)
    async def list_kbs(who: Reader) -> dict[str, Any]:
        return {"object": "list", "data": await run(kbs.list_bases, who.org)}

    @app.post(PREFIX, status_code=201)
    @app.post(PREFIX + "/", status_code=201, include_in_schema=False)
    async def create_kb(body: KbIn, who: Writer) -> dict[str, Any]:
        created: dict[str, Any] = await run(
            kbs.create, who.org, body.name, body.description, body.embedding_model
        )
        return created

    @app.get(PREFIX + "/{name}")
    async def get_kb(name: str, who: Reader) -> dict[str, Any]:
        view: dict[str, Any] = await run(kbs.describe, who.org, name)
        view["documents_list"] = await run(kbs.documents, who.org, name)
        return view

    @app.delete(PREFIX + "/{name}")
    async def delete_kb(name: str, who: Writer) -> dict[str, Any]:
        await run(kbs.delete, who.org, name)
        return {"name": name, "deleted": True}

    @app.get(PREFIX + "/{name}/documents")
    async def list_documents(name: str, who: Reader) -> dict[str, Any]:
        return {"object": "list", "data": await run(kbs.documents, who.org, name)}

    @app.post(PREFIX + "/{name}/documents", status_code=201)
    async def add_document(
        name: str,
        request: Request,
        who: Writer,
        filename: Annotated[str, Query(min_length=1, max_length=512)],
    ) -> dict[str, Any]:
        filename = unquote(filename)
        data = await read_limited(request, kbs.max_bytes, filename)
        added: dict[str, Any] = await kbs.add(who.org, name, filename, data, who.models())
        return added

    @app.delete(PREFIX + "/{name}/documents/{source}")
    async def delete_document(name: str, source: str, who: Writer) -> dict[str, Any]:
        await run(kbs.delete_document, who.org, name, source)
        return {"source": source, "deleted": True}

    @app.post(PREFIX + "/{name}/query")
    async def query(name: str, body: QueryIn, who: Reader) -> dict[str, Any]:
        passages = await kbs.query(
            who.org,
            name,
            body.question,
            who.models(),
            k=body.k,
            mode=body.mode,
            filters=body.filters.filters(),
        )
        return {"object": "list", "data": [p.public() for p in passages]}

    @app.post(PREFIX + "/{name}/ask")
    async def ask_kb(name: str, body: AskIn, who: Reader) -> dict[str, Any]:
        model = body.model or chat_model  # the gateway checks that the key may use it
        models = who.models()
        answer = await ask(
            kbs,
            who.org,
            name,
            body.question,
            models,
            model,
            k=body.k,
            filters=body.filters.filters(),
            writes=writes,
        )
        document = answer.public()
        document["model"] = model
        label = _label(labeling, models.labels, answer)
        if label is not None:
            document["aigc"] = label
        return document

    return app
