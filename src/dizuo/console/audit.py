"""The audit trail for auditors: every administrative act, filtered by period, actor, action and
organization, newest first; the filtered records as a spreadsheet (itself an act on the trail)."""

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from dizuo.accounts.permissions import authorize
from dizuo.accounts.service import get_org, visible_orgs
from dizuo.accounts.sessions import SignedIn
from dizuo.compliance.audit import detail_text, latest, sheet_rows
from dizuo.console.exports import download
from dizuo.console.forms import field_errors, parse_date
from dizuo.console.i18n import pinyin_key
from dizuo.console.web import PREFIX, Console
from dizuo.errors import DizuoError
from dizuo.store.audit import append

__all__ = ["ACTIONS", "routes"]

SHOWN = 500
# The families a reader filters by (an action's first word), in the order the page offers them.
ACTIONS = (
    "org",
    "key",
    "guard",
    "wallet",
    "voucher",
    "deployment",
    "member",
    "sign-in",
    "export",
    "audit",
    "retention",
)


def routes(console: Console) -> APIRouter:
    router = APIRouter()
    db = console.db
    Signed = Annotated[SignedIn, Depends(console.signed_in)]

    def filters(since: str, until: str, org: str) -> dict[str, Any]:
        found = get_org(db, org) if org else None
        return {
            "since": parse_date(since, "since", console.zone),
            "until": parse_date(until, "until", console.zone, end_of_day=True),
            "org_id": found.id if found is not None else None,
        }

    @router.get(f"{PREFIX}/audit")
    def audit(
        request: Request,
        signed: Signed,
        since: str = "",
        until: str = "",
        actor: str = "",
        action: str = "",
        org: str = "",
    ) -> Response:
        authorize(signed.actor, "read the audit trail")
        form = {"since": since, "until": until, "actor": actor, "action": action, "org": org}
        names = {o["id"]: o["name"] for o in visible_orgs(db, signed.actor)}
        page: dict[str, Any] = {
            "form": form,
            "names": names,
            "orgs": sorted(names.values(), key=pinyin_key),
            "actions": ACTIONS,
            "shown": SHOWN,
        }
        try:
            count, rows = latest(
                db,
                actor=actor.strip() or None,
                action=action or None,
                limit=SHOWN,
                **filters(since, until, org),
            )
        except DizuoError as exc:
            errors = field_errors(exc, console.words(request).lang)
            return console.render(
                request, "audit.html", signed, status=400, errors=errors, rows=[], count=0, **page
            )
        for row in rows:
            row["detail_text"] = detail_text(row["detail"])
        return console.render(request, "audit.html", signed, rows=rows, count=count, **page)

    @router.get(f"{PREFIX}/audit.xlsx")
    def export(request: Request, signed: Signed, since: str = "", until: str = "") -> Response:
        authorize(signed.actor, "read the audit trail")
        period = filters(since, until, "")
        with db.session() as session:
            asked = {"since": since or None, "until": until or None, "format": "xlsx"}
            append(session, "audit.export", "audit_trail", actor=signed.actor.username, detail=asked)
        rows = sheet_rows(db, period["since"], period["until"])
        stamp = dt.datetime.now(console.zone).strftime("%Y%m%d")
        return download(rows, "xlsx", f"审计日志-{stamp}", console.words(request))

    return router
