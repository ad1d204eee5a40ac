"""What every console page shares: templates, the signed-in member, CSRF, language and error pages.

No ``from __future__ import annotations`` here: FastAPI reads the dependency annotations at run time.
"""

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import Form, Header, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape

from dizuo.accounts import get_org
from dizuo.accounts.members import Actor
from dizuo.accounts.permissions import allowed, authorize, sees_all_orgs
from dizuo.accounts.sessions import SignedIn, find_session
from dizuo.console.i18n import LANGS, Lang, Words
from dizuo.errors import DizuoError
from dizuo.scenarios.notices import Notices
from dizuo.store import Database

__all__ = [
    "LANG_COOKIE",
    "PREFIX",
    "SESSION_COOKIE",
    "STATIC",
    "Console",
    "CsrfFailed",
    "SignInRequired",
    "language",
    "navigation",
    "org_url",
    "redirect",
    "safe_next",
]

PREFIX = "/console"
SESSION_COOKIE = "dizuo_session"
LANG_COOKIE = "dizuo_lang"
STATIC = Path(__file__).parent / "static"


class SignInRequired(Exception):
    """No valid session: the page answers with a redirect to the sign-in page."""


class CsrfFailed(Exception):
    """A state-changing request without the session's CSRF token."""


def code_spans(text: str) -> Markup:
    """Escape *text* and show its `backticked` commands as code."""
    parts = str(escape(text)).split("`")
    return Markup("".join(f"<code>{part}</code>" if i % 2 else part for i, part in enumerate(parts)))


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("dizuo.console", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["code"] = code_spans
    return env


def org_url(org: str, page: str) -> str:
    """Return the console URL of an organization's *page* (names may be Chinese: percent-encoded)."""
    return f"{PREFIX}/orgs/{quote(org, safe='')}/{page}"


def language(request: Request) -> Lang:
    chosen = request.cookies.get(LANG_COOKIE, "zh")
    return chosen if chosen in LANGS else "zh"


@dataclass
class Console:
    """The console's services and settings, shared by its routes."""

    db: Database
    zone: ZoneInfo
    deployments: Callable[[], list[dict[str, Any]]] = list
    on_money_change: Callable[[str], None] | None = None
    aigc_notice: str = "本内容由人工智能生成"  # shown with generated answers (DIZUO_AIGC_NOTICE)
    templates: Environment = field(default_factory=_environment)

    def changed(self, org_id: str) -> None:
        if self.on_money_change is not None:
            self.on_money_change(org_id)

    def words(self, request: Request) -> Words:
        return Words(language(request), self.zone)

    def render(
        self,
        request: Request,
        template: str,
        signed: SignedIn | None,
        status: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        """Render *template* with the frame's context: words, the member, CSRF token and navigation."""
        words = self.words(request)
        actor = signed.actor if signed is not None else None
        for name, empty in (("errors", {}), ("form", {}), ("done", None), ("failed", None)):
            context.setdefault(name, empty)
        if actor is not None and "unread_notices" not in context:
            # Shown beside 通知 in the menu: counted by signed_in in a worker thread for a page; a form
            # answered with its error (rendered in a worker thread too) counts here.
            unread = getattr(request.state, "unread_notices", None)
            context["unread_notices"] = self._unread(actor) if unread is None else unread
        html = self.templates.get_template(template).render(
            request=request,
            words=words,
            t=words.t,
            lang=words.lang,
            actor=actor,
            csrf=signed.csrf if signed is not None else "",
            aigc_notice=self.aigc_notice,
            nav=navigation(signed, request.url.path) if signed is not None else [],
            org_name=signed.org_name if signed is not None else None,
            org_url=org_url,
            can=lambda action, org_id=None: actor is not None and allowed(actor, action, org_id=org_id),
            prefix=PREFIX,
            **context,
        )
        return HTMLResponse(html, status_code=status)

    def signed_in(self, request: Request) -> SignedIn:
        """The member of this request's session, or a redirect to the sign-in page."""
        found = find_session(self.db, request.cookies.get(SESSION_COOKIE, ""))
        if found is None:
            raise SignInRequired()
        request.state.signed = found
        if request.method == "GET":  # a page: its menu counts the unread notices (off the event loop)
            request.state.unread_notices = self._unread(found.actor)
        return found

    def _unread(self, actor: Actor) -> int:
        return Notices(self.db).unread(actor) if allowed(actor, "read scenarios") else 0

    def posted(
        self,
        request: Request,
        csrf: Annotated[str, Form()] = "",
        x_csrf_token: Annotated[str | None, Header()] = None,
    ) -> SignedIn:
        """The member of a state-changing request that carries the session's CSRF token."""
        signed = self.signed_in(request)
        sent = x_csrf_token or csrf
        if not sent or not secrets.compare_digest(sent, signed.csrf):
            raise CsrfFailed()
        return signed

    def scoped_org(self, signed: SignedIn, asked: str | None, action: str) -> tuple[str, str | None]:
        """Return the name and id of the organization a page shows, checked against *action*: an
        organization role's own whatever it asks, else the one asked for, or ("", None) for all."""
        actor = signed.actor
        org = asked if sees_all_orgs(actor) else signed.org_name
        if not org:
            authorize(actor, action)
            return "", None
        found = get_org(self.db, org)
        authorize(actor, action, org_id=found.id)
        return found.name, found.id

    def chat_models(self) -> list[str]:
        """The chat model aliases of the deployments, for the pages that offer a model."""
        return sorted({d["model"] for d in self.deployments() if d["mode"] == "chat"})

    async def acted(
        self, request: Request, work: Callable[[], object], refused: Callable[[int, str], Response], done: str
    ) -> Response:
        """Do *work* (a service's act, in a worker thread), then send the browser to *done*; when the
        service refuses, the page *refused* renders (in a worker thread) for the error's status and
        its message in the page's language."""
        try:
            await asyncio.to_thread(work)
        except DizuoError as exc:
            return await asyncio.to_thread(refused, exc.status, exc.message(self.words(request).lang))
        return redirect(done)

    def error_page(
        self, request: Request, status: int, message: str, signed: SignedIn | None
    ) -> HTMLResponse:
        return self.render(request, "error.html", signed, status=status, message=message)


def navigation(signed: SignedIn, path: str) -> list[dict[str, Any]]:
    """The menu a member sees: only pages the rule book lets them open."""
    actor = signed.actor
    own = actor.org_id
    items: list[tuple[str, str, bool]] = []
    items.append(("nav.overview", f"{PREFIX}/", allowed(actor, "read usage")))
    if sees_all_orgs(actor):
        items.append(("nav.orgs", f"{PREFIX}/orgs", True))
    elif own is not None:
        org_name = signed.org_name or ""
        items.append(("nav.keys", org_url(org_name, "keys"), allowed(actor, "read keys", org_id=own)))
        items.append(("nav.wallet", org_url(org_name, "wallet"), allowed(actor, "read wallets", org_id=own)))
        items.append(("nav.usage", org_url(org_name, "usage"), allowed(actor, "read usage", org_id=own)))
        kbs = allowed(actor, "read knowledge bases", org_id=own)
        items.append(("nav.kbs", org_url(org_name, "kbs"), kbs))
    items.append(("nav.deployments", f"{PREFIX}/deployments", allowed(actor, "read deployments")))
    items.append(("nav.compute", f"{PREFIX}/compute", allowed(actor, "read compute jobs", org_id=own)))
    items.append(("nav.batches", f"{PREFIX}/batches", allowed(actor, "read batches", org_id=own)))
    items.append(("nav.agents", f"{PREFIX}/agents", allowed(actor, "read agents", org_id=own)))
    items.append(("nav.playground", f"{PREFIX}/playground", allowed(actor, "use the playground")))
    items.append(("nav.guard", f"{PREFIX}/guard", allowed(actor, "read guard events", org_id=own)))
    items.append(("nav.evals", f"{PREFIX}/evals", allowed(actor, "read evaluations")))
    items.append(("nav.scenarios", f"{PREFIX}/scenarios", allowed(actor, "read scenarios", org_id=own)))
    items.append(("nav.suppliers", f"{PREFIX}/suppliers", allowed(actor, "read scenarios", org_id=own)))
    items.append(("nav.notices", f"{PREFIX}/notices", allowed(actor, "read scenarios", org_id=own)))
    items.append(("nav.sandbox", f"{PREFIX}/sandbox", allowed(actor, "read the sandbox catalog")))
    items.append(("nav.indicators", f"{PREFIX}/indicators", allowed(actor, "read indicators")))
    items.append(("nav.audit", f"{PREFIX}/audit", allowed(actor, "read the audit trail")))
    items.append(
        ("nav.issuer", f"{PREFIX}/issuer", allowed(actor, "read voucher reports", issuer=actor.issuer))
    )
    items.append(("nav.account", f"{PREFIX}/account", True))
    return [
        {
            "key": key,
            "href": href,
            "current": path == href or (href != f"{PREFIX}/" and path.startswith(href)),
        }
        for key, href, show in items
        if show
    ]


def safe_next(target: str | None) -> str:
    """Only pages of this console: never an open redirect to another site."""
    if target and target.startswith(f"{PREFIX}/") and not target.startswith("//") and "\\" not in target:
        return target
    return f"{PREFIX}/"


def redirect(url: str) -> Response:
    """A 303: the browser GETs *url* after a POST."""
    return RedirectResponse(url, status_code=303)
