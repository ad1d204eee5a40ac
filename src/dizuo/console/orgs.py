"""Organizations and their API keys: list, create (a key is shown once), revoke."""

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from dizuo.accounts import create_key, create_org, get_org, revoke_key
from dizuo.accounts.permissions import allowed, authorize
from dizuo.accounts.service import key_owner, list_keys, visible_orgs
from dizuo.accounts.sessions import SignedIn
from dizuo.console.forms import KeyForm, OrgForm, field_errors, optional_int, optional_list, parse_date
from dizuo.console.i18n import pinyin_key
from dizuo.console.web import PREFIX, Console, org_url, redirect
from dizuo.errors import DizuoError

__all__ = ["routes"]


def routes(console: Console) -> APIRouter:
    router = APIRouter()
    db = console.db
    Signed = Annotated[SignedIn, Depends(console.signed_in)]
    Posted = Annotated[SignedIn, Depends(console.posted)]

    def orgs_page(request: Request, signed: SignedIn, status: int = 200, **context: object) -> Response:
        authorize(signed.actor, "read organizations")
        orgs = sorted(visible_orgs(db, signed.actor), key=lambda o: pinyin_key(o["name"]))
        return console.render(
            request,
            "orgs.html",
            signed,
            status=status,
            orgs=orgs,
            may_create=allowed(signed.actor, "create organizations"),
            **context,
        )

    @router.get(f"{PREFIX}/orgs")
    def orgs(request: Request, signed: Signed, created: str | None = None) -> Response:
        return orgs_page(request, signed, created=created)

    @router.post(f"{PREFIX}/orgs")
    def new_org(request: Request, signed: Posted, form: Annotated[OrgForm, Form()]) -> Response:
        authorize(signed.actor, "create organizations")
        try:
            org = create_org(
                db,
                form.name,
                form.data_class,
                uscc_code=form.uscc or None,
                industry=form.industry or None,
                district=form.district or None,
                size=form.size or None,
                region=form.region.strip() or None,
                by=signed.actor,
            )
        except DizuoError as exc:
            errors = field_errors(exc, console.words(request).lang)
            return orgs_page(request, signed, status=400, errors=errors, form=form.model_dump(), created=None)
        return redirect(f"{PREFIX}/orgs?created={quote(org.name)}")

    def keys_page(
        request: Request, signed: SignedIn, org: str, status: int = 200, **context: object
    ) -> Response:
        found = get_org(db, org)
        authorize(signed.actor, "read keys", org_id=found.id)
        return console.render(
            request,
            "keys.html",
            signed,
            status=status,
            org=found.name,
            org_id=found.id,
            keys=list_keys(db, found.name),
            may_create=allowed(signed.actor, "create keys", org_id=found.id),
            may_revoke=allowed(signed.actor, "revoke keys", org_id=found.id),
            **context,
        )

    @router.get(f"{PREFIX}/orgs/{{org}}/keys")
    def keys(request: Request, signed: Signed, org: str) -> Response:
        return keys_page(request, signed, org, new_key=None)

    @router.post(f"{PREFIX}/orgs/{{org}}/keys")
    def new_key(request: Request, signed: Posted, org: str, form: Annotated[KeyForm, Form()]) -> Response:
        found = get_org(db, org)
        authorize(signed.actor, "create keys", org_id=found.id)
        try:
            created = create_key(
                db,
                found.name,
                name=form.name or None,
                models=optional_list(form.models),
                data_class=form.data_class or None,
                expires_at=parse_date(form.expires, "expires", console.zone, end_of_day=True),
                limits=(
                    optional_int(form.rpm, "rpm"),
                    optional_int(form.tpm, "tpm"),
                    optional_int(form.concurrency, "concurrency"),
                ),
                by=signed.actor,
            )
        except DizuoError as exc:
            errors = field_errors(exc, console.words(request).lang)
            return keys_page(
                request, signed, org, status=400, errors=errors, form=form.model_dump(), new_key=None
            )
        # The key is in this answer and nowhere else, ever: no redirect, no copy kept.
        response = keys_page(request, signed, org, status=201, new_key=created.key)
        response.headers["cache-control"] = "no-store"
        return response

    @router.post(f"{PREFIX}/keys/{{key_id}}/revoke")
    def revoke(request: Request, signed: Posted, key_id: str) -> Response:
        org = key_owner(db, key_id)
        authorize(signed.actor, "revoke keys", org_id=org.id)
        record = revoke_key(db, key_id, by=signed.actor)
        if request.headers.get("hx-request"):
            return console.render(
                request,
                "_key_row.html",
                signed,
                key=record.as_dict(),
                may_revoke=True,
            )
        return redirect(org_url(org.name, "keys"))

    return router
