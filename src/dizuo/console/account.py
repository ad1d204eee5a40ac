"""The member's own account (password, admin tokens, signing out everywhere) and, for platform and
organization admins, the members they administer (disable, enable). Every change goes through
:mod:`dizuo.accounts.lifecycle`, which decides who may act on whom and records the change."""

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from dizuo.accounts import lifecycle as accounts
from dizuo.accounts.members import create_token, verify_password
from dizuo.accounts.sessions import SignedIn
from dizuo.accounts.throttle import locked
from dizuo.console.forms import FormError, PasswordForm, TokenForm, field_errors
from dizuo.console.web import PREFIX, SESSION_COOKIE, Console, redirect
from dizuo.errors import DizuoError

__all__ = ["routes"]

PAGE = f"{PREFIX}/account"


def routes(console: Console) -> APIRouter:
    router = APIRouter()
    db = console.db
    Signed = Annotated[SignedIn, Depends(console.signed_in)]
    Posted = Annotated[SignedIn, Depends(console.posted)]

    def page(request: Request, signed: SignedIn, status: int = 200, **context: object) -> Response:
        actor = signed.actor
        response = console.render(
            request,
            "account.html",
            signed,
            status=status,
            tokens=accounts.list_tokens(db, actor.username, actor),
            members=accounts.list_members(db, actor),
            locks=locked(db) if actor.role == "platform-admin" else [],
            **context,
        )
        response.headers["cache-control"] = "no-store"  # a new token is shown on this page once
        return response

    def signed_out(to: str) -> Response:
        response = redirect(to)
        response.delete_cookie(SESSION_COOKIE, path=PREFIX)
        return response

    @router.get(PAGE)
    def account(request: Request, signed: Signed, done: str | None = None) -> Response:
        return page(request, signed, done=done)

    @router.post(f"{PAGE}/password")
    def password(request: Request, signed: Posted, form: Annotated[PasswordForm, Form()]) -> Response:
        try:
            if verify_password(db, signed.actor.username, form.current) is None:
                raise FormError("current", "当前密码不对", "the current password is wrong")
            accounts.set_password(db, signed.actor.username, form.new, signed.actor)
        except DizuoError as exc:
            errors = field_errors(exc, console.words(request).lang)
            if "password" in errors:
                errors["new"] = errors.pop("password")
            return page(request, signed, status=400, errors=errors)
        return signed_out(f"{PREFIX}/login")  # every session ended, this one too

    @router.post(f"{PAGE}/sign-out-everywhere")
    def everywhere(signed: Posted) -> Response:
        accounts.sign_out_everywhere(db, signed.actor.username, signed.actor)
        return signed_out(f"{PREFIX}/login")

    @router.post(f"{PAGE}/tokens")
    def new_token(request: Request, signed: Posted, form: Annotated[TokenForm, Form()]) -> Response:
        try:
            days = float(form.expires_days) if form.expires_days.strip() else None
        except ValueError:
            days = -1.0
        try:
            token = create_token(db, signed.actor.username, accounts.expiry(days), by=signed.actor)
        except DizuoError as exc:
            return page(request, signed, status=400, errors=field_errors(exc, console.words(request).lang))
        return page(request, signed, status=201, new_token=token)

    @router.post(f"{PAGE}/tokens/{{token_id}}/revoke")
    def revoke(signed: Posted, token_id: str) -> Response:
        accounts.revoke_token(db, token_id, signed.actor)
        return redirect(f"{PAGE}?done=revoked")

    def change(signed: SignedIn, username: str, disabled: bool) -> Response:
        accounts.set_disabled(db, username, disabled, signed.actor)
        return redirect(f"{PAGE}?done={'disable' if disabled else 'enable'}#members")

    @router.post(f"{PREFIX}/members/{{username}}/disable")
    def disable(signed: Posted, username: str) -> Response:
        return change(signed, username, True)

    @router.post(f"{PREFIX}/members/{{username}}/enable")
    def enable(signed: Posted, username: str) -> Response:
        return change(signed, username, False)

    return router
