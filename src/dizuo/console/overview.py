"""The overview: calls, errors, tokens, spend, voucher use and latency over time, as charts."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from dizuo.accounts.permissions import allowed, sees_all_orgs
from dizuo.accounts.service import visible_orgs
from dizuo.accounts.sessions import SignedIn
from dizuo.agents.service import adoption
from dizuo.billing.activity import activity, window
from dizuo.console.i18n import pinyin_key
from dizuo.console.web import PREFIX, Console, navigation, redirect

__all__ = ["routes"]

RANGES = {1: "overview.day", 7: "overview.week", 30: "overview.month"}
# Seconds between refreshes: the day's hourly buckets change by the second, a week's or a month's
# daily ones hardly in a minute.
REFRESH = {1: 5, 7: 60, 30: 60}


def routes(console: Console) -> APIRouter:
    router = APIRouter()
    Signed = Annotated[SignedIn, Depends(console.signed_in)]

    @router.get(f"{PREFIX}/")
    def overview(request: Request, signed: Signed, days: int = 1, org: str | None = None) -> Response:
        """Platform-wide for operators and auditors (or one organization they pick), else the member's own."""
        actor = signed.actor
        if not allowed(actor, "read usage"):
            # No usage to show: a voucher issuer's page is its programs; the program office's, a
            # reviewer's and a supplier's, the first of their menu (the scenarios).
            if actor.role == "voucher-issuer":
                return redirect(f"{PREFIX}/issuer")
            return redirect(navigation(signed, "")[0]["href"])
        days = days if days in RANGES else 1
        org, org_id = console.scoped_org(signed, org, "read usage")
        since, until, bucket = window(days, console.zone)
        figures = activity(
            console.db, org_id=org_id, since=since, until=until, bucket=bucket, zone=console.zone
        )
        orgs = (
            sorted((o["name"] for o in visible_orgs(console.db, actor)), key=pinyin_key)
            if sees_all_orgs(actor)
            else []
        )
        # The region's agents indicator, platform-wide: for operators and auditors looking at all.
        agents = adoption(console.db) if sees_all_orgs(actor) and not org else None
        return console.render(
            request,
            "overview.html",
            signed,
            agents=agents,
            figures=figures,
            days=days,
            ranges=RANGES,
            refresh=REFRESH[days],
            org=org,
            orgs=orgs,
        )

    return router
