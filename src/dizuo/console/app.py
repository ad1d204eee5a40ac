"""The web console under ``/console/``: server-rendered pages over the services the admin API uses.

No ``from __future__ import annotations`` here: FastAPI reads the route annotations at run time.

Sign-in makes a database session (``accounts/sessions.py``) held in an HttpOnly, SameSite=Lax
cookie; every POST carries the session's CSRF token (a hidden field, or the ``X-CSRF-Token`` header
HTMX sends). The sign-in form itself is protected by a double-submit cookie.
"""

import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import Depends, FastAPI, Form, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from dizuo.accounts.members import verify_password
from dizuo.accounts.sessions import SESSION_HOURS, SignedIn, close_session, open_session
from dizuo.accounts.throttle import Throttle
from dizuo.console import account, bench, knowledge, money, ops, orgs, overview, usage
from dizuo.console.i18n import LANGS
from dizuo.console.web import (
    LANG_COOKIE,
    PREFIX,
    SESSION_COOKIE,
    STATIC,
    Console,
    CsrfFailed,
    SignInRequired,
    language,
    redirect,
    safe_next,
)
from dizuo.errors import DizuoError
from dizuo.evalbench.service import EvalService
from dizuo.kb.service import KnowledgeBases
from dizuo.store import Database

__all__ = ["create_console_app"]

log = logging.getLogger("dizuo.console")
LOGIN_COOKIE = "dizuo_login"  # the sign-in form's double-submit CSRF token
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
) -> FastAPI:
    """Return the console over *db*; dates are shown in *zone*. Evaluation and knowledge-base pages
    are served when their services are given. *secure_cookies* marks the session cookie ``Secure``
    whatever the request's scheme (behind a proxy that ends TLS, the app sees plain http)."""
    console = Console(db, zone, deployments, on_money_change)
    throttle = Throttle(db)
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

    @app.get(f"{PREFIX}/login")
    def login_page(request: Request, next: str | None = None) -> Response:
        return _login_form(console, request, safe_next(next))

    @app.post(f"{PREFIX}/login")
    def login(
        request: Request,
        username: Annotated[str, Form()] = "",
        password: Annotated[str, Form()] = "",
        csrf: Annotated[str, Form()] = "",
        next: Annotated[str, Form()] = "",
    ) -> Response:
        target = safe_next(next)
        expected = request.cookies.get(LOGIN_COOKIE, "")
        if not expected or not secrets.compare_digest(expected, csrf):
            return _login_form(console, request, target, error="login.expired", status=403)
        address = request.client.host if request.client else ""
        refused = throttle.check(username, address)
        if refused is not None:
            response = _login_form(
                console,
                request,
                target,
                error="login.locked",
                error_params={"minutes": max(1, -(-refused.retry_after // 60))},
                status=429,
                username=username,
            )
            response.headers["retry-after"] = str(refused.retry_after)
            return response
        actor = verify_password(db, username.strip(), password)
        if actor is None:
            log.info("console sign-in failed for %r from %s", username, address)
            throttle.failed(username, address)
            return _login_form(console, request, target, error="login.failed", status=401, username=username)
        throttle.succeeded(username, address)
        token, _ = open_session(db, actor)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            token,
            max_age=SESSION_HOURS * 3600,
            path=PREFIX,
            httponly=True,
            samesite="lax",
            secure=secure_cookies or request.url.scheme == "https",
        )
        response.delete_cookie(LOGIN_COOKIE, path=PREFIX)
        return response

    @app.post(f"{PREFIX}/logout")
    def logout(request: Request, _: Annotated[SignedIn, Depends(console.posted)]) -> Response:
        close_session(db, request.cookies.get(SESSION_COOKIE, ""))
        response = redirect(f"{PREFIX}/login")
        response.delete_cookie(SESSION_COOKIE, path=PREFIX)
        return response

    @app.get(f"{PREFIX}/lang/{{lang}}")
    def switch_language(lang: str, next: str | None = None) -> Response:
        """Remember the language in a cookie and go back to the page (not a change of state)."""
        response = RedirectResponse(safe_next(next), status_code=303)
        if lang in LANGS:
            response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, path=PREFIX, samesite="lax")
        return response

    for module in (overview, orgs, money, usage, ops, account):
        app.include_router(module.routes(console))
    if evals is not None:
        app.include_router(bench.routes(console, evals))
    if kbs is not None:
        app.include_router(knowledge.routes(console, kbs))
    return app


def _login_form(
    console: Console,
    request: Request,
    target: str,
    *,
    error: str | None = None,
    error_params: dict[str, object] | None = None,
    status: int = 200,
    username: str = "",
) -> Response:
    token = secrets.token_urlsafe(24)
    response = console.render(
        request,
        "login.html",
        None,
        status=status,
        login_csrf=token,
        next=target,
        error=error,
        error_params=error_params,
        username=username,
    )
    response.set_cookie(LOGIN_COOKIE, token, max_age=3600, path=PREFIX, httponly=True, samesite="strict")
    return response


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
