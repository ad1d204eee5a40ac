"""The admin API: organizations, keys, money and reports, each route checking the caller's role.

No ``from __future__ import annotations`` here: FastAPI reads the route annotations at run time.

Authentication is an admin token (``Authorization: Bearer dzt-…``) acting as one member. Routes are
plain ``def`` so that FastAPI runs their database work in its thread pool, off the event loop.
Errors use the same envelope as ``/v1``. OpenAPI docs: ``/admin/v1/docs``.
"""

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import Depends, FastAPI, Header, Query
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles

from dizuo.accounts import create_key, create_org, get_org, revoke_key
from dizuo.accounts.members import ORG_ROLES, Actor, authenticate_token
from dizuo.accounts.permissions import authorize
from dizuo.accounts.service import change_org, key_owner, set_guard_policy, visible_orgs
from dizuo.accounts.tables import Organization
from dizuo.admin.agents import agent_routes
from dizuo.admin.evals import eval_routes
from dizuo.admin.members import member_routes
from dizuo.admin.sandbox import sandbox_routes
from dizuo.admin.scenarios import platform_grades, platform_usage, scenario_routes
from dizuo.admin.schemas import KeyIn, OrgChange, OrgIn, SnapshotIn, TopupIn, VoucherIn
from dizuo.agents.service import Agents
from dizuo.billing import parse_cny
from dizuo.billing import reports as billing_reports
from dizuo.billing.money import format_cny
from dizuo.billing.service import (
    VoucherTerms,
    get_voucher,
    issue_voucher,
    parse_voucher_share,
    revoke_voucher,
    topup,
    wallet_view,
)
from dizuo.compute import reports as compute_reports
from dizuo.compute.catalog import PoolCatalog
from dizuo.config import PoolConfig
from dizuo.days import PLATFORM_ZONE, parse_moment
from dizuo.errors import (
    AuthenticationFailed,
    InvalidRequest,
    Lang,
    RouteNotFound,
)
from dizuo.evalbench.service import EvalService
from dizuo.guard.events import list_events
from dizuo.http_errors import install_error_handlers
from dizuo.indicators import monthly as monthly_indicators
from dizuo.indicators import series as indicators_series_of
from dizuo.indicators import snapshot as indicators_snapshot
from dizuo.indicators import to_xlsx as indicators_xlsx
from dizuo.routing.catalog import Catalog
from dizuo.sandbox.jobs import SandboxJobs
from dizuo.sandbox.service import Sandbox
from dizuo.scenarios.service import Scenarios
from dizuo.scenarios.suppliers import Suppliers
from dizuo.store import Database

__all__ = ["create_admin_app"]

PREFIX = "/admin/v1"
STATIC = Path(__file__).parent / "static"
Format = Literal["json", "csv", "xlsx"]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key")]


def _money(text: str, param: str = "amount") -> int:
    """Parse a CNY amount, or raise 400 naming *param*."""
    try:
        return parse_cny(text)
    except ValueError as exc:
        raise InvalidRequest("invalid_param", param=param, reason_zh=str(exc), reason_en=str(exc)) from exc


def _moment(text: str, param: str, zone: ZoneInfo, end_of_day: bool = False) -> dt.datetime:
    """A date (a whole day in the platform's time zone) or an ISO 8601 moment, or 400 naming *param*."""
    try:
        return parse_moment(text, zone, end_of_day=end_of_day)
    except ValueError:
        raise InvalidRequest(
            "invalid_param",
            param=param,
            reason_zh=f"{text!r} 不是 YYYY-MM-DD 日期或 ISO 8601 时间",
            reason_en=f"{text!r} is not a YYYY-MM-DD date or an ISO 8601 moment",
        ) from None


def _export(
    rows: list[dict[str, Any]],
    fmt: Format,
    name: str,
    header: dict[str, str] | None = None,
    *,
    lang: Lang,
    zone: ZoneInfo,
) -> Response:
    data = billing_reports.render(fmt, rows, header, title=name, lang=lang, zone=zone)
    if fmt == "json":
        return Response(data, media_type="application/json")
    return Response(data, headers=billing_reports.attachment(name, fmt))


def create_admin_app(
    db: Database,
    on_money_change: Callable[[str], None] | None = None,
    deployments: Callable[[], list[dict[str, Any]]] | None = None,
    catalog: Catalog | None = None,
    evals: EvalService | None = None,
    gateway_url: str = "http://127.0.0.1:8000/v1",
    zone: ZoneInfo = PLATFORM_ZONE,
    pools: PoolCatalog | None = None,
    agents: Agents | None = None,
    sandbox: Sandbox | None = None,
    sandbox_jobs: SandboxJobs | None = None,
) -> FastAPI:
    """Return the admin API over *db*.

    *on_money_change* is called with an organization's id after its money changed here, so that
    the worker that took the change applies it at once (the others within their refresh period).
    *evals* serves ``/admin/v1/evals``; runs reach models through *gateway_url* unless told otherwise.
    Dates people send (a voucher's validity) are whole days in *zone*, the platform's time zone.
    """

    def changed(org_id: str) -> None:
        if on_money_change is not None:
            on_money_change(org_id)

    app = FastAPI(
        title="dizuo admin API",
        version="1",
        docs_url=None,
        openapi_url=f"{PREFIX}/openapi.json",
        redoc_url=None,
    )
    install_error_handlers(app)
    # Swagger UI from the platform itself: FastAPI's default page loads it from a public CDN, blank in
    # the closed networks a regional platform runs in.
    app.mount(f"{PREFIX}/static", StaticFiles(directory=STATIC), name="admin-static")

    @app.get(f"{PREFIX}/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=f"{PREFIX}/openapi.json",
            title="dizuo admin API",
            swagger_js_url=f"{PREFIX}/static/swagger-ui-5.35.0-bundle.js",
            swagger_css_url=f"{PREFIX}/static/swagger-ui-5.35.0.css",
            swagger_favicon_url=f"{PREFIX}/static/swagger-favicon-32x32.png",
            swagger_ui_parameters={"validatorUrl": None},  # no badge fetched from validator.swagger.io
        )

    def actor(authorization: Annotated[str | None, Header()] = None) -> Actor:
        scheme, _, token = (authorization or "").partition(" ")
        found = authenticate_token(db, token.strip()) if scheme.lower() == "bearer" else None
        if found is None:
            raise AuthenticationFailed("admin_token_invalid")
        return found

    Caller = Annotated[Actor, Depends(actor)]

    def may(who: Actor, action: str, *, org: Organization | None = None, issuer: str | None = None) -> None:
        authorize(who, action, org_id=org.id if org is not None else None, issuer=issuer)

    @app.get(f"{PREFIX}/me")
    def me(who: Caller) -> dict[str, Any]:
        """Who this token acts as."""
        return {"username": who.username, "role": who.role, "org_id": who.org_id, "issuer": who.issuer}

    @app.get(f"{PREFIX}/deployments")
    def list_deployments(who: Caller) -> list[dict[str, Any]]:
        """Deployments of this worker with placement, clearance, price, health and recent latency."""
        may(who, "read deployments")
        return deployments() if deployments is not None else []

    def the_catalog() -> Catalog:
        if catalog is None:
            raise RouteNotFound(path=f"{PREFIX}/deployments")
        return catalog

    @app.post(f"{PREFIX}/deployments", status_code=201)
    def add_deployment(body: dict[str, Any], who: Caller) -> dict[str, Any]:
        """Add a deployment at run time (the YAML entry's fields); every worker uses it within a second."""
        may(who, "change deployments")
        return the_catalog().add(body, who.username).model_dump(mode="json", exclude={"api_key"})

    @app.patch(f"{PREFIX}/deployments/{{name}}")
    def change_deployment(name: str, body: dict[str, Any], who: Caller) -> dict[str, Any]:
        """Change fields of a run-time deployment (weight, priority, limits, clearance, price …)."""
        may(who, "change deployments")
        return the_catalog().update(name, body, who.username).model_dump(mode="json", exclude={"api_key"})

    @app.delete(f"{PREFIX}/deployments/{{name}}", status_code=204)
    def remove_deployment(name: str, who: Caller) -> Response:
        """Remove a run-time deployment; workers stop using it within a second."""
        may(who, "change deployments")
        the_catalog().remove(name, who.username)
        return Response(status_code=204)

    def the_pools() -> PoolCatalog:
        if pools is None:
            raise RouteNotFound(path=f"{PREFIX}/compute/pools")
        return pools

    def pool_entry(pool: PoolConfig) -> dict[str, Any]:
        shown = pool.model_dump(mode="json", exclude={"token"})
        return {**shown, "token_set": pool.token is not None, "run_time": the_pools().run_time(pool.name)}

    @app.get(f"{PREFIX}/compute/pools")
    def list_pools(who: Caller) -> list[dict[str, Any]]:
        """Every compute pool: the file's and those added at run time (tokens never shown)."""
        may(who, "read pools")
        return [pool_entry(pool) for pool in the_pools().effective()]

    @app.post(f"{PREFIX}/compute/pools", status_code=201)
    def add_pool(body: dict[str, Any], who: Caller) -> dict[str, Any]:
        """Add a compute pool at run time (the YAML entry's fields); every worker uses it within a moment."""
        may(who, "change pools")
        return pool_entry(the_pools().add(body, who.username))

    @app.patch(f"{PREFIX}/compute/pools/{{name}}")
    def change_pool(name: str, body: dict[str, Any], who: Caller) -> dict[str, Any]:
        """Change fields of a run-time pool: prices, clearance, longest job, start timeout, address, token."""
        may(who, "change pools")
        return pool_entry(the_pools().update(name, body, who.username))

    @app.delete(f"{PREFIX}/compute/pools/{{name}}", status_code=204)
    def remove_pool(name: str, who: Caller) -> Response:
        """Remove a run-time pool: no job is placed on it any more."""
        may(who, "change pools")
        the_pools().remove(name, who.username)
        return Response(status_code=204)

    @app.get(f"{PREFIX}/indicators", response_model=None)
    def indicators(
        who: Caller,
        month: str,
        format: Literal["json", "xlsx"] = "json",
        lang: Literal["zh", "en"] = "zh",
        live: bool = False,
    ) -> dict[str, Any] | Response:
        """The month's monitoring indicators (docs/indicators.md), as ``dizuo indicators --json``:
        a closed month's snapshot where one was kept (``live=true``: computed again now);
        ``format=xlsx``: the workbook, a summary and a sheet per grouping, headers in ``lang``."""
        may(who, "read indicators")
        document = monthly_indicators(db, month, zone, live=live)
        if format == "json":
            return document
        name = f"indicators-{month}.xlsx"
        return Response(
            indicators_xlsx(document, lang),
            media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            headers={"content-disposition": f'attachment; filename="{name}"'},
        )

    @app.get(f"{PREFIX}/indicators/series")
    def indicators_series(who: Caller, since: Annotated[str, Query(alias="from")], until: Annotated[str, Query(alias="to")]) -> dict[str, Any]:  # fmt: skip
        """Month by month from ``from`` to ``to`` (``YYYY-MM``, 36 months at most): organizations, the
        share using agents against the year's target, calls, spend; from the snapshots where kept."""
        may(who, "read indicators")
        return {"object": "list", "data": indicators_series_of(db, since, until, zone)}

    @app.post(f"{PREFIX}/indicators/snapshots", status_code=201)
    def take_indicators_snapshot(body: SnapshotIn, who: Caller) -> dict[str, Any]:
        """Keep a closed month's indicators as they are now (``replace``: again, over the kept
        one); the kept document. The server keeps each month by itself soon after it ends."""
        may(who, "keep indicator snapshots")
        return indicators_snapshot(db, body.month, zone, by=who.username, replace=body.replace)

    @app.get(f"{PREFIX}/orgs")
    def list_orgs(who: Caller) -> list[dict[str, Any]]:
        """Organizations this member may see."""
        return visible_orgs(db, who)

    @app.post(f"{PREFIX}/orgs", status_code=201)
    def new_org(body: OrgIn, who: Caller) -> dict[str, str]:
        """Create an organization (platform admins)."""
        may(who, "create organizations")
        org = create_org(
            db,
            body.name,
            body.data_class,
            uscc_code=body.uscc,
            industry=body.industry,
            district=body.district,
            region=body.region,
            size=body.size,
            limits=(body.rpm, body.tpm, body.concurrency),
            serves_public=body.serves_public,
            by=who,
        )
        return {"id": org.id, "name": org.name}

    @app.patch(f"{PREFIX}/orgs/{{org}}")
    def update_org(org: str, body: OrgChange, who: Caller) -> dict[str, Any]:
        """Change an organization (platform admins): whether it serves the public, how its answers
        are labeled; workers apply it within a second."""
        may(who, "create organizations")
        changed = change_org(
            db,
            org,
            serves_public=body.serves_public,
            label=body.label,
            allow_scripts=body.allow_scripts,
            by=who,
        )
        return {
            "id": changed.id,
            "name": changed.name,
            "serves_public": changed.serves_public,
            "label": changed.label,
            "allow_scripts": changed.allow_scripts,
        }

    @app.post(f"{PREFIX}/orgs/{{org}}/keys", status_code=201)
    def new_key(org: str, body: KeyIn, who: Caller) -> dict[str, Any]:
        """Create an API key; the key is in this answer and nowhere else, ever."""
        may(who, "create keys", org=get_org(db, org))
        created = create_key(
            db,
            org,
            name=body.name,
            models=body.models,
            data_class=body.data_class,
            expires_at=body.expires_at,
            limits=(body.rpm, body.tpm, body.concurrency),
            scopes=body.scopes,
            label=body.label,
            by=who,
        )
        return {"key": created.key, **created.record.as_dict()}

    @app.post(f"{PREFIX}/keys/{{key_id}}/revoke")
    def revoke(key_id: str, who: Caller) -> dict[str, Any]:
        """Revoke a key; every worker drops it within a second."""
        org = key_owner(db, key_id)
        may(who, "revoke keys", org=org)
        return revoke_key(db, key_id, by=who).as_dict()

    @app.post(f"{PREFIX}/orgs/{{org}}/topups", status_code=201)
    def new_topup(
        org: str, body: TopupIn, who: Caller, idempotency_key: IdempotencyKey = None
    ) -> dict[str, str]:
        """Add money to an organization's own balance (platform admins). With an ``Idempotency-Key``
        header, a retry of the same request returns the first top-up and adds nothing."""
        may(who, "top up wallets")
        tx_id = topup(db, org, _money(body.amount), body.note, idempotency_key, by=who)
        changed(get_org(db, org).id)
        return {"tx_id": tx_id}

    @app.get(f"{PREFIX}/orgs/{{org}}/wallet")
    def wallet(org: str, who: Caller) -> dict[str, Any]:
        """Balance, money held by calls in flight, and vouchers."""
        may(who, "read wallets", org=get_org(db, org))
        return wallet_view(db, org)

    @app.post(f"{PREFIX}/orgs/{{org}}/vouchers", status_code=201)
    def new_voucher(
        org: str, body: VoucherIn, who: Caller, idempotency_key: IdempotencyKey = None
    ) -> dict[str, Any]:
        """Grant a compute voucher (算力券); an issuer grants only under its own name. With an
        ``Idempotency-Key`` header, a retry of the same request returns the first voucher."""
        may(who, "issue vouchers", issuer=body.issuer)
        terms = VoucherTerms(
            issuer=body.issuer,
            program=body.program,
            amount=_money(body.amount),
            copay=parse_voucher_share(*body.share),
            valid_from=_moment(body.valid_from, "valid_from", zone),
            valid_to=_moment(body.valid_to, "valid_to", zone, end_of_day=True),
            providers=body.providers,
            regions=body.regions,
            models=body.models,
            pools=body.pools,
            accelerators=body.accelerators,
        )
        voucher = issue_voucher(db, org, terms, idempotency_key, by=who)
        changed(voucher.org_id)
        return {"id": voucher.id, "remaining": format_cny(voucher.remaining)}

    @app.post(f"{PREFIX}/vouchers/{{voucher_id}}/revoke")
    def revoke_a_voucher(voucher_id: str, who: Caller) -> dict[str, str]:
        """Take back a voucher's unspent rest."""
        voucher = get_voucher(db, voucher_id)
        may(who, "revoke vouchers", issuer=voucher.issuer)
        returned = revoke_voucher(db, voucher_id, by=who)
        changed(voucher.org_id)
        return {"returned": format_cny(returned)}

    @app.put(f"{PREFIX}/orgs/{{org}}/guard-policy")
    def org_guard_policy(org: str, body: dict[str, Any] | None, who: Caller) -> dict[str, Any] | None:
        """Set the organization's data-risk guard policy (docs/guard.md#policies); null clears it."""
        may(who, "set guard policies", org=get_org(db, org))
        return set_guard_policy(db, org, body, by=who)

    @app.put(f"{PREFIX}/orgs/{{org}}/keys/{{key_id}}/guard-policy")
    def key_guard_policy(
        org: str, key_id: str, body: dict[str, Any] | None, who: Caller
    ) -> dict[str, Any] | None:
        """Set one key's guard policy (it beats the organization's); null clears it."""
        may(who, "set guard policies", org=get_org(db, org))
        return set_guard_policy(db, org, body, key=key_id, by=who)

    @app.get(f"{PREFIX}/guard/events")
    def guard_events(
        who: Caller,
        org: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    ) -> list[dict[str, Any]]:
        """The guard's audit trail, newest first: who, which direction, what was done, how many of each
        type. Never the values. Organization admins and auditors see their own organization's."""
        # Organization roles read their own organization's, asked or not: the rule is checked either way.
        org_id = get_org(db, org).id if org is not None else (who.org_id if who.role in ORG_ROLES else None)
        authorize(who, "read guard events", org_id=org_id)
        return list_events(db, org_id=org_id, since=since, until=until, limit=limit)

    @app.get(f"{PREFIX}/orgs/{{org}}/usage")
    def usage(
        org: str,
        who: Caller,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        format: Format | Literal["jsonl"] = "json",
        lang: Lang = "zh",
    ) -> Response:
        """Usage records, one per answered call (CSV and XLSX headers in *lang*), streamed as they are
        read: an export of any size takes the same memory. ``jsonl``: one JSON object a line."""
        found = get_org(db, org)
        may(who, "read usage", org=found)
        rows = billing_reports.iter_usage_rows(db, org, since, until)
        span = {"since": since.isoformat() if since else None, "until": until.isoformat() if until else None}
        billing_reports.recorded(db, "usage", org, who.username, org_id=found.id, format=format, **span)
        pieces = billing_reports.stream(format, rows, title=f"usage-{org}", lang=lang, zone=zone)
        if format in ("json", "jsonl"):
            return StreamingResponse(pieces, media_type=billing_reports.MEDIA[format])
        return StreamingResponse(pieces, headers=billing_reports.attachment(f"usage-{org}", format))

    @app.get(f"{PREFIX}/orgs/{{org}}/statement")
    def statement(org: str, month: str, who: Caller, format: Format = "json", lang: Lang = "zh") -> Response:
        """A month's statement; the month is one of the platform's time zone."""
        found = get_org(db, org)
        may(who, "read statements", org=found)
        summary, lines = billing_reports.statement(db, org, month, zone)
        billing_reports.recorded(
            db, "statement", org, who.username, org_id=found.id, month=month, format=format
        )
        return _export(lines, format, f"statement-{org}-{month}", summary, lang=lang, zone=zone)

    @app.get(f"{PREFIX}/issuers/{{issuer}}/voucher-report")
    def voucher_report(
        issuer: str, month: str, who: Caller, format: Format = "json", lang: Lang = "zh"
    ) -> Response:
        """What an issuer's vouchers paid in a month, per organization, program, provider and region."""
        may(who, "read voucher reports", issuer=issuer)
        rows = compute_reports.issuer_report(db, issuer, month, zone)
        billing_reports.recorded(db, "voucher-report", issuer, who.username, month=month, format=format)
        return _export(rows, format, f"vouchers-{month}", lang=lang, zone=zone)

    if evals is not None:
        app.include_router(eval_routes(PREFIX, evals, actor, may, gateway_url))
    if agents is not None:
        app.include_router(agent_routes(PREFIX, db, agents, actor, may, evals))
    suppliers = Suppliers(db, platform_grades(db, evals), platform_usage(db))
    app.include_router(scenario_routes(PREFIX, Scenarios(db), actor, may, db, suppliers, zone))
    if sandbox is not None:
        app.include_router(sandbox_routes(PREFIX, sandbox, actor, may, db, sandbox_jobs))
    app.include_router(member_routes(PREFIX, db, actor))
    return app
