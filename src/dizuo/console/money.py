"""Wallets, top-ups and compute vouchers (算力券), and the issuer's own view of its programs."""

from typing import Annotated, Any, Literal
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from dizuo.accounts import get_org
from dizuo.accounts.permissions import acting_issuer, allowed, authorize, sees_all_orgs
from dizuo.accounts.sessions import SignedIn
from dizuo.billing import reports as billing_reports
from dizuo.billing.money import format_cny, parse_cny
from dizuo.billing.service import (
    VoucherTerms,
    get_voucher,
    issue_voucher,
    issuer_vouchers,
    issuers,
    parse_voucher_share,
    revoke_voucher,
    topup,
    topup_history,
    wallet_view,
)
from dizuo.compute import reports as compute_reports
from dizuo.console.exports import download
from dizuo.console.forms import (
    FormError,
    TopupForm,
    VoucherForm,
    field_errors,
    optional_list,
    parse_date,
)
from dizuo.console.i18n import bilingual
from dizuo.console.web import PREFIX, Console, org_url, redirect, safe_next
from dizuo.errors import DizuoError
from dizuo.store import utcnow

__all__ = ["routes"]

Text = Annotated[str, Form()]


def _amount(text: str) -> int:
    try:
        return parse_cny(text)
    except ValueError as exc:
        message = str(exc)
        raise FormError("amount", bilingual(message, "zh"), bilingual(message, "en")) from None


def _terms(form: VoucherForm, zone: ZoneInfo) -> VoucherTerms:
    """Read the voucher form into the service's terms (the service checks what they mean)."""
    if not form.org:
        raise FormError("org", "请填写受券组织", "name the organization")
    end = parse_date(form.valid_to, "valid_to", zone, end_of_day=True)
    if end is None:
        raise FormError("valid_to", "请填写最后有效日", "give the last valid day")
    return VoucherTerms(
        issuer=form.issuer,
        program=form.program,
        amount=_amount(form.amount),
        copay=parse_voucher_share(form.copay, "copay"),
        valid_from=parse_date(form.valid_from, "valid_from", zone) or utcnow(),
        valid_to=end,
        providers=optional_list(form.providers),
        regions=optional_list(form.regions),
        models=optional_list(form.models),
    )


def routes(console: Console) -> APIRouter:
    router = APIRouter()
    db = console.db
    Signed = Annotated[SignedIn, Depends(console.signed_in)]
    Posted = Annotated[SignedIn, Depends(console.posted)]

    def wallet_page(
        request: Request, signed: SignedIn, org: str, status: int = 200, **context: Any
    ) -> Response:
        found = get_org(db, org)
        actor = signed.actor
        authorize(actor, "read wallets", org_id=found.id)
        context.setdefault("form", {"org": found.name})
        return console.render(
            request,
            "wallet.html",
            signed,
            status=status,
            org=found.name,
            org_id=found.id,
            wallet=wallet_view(db, found.name),
            topups=topup_history(db, found.name),
            may_topup=allowed(actor, "top up wallets", org_id=found.id),
            may_issue=allowed(actor, "issue vouchers"),
            may_revoke_voucher=allowed(actor, "revoke vouchers"),
            back="wallet",
            **context,
        )

    @router.get(f"{PREFIX}/orgs/{{org}}/wallet")
    def wallet(request: Request, signed: Signed, org: str, done: str | None = None) -> Response:
        return wallet_page(request, signed, org, done=done)

    @router.post(f"{PREFIX}/orgs/{{org}}/topups")
    def new_topup(request: Request, signed: Posted, org: str, form: Annotated[TopupForm, Form()]) -> Response:
        found = get_org(db, org)
        authorize(signed.actor, "top up wallets", org_id=found.id)
        words = console.words(request)
        try:
            micro = _amount(form.topup_amount)
            topup(db, found.name, micro, form.topup_note or None, by=signed.actor)
        except DizuoError as exc:
            errors = {f"topup_{k}": v for k, v in field_errors(exc, words.lang).items()}
            return wallet_page(
                request, signed, org, status=400, errors=errors, form=form.model_dump(), failed="topup"
            )
        console.changed(found.id)
        done = quote(words.t("wallet.topped_up", amount=format_cny(micro)))
        return redirect(f"{org_url(found.name, 'wallet')}?done={done}")

    def issuer_page(
        request: Request, signed: SignedIn, issuer: str | None, status: int = 200, **context: Any
    ) -> Response:
        actor = signed.actor
        issuer = acting_issuer(actor, issuer)
        authorize(actor, "read voucher reports", issuer=issuer)
        month = str(context.pop("month", None) or utcnow().astimezone(console.zone).strftime("%Y-%m"))
        known = issuers(db) if sees_all_orgs(actor) else [issuer or ""]
        issuer = issuer or (known[0] if known else "")
        context.setdefault("form", {"issuer": issuer})
        return console.render(
            request,
            "issuer.html",
            signed,
            status=status,
            issuer=issuer,
            issuers=known,
            month=month,
            vouchers=issuer_vouchers(db, issuer) if issuer else [],
            report=compute_reports.issuer_report(db, issuer, month, console.zone) if issuer else [],
            may_issue=allowed(actor, "issue vouchers", issuer=issuer),
            may_revoke_voucher=allowed(actor, "revoke vouchers", issuer=issuer),
            fixed_issuer=actor.issuer,
            back="issuer",
            **context,
        )

    @router.get(f"{PREFIX}/issuer")
    def issuer(
        request: Request,
        signed: Signed,
        issuer: str | None = None,
        month: str | None = None,
        done: str | None = None,
    ) -> Response:
        if month is not None:
            billing_reports.month_bounds(month, console.zone)  # a bad month is a clear 400, not an empty page
        return issuer_page(request, signed, issuer, month=month, done=done)

    @router.get(f"{PREFIX}/issuer/report.{{fmt}}")
    def issuer_report(
        request: Request, signed: Signed, fmt: Literal["csv", "xlsx"], month: str, issuer: str | None = None
    ) -> Response:
        actor = signed.actor
        name = acting_issuer(actor, issuer)
        authorize(actor, "read voucher reports", issuer=name)
        rows = compute_reports.issuer_report(db, name or "", month, console.zone)
        billing_reports.recorded(db, "voucher-report", name or "", actor.username, month=month, format=fmt)
        return download(rows, fmt, f"算力券报告-{name}-{month}", console.words(request))

    @router.post(f"{PREFIX}/vouchers")
    def new_voucher(request: Request, signed: Posted, form: Annotated[VoucherForm, Form()]) -> Response:
        actor = signed.actor
        form.issuer = acting_issuer(actor, form.issuer) or ""
        authorize(actor, "issue vouchers", issuer=form.issuer)
        words = console.words(request)
        try:
            voucher = issue_voucher(db, form.org, _terms(form, console.zone), by=signed.actor)
        except DizuoError as exc:
            errors = field_errors(exc, words.lang)
            typed = form.model_dump()
            if form.back == "wallet" and form.org:
                return wallet_page(
                    request, signed, form.org, status=400, errors=errors, form=typed, failed="voucher"
                )
            return issuer_page(
                request, signed, form.issuer or None, status=400, errors=errors, form=typed, failed="voucher"
            )
        console.changed(voucher.org_id)
        done = quote(words.t("voucher.issued", amount=format_cny(voucher.face)))
        if form.back == "wallet" and allowed(actor, "read wallets", org_id=voucher.org_id):
            return redirect(f"{org_url(form.org, 'wallet')}?done={done}")
        return redirect(f"{PREFIX}/issuer?issuer={quote(voucher.issuer)}&done={done}")

    @router.post(f"{PREFIX}/vouchers/{{voucher_id}}/revoke")
    def revoke(signed: Posted, voucher_id: str, next: Text = "") -> Response:
        voucher = get_voucher(db, voucher_id)
        authorize(signed.actor, "revoke vouchers", issuer=voucher.issuer)
        revoke_voucher(db, voucher_id, by=signed.actor)
        console.changed(voucher.org_id)
        return redirect(safe_next(next))

    return router
