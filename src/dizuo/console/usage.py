"""Usage records of an organization, filtered by date and model: the newest on the page, counted and
summed by the database; every one in the CSV or Excel export, streamed as it is read."""

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from dizuo.accounts import get_org
from dizuo.accounts.permissions import authorize
from dizuo.accounts.sessions import SignedIn
from dizuo.billing import reports as billing_reports
from dizuo.billing.money import format_cny
from dizuo.console.exports import download
from dizuo.console.forms import field_errors, parse_date
from dizuo.console.web import PREFIX, Console
from dizuo.errors import DizuoError

__all__ = ["routes"]

SHOWN = 200  # rows on the page; exports hold every row


def routes(console: Console) -> APIRouter:
    router = APIRouter()
    db = console.db
    Signed = Annotated[SignedIn, Depends(console.signed_in)]

    def period(since: str, until: str) -> tuple[dt.datetime | None, dt.datetime | None]:
        return parse_date(since, "since", console.zone), parse_date(
            until, "until", console.zone, end_of_day=True
        )

    @router.get(f"{PREFIX}/orgs/{{org}}/usage")
    def usage(
        request: Request, signed: Signed, org: str, since: str = "", until: str = "", model: str = ""
    ) -> Response:
        found = get_org(db, org)
        authorize(signed.actor, "read usage", org_id=found.id)
        form = {"since": since, "until": until, "model": model}
        try:
            start, end = period(since, until)
            count, cost, records = billing_reports.usage_summary(
                db, found.name, start, end, model.strip() or None, newest=SHOWN
            )
        except DizuoError as exc:
            errors = field_errors(exc, console.words(request).lang)
            return console.render(
                request,
                "usage.html",
                signed,
                status=400,
                org=found.name,
                org_id=found.id,
                form=form,
                errors=errors,
                records=[],
                total=None,
            )
        return console.render(
            request,
            "usage.html",
            signed,
            org=found.name,
            org_id=found.id,
            form=form,
            records=records,
            count=count,
            shown=SHOWN,
            total=format_cny(cost),
        )

    @router.get(f"{PREFIX}/orgs/{{org}}/usage.{{fmt}}")
    def export(
        request: Request,
        signed: Signed,
        org: str,
        fmt: Literal["csv", "xlsx"],
        since: str = "",
        until: str = "",
        model: str = "",
    ) -> Response:
        found = get_org(db, org)
        authorize(signed.actor, "read usage", org_id=found.id)
        start, end = period(since, until)
        rows = billing_reports.iter_usage_rows(db, found.name, start, end, model.strip() or None)
        span = {"since": since or None, "until": until or None, "model": model.strip() or None}
        billing_reports.recorded(
            db, "usage", found.name, signed.actor.username, org_id=found.id, format=fmt, **span
        )
        return download(rows, fmt, f"用量-{found.name}", console.words(request))

    return router
