"""The web console under ``/console/``: server-rendered pages over the services the admin API uses.

No ``from __future__ import annotations`` here: FastAPI reads the route annotations at run time.

Each page's routes live in their own module (sign-in and language in ``signin.py``); every POST
carries the session's CSRF token (a hidden field, or the ``X-CSRF-Token`` header HTMX sends).
"""

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from dizuo.agents.service import Agents
from dizuo.batches.service import Batches
from dizuo.compute.jobs import Jobs
from dizuo.console import (
    account,
    audit,
    bench,
    compute,
    indicators,
    knowledge,
    money,
    ops,
    orgs,
    overview,
    scenarios,
    signin,
    usage,
)
from dizuo.console import agents as console_agents
from dizuo.console import batches as console_batches
from dizuo.console import sandbox as console_sandbox
from dizuo.console.web import (
    PREFIX,
    STATIC,
    Console,
    CsrfFailed,
    SignInRequired,
    language,
)
from dizuo.errors import DizuoError
from dizuo.evalbench.service import EvalService
from dizuo.kb.service import KnowledgeBases
from dizuo.sandbox.jobs import SandboxJobs
from dizuo.sandbox.service import Sandbox
from dizuo.scenarios.suppliers import Suppliers
from dizuo.store import Database

__all__ = ["create_console_app"]

# Scripts only from the platform itself (no inline script runs; the overview's data block is JSON);
# inline styles for ECharts' SVG; never framed by another site (clickjacking of an admin console).
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


def create_console_app(
    db: Database,
    *,
    zone: ZoneInfo,
    deployments: Callable[[], list[dict[str, Any]]] = list,
    on_money_change: Callable[[str], None] | None = None,
    evals: EvalService | None = None,
    kbs: KnowledgeBases | None = None,
    secure_cookies: bool = False,
    aigc_notice: str = "本内容由人工智能生成",
    jobs: Jobs | None = None,
    batches: Batches | None = None,
    agents: Agents | None = None,
    sandbox: Sandbox | None = None,
    suppliers: Suppliers | None = None,
    sandbox_jobs: SandboxJobs | None = None,
) -> FastAPI:
    """Return the console over *db*; dates are shown in *zone*. Evaluation and knowledge-base pages
    are served when their services are given. *secure_cookies* marks the session cookie ``Secure``
    whatever the request's scheme (behind a proxy that ends TLS, the app sees plain http).
    *aigc_notice* is the explicit label shown with the answers pages display."""
    console = Console(db, zone, deployments, on_money_change, aigc_notice)
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=STATIC), name="static")
    _install_error_pages(app, console)

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    @app.get(PREFIX)
    def root() -> Response:
        return RedirectResponse(f"{PREFIX}/", status_code=308)

    app.include_router(signin.routes(console, secure_cookies=secure_cookies))
    for module in (overview, orgs, money, usage, ops, account, audit, indicators):
        app.include_router(module.routes(console))
    app.include_router(scenarios.routes(console, suppliers))
    if evals is not None:
        app.include_router(bench.routes(console, evals))
    if kbs is not None:
        app.include_router(knowledge.routes(console, kbs))
    if jobs is not None:
        app.include_router(compute.routes(console, jobs))
    if batches is not None:
        app.include_router(console_batches.routes(console, batches))
    if agents is not None:
        app.include_router(console_agents.routes(console, agents))
    if sandbox is not None:
        app.include_router(console_sandbox.routes(console, sandbox, sandbox_jobs))
    return app


def _install_error_pages(app: FastAPI, console: Console) -> None:
    def signed(request: Request) -> Any:
        return getattr(request.state, "signed", None)

    @app.exception_handler(SignInRequired)
    def sign_in(request: Request, exc: SignInRequired) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        url = f"{PREFIX}/login?next={quote(target, safe='')}"
        if request.headers.get("hx-request"):
            return Response(status_code=401, headers={"HX-Redirect": url})
        return RedirectResponse(url, status_code=303)

    @app.exception_handler(CsrfFailed)
    def csrf(request: Request, exc: CsrfFailed) -> Response:
        return console.error_page(request, 403, console.words(request).t("error.csrf"), signed(request))

    @app.exception_handler(DizuoError)
    def dizuo_error(request: Request, exc: DizuoError) -> Response:
        words = console.words(request)
        message = words.t("error.denied") if exc.status == 403 else exc.message(language(request))
        return console.error_page(request, exc.status, message, signed(request))

    @app.exception_handler(StarletteHTTPException)
    def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        words = console.words(request)
        message = words.t("error.not_found") if exc.status_code == 404 else str(exc.detail)
        return console.error_page(request, exc.status_code, message, signed(request))

    @app.exception_handler(RequestValidationError)
    def invalid(request: Request, exc: RequestValidationError) -> Response:
        detail = "; ".join(f"{'.'.join(map(str, e['loc'][1:]))}: {e['msg']}" for e in exc.errors())
        return console.error_page(request, 400, detail, signed(request))
