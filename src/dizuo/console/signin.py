"""Signing in and out of the console, and choosing its language.

Sign-in makes a database session (``accounts/sessions.py``) held in an HttpOnly, SameSite=Lax
cookie. The sign-in form itself is protected by a double-submit cookie, and repeated failures lock
the username (``accounts/throttle.py``).

No ``from __future__ import annotations`` here: FastAPI reads the route annotations at run time.
"""

import logging
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from dizuo.accounts.members import verify_password
from dizuo.accounts.sessions import SESSION_HOURS, SignedIn, close_session, open_session
from dizuo.accounts.throttle import Throttle
from dizuo.console.i18n import LANGS
from dizuo.console.web import LANG_COOKIE, PREFIX, SESSION_COOKIE, Console, redirect, safe_next

__all__ = ["routes"]

log = logging.getLogger("dizuo.console")
LOGIN_COOKIE = "dizuo_login"  # the sign-in form's double-submit CSRF token


def routes(console: Console, *, secure_cookies: bool = False) -> APIRouter:
    """The sign-in, sign-out and language routes; *secure_cookies* marks the session cookie
    ``Secure`` whatever the request's scheme."""
    router = APIRouter()
    db = console.db
    throttle = Throttle(db)

    @router.get(f"{PREFIX}/login")
    def login_page(request: Request, next: str | None = None) -> Response:
        return _login_form(console, request, safe_next(next))

    @router.post(f"{PREFIX}/login")
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
        token, _ = open_session(db, actor, address)
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

    @router.post(f"{PREFIX}/logout")
    def logout(request: Request, _: Annotated[SignedIn, Depends(console.posted)]) -> Response:
        close_session(db, request.cookies.get(SESSION_COOKIE, ""))
        response = redirect(f"{PREFIX}/login")
        response.delete_cookie(SESSION_COOKIE, path=PREFIX)
        return response

    @router.get(f"{PREFIX}/lang/{{lang}}")
    def switch_language(lang: str, next: str | None = None) -> Response:
        """Remember the language in a cookie and go back to the page (not a change of state)."""
        response = RedirectResponse(safe_next(next), status_code=303)
        if lang in LANGS:
            response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, path=PREFIX, samesite="lax")
        return response

    return router


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
