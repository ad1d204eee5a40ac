"""Scenario lists in the console: the scenarios a member may see (the office and auditors: all; an
organization's members: their own and every published one), and the public list of published
scenarios, served without sign-in, contacts hidden.

A scenario's page (``/console/scenarios/{id}``) shows it with its moves and its applications to
take it (揭榜): a supplier's members apply with a proposal and see their own application; the demand
side's members see every application, shortlist and award one. Under review, a reviewer scores it
on the rubric (and sees their own review only); the program office and auditors see every review and
the spread. Once taken, its milestones: the office and the taker's members plan them and record
each done with its evidence; the demand side reads them."""

import asyncio
import datetime as dt
import functools
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from dizuo.accounts import get_org
from dizuo.accounts.permissions import allowed, authorize, sees_all_orgs
from dizuo.accounts.sessions import SignedIn
from dizuo.console.forms import listed
from dizuo.console.web import PREFIX, Console, redirect
from dizuo.errors import DizuoError, InvalidRequest, PermissionDenied
from dizuo.scenarios.applications import Applications, deciding
from dizuo.scenarios.industries import SECTIONS, Division, divisions
from dizuo.scenarios.milestones import BUILDING, Milestones, keeping
from dizuo.scenarios.notices import Notices
from dizuo.scenarios.reviews import Reviews, reading
from dizuo.scenarios.service import OFFICE_MOVES, STAGES, ScenarioNotFound, Scenarios
from dizuo.scenarios.suppliers import Suppliers

__all__ = ["routes"]

# What the new-scenario form sends (the scenario's fields).
NEED_FIELDS = ("title", "industry", "district", "description", "data_available", "budget_min", "budget_max", "expected", "contact")  # fmt: skip


def _by_section() -> dict[str, list[Division]]:
    """The divisions of each section, for the industry picker."""
    grouped: dict[str, list[Division]] = {code: [] for code in SECTIONS}
    for division in divisions().values():
        grouped[division.section].append(division)
    return grouped


def _need(form: Any) -> tuple[dict[str, str], dict[str, str]]:
    """A scenario need's form as typed (to show again) and as the document to check: optional fields
    left empty are left out."""
    typed = {name: str(value) for name, value in form.items() if name in NEED_FIELDS}
    document = {name: value for name, value in typed.items() if value != "" or name in ("title", "industry", "district", "description")}  # fmt: skip
    return typed, document


def _entry_form(entry: dict[str, Any]) -> dict[str, Any]:
    """A catalog entry as the form shows it."""
    cases = "\n".join(" | ".join(str(c.get(k) or "") for k in ("title", "industry", "year")).rstrip(" |") for c in entry["cases"])  # fmt: skip
    return {
        "name": entry["name"],
        "summary": entry["summary"],
        "industries": [i["code"] for i in entry["industries"]],
        "regions": "、".join(entry["regions"]),
        "cases": cases,
        "certifications": "、".join(entry["certifications"]),
        "models": "、".join(m["name"] for m in entry["models"]),
    }


def _entry_document(typed: dict[str, Any]) -> dict[str, Any]:
    """The entry from the form: lists split on 、 , ; or new lines; each case line
    ``title | industry | year`` (the last two optional). A year that is not a number: 400 naming it."""
    cases = []
    for n, line in enumerate(line for line in str(typed["cases"]).splitlines() if line.strip()):
        parts = [part.strip() for part in line.split("|")]
        case: dict[str, Any] = {"title": parts[0], "industry": parts[1] if len(parts) > 1 else ""}
        if len(parts) > 2 and parts[2]:
            if not parts[2].isdigit():
                raise InvalidRequest("invalid_param", param=f"cases[{n}].year", reason_zh="须是年份，如 2025", reason_en="must be a year, such as 2025")  # fmt: skip
            case["year"] = int(parts[2])
        cases.append(case)
    return {
        "name": typed["name"],
        "summary": typed["summary"],
        "industries": typed["industries"],
        "regions": listed(typed["regions"]),
        "cases": cases,
        "certifications": listed(typed["certifications"]),
        "models": listed(typed["models"]),
    }


def routes(console: Console, suppliers: Suppliers | None = None) -> APIRouter:
    """The scenario pages; *suppliers* is the supply catalog with the platform's grades."""
    router = APIRouter()
    catalog = suppliers or Suppliers(console.db)
    Signed = Annotated[SignedIn, Depends(console.signed_in)]
    Posted = Annotated[SignedIn, Depends(console.posted)]
    scenarios = Scenarios(console.db)
    applications = Applications(console.db, scenarios)
    reviews = Reviews(console.db)
    milestones = Milestones(console.db, console.zone)
    told = Notices(console.db)

    @router.get(f"{PREFIX}/scenarios")
    async def listed(request: Request, signed: Signed, status: str = "") -> Response:
        authorize(signed.actor, "read scenarios")
        org_id = None if sees_all_orgs(signed.actor) else signed.actor.org_id
        found = await asyncio.to_thread(scenarios.listed, org_id, status or None)
        return console.render(
            request, "scenarios.html", signed, scenarios=found, stage=status, stages=STAGES, public=False,
            may_create=creates(signed),
        )  # fmt: skip

    def creates(signed: SignedIn) -> bool:
        """Whether the member submits scenarios of their own organization here."""
        actor = signed.actor
        return actor.org_id is not None and allowed(actor, "submit scenarios", org_id=actor.org_id)

    def new_page(request: Request, signed: SignedIn, status: int = 200, **context: Any) -> Response:
        return console.render(
            request,
            "scenario_new.html",
            signed,
            status,
            sections=SECTIONS,
            by_section=_by_section(),
            **context,
        )

    @router.get(f"{PREFIX}/scenarios/new")
    async def new(request: Request, signed: Signed) -> Response:
        """The form of a new scenario need (a draft of the member's organization)."""
        authorize(signed.actor, "submit scenarios", org_id=signed.actor.org_id)
        return new_page(request, signed, form={})

    @router.post(f"{PREFIX}/scenarios")
    async def create(request: Request, signed: Posted) -> Response:
        """Create the draft; its page, or the form again with the error and what was typed."""
        actor = signed.actor
        authorize(actor, "submit scenarios", org_id=actor.org_id)
        typed, document = _need(await request.form())
        try:
            made = await asyncio.to_thread(scenarios.create, actor.org_id or "", document, actor.username)
        except DizuoError as exc:
            return new_page(
                request, signed, 400, form=typed, problem=exc.message(console.words(request).lang)
            )
        return redirect(f"{PREFIX}/scenarios/{made['id']}")

    @router.get(f"{PREFIX}/scenarios/{{scenario_id}}/edit")
    async def edit(request: Request, signed: Signed, scenario_id: str) -> Response:
        """A draft of the member's organization as the form, to change it."""
        actor = signed.actor
        authorize(actor, "submit scenarios", org_id=actor.org_id)
        shown = await asyncio.to_thread(scenarios.show, scenario_id, actor.org_id)
        if shown["organization"] != signed.org_name:  # a published one of another organization
            raise ScenarioNotFound(id=scenario_id)
        if shown["status"] != "draft":  # changed by its moves only
            return redirect(f"{PREFIX}/scenarios/{scenario_id}")
        typed = {name: "" if shown.get(name) is None else str(shown[name]) for name in NEED_FIELDS}
        typed["industry"] = shown["division"] or shown["industry"]
        return new_page(request, signed, form=typed, editing=scenario_id)

    @router.post(f"{PREFIX}/scenarios/{{scenario_id}}/edit")
    async def change(request: Request, signed: Posted, scenario_id: str) -> Response:
        """Change the draft; its page, or the form again with the error and what was typed (a
        scenario past its draft: 409, changed by its moves only)."""
        actor = signed.actor
        authorize(actor, "submit scenarios", org_id=actor.org_id)
        typed, document = _need(await request.form())
        try:
            await asyncio.to_thread(scenarios.update, scenario_id, actor.org_id, document, actor.username)
        except DizuoError as exc:
            words = console.words(request)
            return new_page(request, signed, exc.status, form=typed, editing=scenario_id, problem=exc.message(words.lang))  # fmt: skip
        return redirect(f"{PREFIX}/scenarios/{scenario_id}")

    @router.get(f"{PREFIX}/suppliers")
    async def supply(request: Request, signed: Signed) -> Response:
        """The supply catalog (供给能力目录): each supplier's capability, industries, regions, cases,
        certifications, and the platform models and agents it offers with their bench grades."""
        authorize(signed.actor, "read scenarios")
        entries = await asyncio.to_thread(catalog.listed)
        return console.render(
            request, "suppliers.html", signed, entries=entries, may_edit=edits_entry(signed)
        )

    def edits_entry(signed: SignedIn) -> bool:
        """Whether the member keeps its own organization's catalog entry here."""
        actor = signed.actor
        return actor.org_id is not None and allowed(actor, "manage the supply catalog", org_id=actor.org_id)

    def entry_page(request: Request, signed: SignedIn, status: int = 200, **context: Any) -> Response:
        return console.render(request, "supplier_edit.html", signed, status, sections=SECTIONS, **context)

    @router.get(f"{PREFIX}/suppliers/mine")
    async def my_entry(request: Request, signed: Signed) -> Response:
        """The member's organization's catalog entry as a form (empty: it has none yet)."""
        actor = signed.actor
        authorize(actor, "manage the supply catalog", org_id=actor.org_id)
        try:
            shown = await asyncio.to_thread(catalog.show, actor.org_id or "")
        except DizuoError:
            shown = None
        return entry_page(request, signed, form=_entry_form(shown) if shown else {"industries": []})

    @router.post(f"{PREFIX}/suppliers/mine")
    async def put_entry(request: Request, signed: Posted) -> Response:
        """Create or replace the entry; the catalog, or the form again with the error and what was
        typed (a case line is ``title | industry | year``)."""
        actor = signed.actor
        authorize(actor, "manage the supply catalog", org_id=actor.org_id)
        posted = await request.form()
        typed: dict[str, Any] = {name: str(posted.get(name) or "") for name in ("name", "summary", "regions", "cases", "certifications", "models")}  # fmt: skip
        typed["industries"] = [str(v) for v in posted.getlist("industries")]
        try:
            document = _entry_document(typed)
            await asyncio.to_thread(catalog.put, actor.org_id or "", document, actor.username)
        except DizuoError as exc:
            return entry_page(
                request, signed, 400, form=typed, problem=exc.message(console.words(request).lang)
            )
        return redirect(f"{PREFIX}/suppliers")

    @router.get(f"{PREFIX}/scenarios/{{scenario_id}}/matches")
    async def matches(request: Request, signed: Signed, scenario_id: str) -> Response:
        """The suppliers that fit a scenario the member may see, best first, each with why."""
        actor = signed.actor
        authorize(actor, "read scenarios")
        org_id = None if sees_all_orgs(actor) else actor.org_id

        def found() -> tuple[dict[str, Any], list[dict[str, Any]]]:
            return scenarios.show(scenario_id, org_id), catalog.for_scenario(scenario_id, 10)

        shown, ranked = await asyncio.to_thread(found)
        return console.render(request, "matches.html", signed, s=shown, matches=ranked)

    @router.get(f"{PREFIX}/notices")
    async def notices(request: Request, signed: Signed) -> Response:
        """The member's notices of the scenario lists, newest first; opening them marks them seen."""
        authorize(signed.actor, "read scenarios")
        found = await asyncio.to_thread(told.read, signed.actor)
        for notice in found:  # the platform's time, to the minute
            moment = dt.datetime.fromisoformat(notice["created_at"]).astimezone(console.zone)
            notice["when"] = moment.strftime("%Y-%m-%d %H:%M")
        return console.render(request, "notices.html", signed, notices=found, unread_notices=0)

    @router.get(f"{PREFIX}/scenarios/public")
    async def public(request: Request) -> Response:
        """Anyone may read the published lists: no sign-in, no contacts."""
        found = await asyncio.to_thread(scenarios.public)
        return console.render(
            request, "scenarios.html", None, scenarios=found, stage="", stages=STAGES, public=True
        )

    def page(
        request: Request, signed: SignedIn, scenario_id: str, status: int = 200, **context: Any
    ) -> Response:
        actor = signed.actor
        authorize(actor, "read scenarios")
        org_id = None if sees_all_orgs(actor) else actor.org_id
        shown = scenarios.show(scenario_id, org_id)
        own = actor.org_id is not None and shown["organization"] == signed.org_name
        office = allowed(actor, "run scenario lists")
        sees_applications = allowed(actor, "read scenario applications")
        try:
            scored = reviews.listed(scenario_id, reading(actor))
        except PermissionDenied:  # neither the office, an auditor nor a reviewer: no reviews shown
            scored = None
        try:
            planned = milestones.listed(scenario_id, org_id) if shown["taker"] else None
        except DizuoError:  # neither the demand side nor the taker: not theirs to read
            planned = None
        taker = actor.org_id is not None and shown["taker"] == signed.org_name
        return console.render(
            request,
            "scenario.html",
            signed,
            status,
            s=shown,
            show_applications=sees_applications,
            applications=applications.listed(scenario_id, org_id) if sees_applications else [],
            reviews=scored,
            may_review=shown["status"] == "under_review" and allowed(actor, "review scenarios"),
            may_edit=own and shown["status"] == "draft" and creates(signed),
            milestones=planned,
            moves=[
                to
                for to in shown["moves_allowed"]
                if office
                or (
                    own and to not in OFFICE_MOVES and allowed(actor, "submit scenarios", org_id=actor.org_id)
                )
            ],
            may_keep_milestones=shown["status"] in BUILDING
            and (office or (taker and allowed(actor, "apply for scenarios", org_id=actor.org_id))),
            may_apply=not own
            and shown["status"] == "published"
            and actor.org_id is not None
            and allowed(actor, "apply for scenarios", org_id=actor.org_id),
            may_decide=shown["status"] == "published"
            and (office or (own and allowed(actor, "award scenarios"))),
            **context,
        )

    @router.get(f"{PREFIX}/scenarios/{{scenario_id}}")
    async def show(request: Request, signed: Signed, scenario_id: str) -> Response:
        return await asyncio.to_thread(page, request, signed, scenario_id)

    async def acted(request: Request, signed: SignedIn, scenario_id: str, act: Any, *args: Any, **typed: Any) -> Response:  # fmt: skip
        """Do *act*; back to the scenario's page, or the page with the error (and what was typed)."""

        def refused(status: int, problem: str) -> Response:
            return page(request, signed, scenario_id, status, problem=problem, **typed)

        return await console.acted(
            request, functools.partial(act, *args), refused, f"{PREFIX}/scenarios/{scenario_id}"
        )

    @router.post(f"{PREFIX}/scenarios/{{scenario_id}}/moves")
    async def move(
        request: Request,
        signed: Posted,
        scenario_id: str,
        to: Annotated[str, Form()] = "",
        reason: Annotated[str, Form()] = "",
        list_name: Annotated[str, Form(alias="list")] = "",
        taker: Annotated[str, Form()] = "",
    ) -> Response:
        """Move the scenario: the office every move; the demand side's members submit their draft or
        take it back."""
        actor = signed.actor
        office = allowed(actor, "run scenario lists")
        if not office:
            authorize(actor, "submit scenarios", org_id=actor.org_id)

        def moved() -> object:
            taker_id = get_org(console.db, taker.strip()).id if taker.strip() else None
            return scenarios.move(
                scenario_id, to, actor.username, org_id=None if office else actor.org_id, office=office,
                reason=reason, list_name=list_name or None, taker_org_id=taker_id,
            )  # fmt: skip

        return await acted(request, signed, scenario_id, moved, move_reason=reason)

    @router.post(f"{PREFIX}/scenarios/{{scenario_id}}/review")
    async def review(request: Request, signed: Posted, scenario_id: str) -> Response:
        """A reviewer's scores (``score_<key>`` for each criterion) and comment."""
        authorize(signed.actor, "review scenarios")
        form = await request.form()
        scores: dict[str, Any] = {}
        for name, value in form.items():
            if name.startswith("score_") and isinstance(value, str):
                try:
                    scores[name.removeprefix("score_")] = float(value)
                except ValueError:
                    scores[name.removeprefix("score_")] = -1.0  # refused below, naming the criterion
        comment = str(form.get("comment") or "")
        document = {"scores": scores, "comment": comment}
        return await acted(request, signed, scenario_id, reviews.score, scenario_id, signed.actor.username, document, comment=comment)  # fmt: skip

    @router.post(f"{PREFIX}/scenarios/{{scenario_id}}/milestones")
    async def add_milestone(
        request: Request,
        signed: Posted,
        scenario_id: str,
        title: Annotated[str, Form()] = "",
        due: Annotated[str, Form()] = "",
    ) -> Response:
        who = keeping(signed.actor)
        return await acted(request, signed, scenario_id, milestones.add, scenario_id, title, due, signed.actor.username, who, milestone_title=title, milestone_due=due)  # fmt: skip

    @router.post(f"{PREFIX}/scenarios/{{scenario_id}}/milestones/{{milestone_id}}/done")
    async def milestone_done(
        request: Request,
        signed: Posted,
        scenario_id: str,
        milestone_id: str,
        evidence: Annotated[str, Form()] = "",
    ) -> Response:
        who = keeping(signed.actor)
        return await acted(request, signed, scenario_id, milestones.done, scenario_id, milestone_id, evidence, signed.actor.username, who)  # fmt: skip

    @router.post(f"{PREFIX}/scenarios/{{scenario_id}}/applications")
    async def apply(
        request: Request, signed: Posted, scenario_id: str, proposal: Annotated[str, Form()] = ""
    ) -> Response:
        actor = signed.actor
        authorize(actor, "apply for scenarios", org_id=actor.org_id)
        act = applications.apply
        return await acted(request, signed, scenario_id, act, scenario_id, actor.org_id or "", proposal, actor.username, proposal=proposal)  # fmt: skip

    @router.post(f"{PREFIX}/scenarios/{{scenario_id}}/applications/{{application_id}}/{{decision}}")
    async def decide(
        request: Request,
        signed: Posted,
        scenario_id: str,
        application_id: str,
        decision: str,
        reason: Annotated[str, Form()] = "",
    ) -> Response:
        who = deciding(signed.actor)
        if decision == "award":
            return await acted(request, signed, scenario_id, applications.award, scenario_id, application_id, who, signed.actor.username, reason)  # fmt: skip
        if decision == "shortlist":
            return await acted(request, signed, scenario_id, applications.shortlist, scenario_id, application_id, who, signed.actor.username)  # fmt: skip
        return console.error_page(request, 404, console.words(request).t("scenario.apps.unknown"), signed)

    return router
