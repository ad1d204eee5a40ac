"""Building the platform: settings → database → keys → deployments → the ASGI app."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from dizuo.accounts import KeyCache, ensure_default_org
from dizuo.accounts.service import usable_keys
from dizuo.admin import create_admin_app
from dizuo.admin.scenarios import platform_grades, platform_usage
from dizuo.agents.loop import Runner
from dizuo.agents.service import Agents
from dizuo.batches.files import Files, LocalDiskStore
from dizuo.batches.kind import BatchKind
from dizuo.batches.service import Batches
from dizuo.billing import Meter
from dizuo.compliance.audit import signing_key
from dizuo.compliance.files import label_html
from dizuo.compliance.labels import Labeler, Labeling, Mode, Notice, Position
from dizuo.compliance.retention import Housekeeper, kept, make_months
from dizuo.compute.catalog import PoolCatalog
from dizuo.compute.inventory import Inventories
from dizuo.compute.jobs import Jobs
from dizuo.compute.reconciler import Reconciler
from dizuo.config import PlatformConfig, load_config
from dizuo.console import create_console_app
from dizuo.console.web import PREFIX as CONSOLE_PREFIX
from dizuo.errors import ConfigError
from dizuo.evalbench.service import EvalService
from dizuo.gateway import Gateway
from dizuo.gateway.aigc import PREFIX as AIGC_PREFIX
from dizuo.gateway.aigc import install_aigc_routes
from dizuo.gateway.batches import BATCHES as BATCHES_PREFIX
from dizuo.gateway.batches import FILES as FILES_PREFIX
from dizuo.gateway.batches import install_batch_routes
from dizuo.gateway.compute import PREFIX as COMPUTE_PREFIX
from dizuo.gateway.compute import install_compute_routes
from dizuo.gateway.http import BodyLimit, Receive, Scope, Send, send_bytes
from dizuo.gateway.inspection import PREFIX as INSPECTION_PREFIX
from dizuo.gateway.inspection import install_inspection_routes
from dizuo.gateway.knowledge import PREFIX as KB_PREFIX
from dizuo.gateway.knowledge import Outgoing, create_kb_app
from dizuo.gateway.sandbox import PREFIX as SANDBOX_PREFIX
from dizuo.gateway.sandbox import install_sandbox_routes
from dizuo.guard.events import EventLog
from dizuo.guard.policy import Guard
from dizuo.indicators import take_due
from dizuo.kb.isolation import IsolatedParser, Limits
from dizuo.kb.service import KnowledgeBases
from dizuo.limits import Limiter, MemoryLimiter
from dizuo.limits.shared import RedisLimiter
from dizuo.providers import Transport
from dizuo.routing import Deployment, Router, build_deployments
from dizuo.routing.catalog import Catalog
from dizuo.routing.health import Health
from dizuo.sandbox.jobs import SandboxJobs, SandboxKind
from dizuo.sandbox.service import Sandbox
from dizuo.sandbox.store import QueryLimits
from dizuo.scenarios.suppliers import Suppliers
from dizuo.settings import Settings
from dizuo.store import Database

__all__ = [
    "Platform",
    "app_from_environment",
    "create_app",
    "labeling",
    "load_settings",
    "prepare",
    "report_labels",
]


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Build settings from defaults, the config file's ``server:`` section, then ``DIZUO_*`` variables."""
    values: dict[str, Any] = {}
    if config is not None:
        values.update(load_config(config).server)
    values.update({name: value for name, value in overrides.items() if value is not None})
    if config is not None:
        values["config"] = config
    try:
        return Settings(**values)
    except ValidationError as exc:
        source = f"{config}: server" if config is not None else "settings"
        problems = "\n".join(f"{source}.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(problems) from exc


def prepare(settings: Settings) -> tuple[str | None, int]:
    """Migrate the database and create the ``default`` organization on first start.

    Return the first API key when one was just created (to be shown once), else None, and how many
    of the ``default`` organization's keys work now.
    """
    db = Database(settings.resolved_database_url)
    try:
        db.upgrade()
        make_months(db, move=False)  # PostgreSQL's coming months (quick: rows in a default partition wait)
        org, key = ensure_default_org(db)
        EvalService(db, settings.data_dir).recover()
        usable = usable_keys(db, org.name)
    finally:
        db.dispose()
    return key, usable


class Deferred:
    """An ASGI app made on its first request, or by :meth:`build`: the admin API, the console and the
    knowledge-base app are about 260 typed routes whose making took 0.4 s of every platform's start,
    and most platforms built in a process that is not a server (a test's, a command's) never serve
    them. A server process makes them as it starts (:meth:`Platform.build_all`). Attributes read
    through it are the made app's."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make: Callable[[], Any] | None = make
        self._app: Any = None

    def build(self) -> Any:
        if self._app is None:
            assert self._make is not None
            self._app, self._make = self._make(), None
        return self._app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await (self._app or self.build())(scope, receive, send)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.build(), name)


class Platform:
    """The one ASGI app: ``/admin/…`` goes to the admin API, ``/console…`` to the web console,
    ``/v1/knowledge-bases…``, ``/v1/apps/inspection…``, ``/v1/aigc…``, ``/v1/compute…`` and ``/v1/sandbox…`` to the
    knowledge-base API (which serves the auditor, the AIGC label and the compute routes too), everything
    else to the gateway."""

    def __init__(
        self,
        gateway: Gateway,
        admin: Any,
        knowledge: Any = None,
        console: Any = None,
        housekeeper: Housekeeper | None = None,
    ) -> None:
        self.gateway = gateway
        self.admin = admin
        self.knowledge = knowledge
        self.console = console
        self.housekeeper = housekeeper  # started by a server process of its own (app_from_environment)
        self._proxied: dict[int, Any] = {}  # id of an app -> it behind uvicorn's proxy-headers middleware
        self._trusted = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")  # as uvicorn reads it

    @property
    def router(self) -> Router:
        return self.gateway.router

    def build_all(self) -> None:
        """Make the apps made on their first request (:class:`Deferred`) now: a server's first
        console page or admin call does not wait for them."""
        for app in (self.admin, self.console, self.knowledge):
            while isinstance(app, BodyLimit):
                app = app.app
            if isinstance(app, Deferred):
                app.build()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = self._app_for(scope)
        if app is self.gateway:
            await app(scope, receive, send)  # reads no client address or scheme: no proxy headers
        else:
            await self._behind_proxies(app)(scope, receive, send)

    def _app_for(self, scope: Scope) -> Any:
        if scope["type"] != "http":
            return self.gateway  # the lifespan
        path = scope["path"]
        if path == "/" and self.console is not None:
            return self._to_console
        if path.startswith("/admin/"):
            return self.admin
        if self.console is not None and path.startswith(CONSOLE_PREFIX):
            return self.console
        if self.knowledge is not None and path.startswith(
            (
                KB_PREFIX,
                INSPECTION_PREFIX,
                AIGC_PREFIX,
                COMPUTE_PREFIX,
                FILES_PREFIX,
                BATCHES_PREFIX,
                SANDBOX_PREFIX,
            )
        ):
            return self.knowledge
        return self.gateway

    def _behind_proxies(self, app: Any) -> Any:
        """*app* seeing the client's address and scheme a trusted proxy forwarded (``X-Forwarded-For``,
        ``X-Forwarded-Proto`` from an address in ``FORWARDED_ALLOW_IPS``, default this host), as
        uvicorn's own middleware does: the console's sign-in throttle and sessions read the address.
        The server runs without that middleware (``proxy_headers=False``), so that model calls, which
        read neither, do not pay for it."""
        wrapped = self._proxied.get(id(app))
        if wrapped is None:
            wrapped = self._proxied[id(app)] = ProxyHeadersMiddleware(app, trusted_hosts=self._trusted)
        return wrapped

    @staticmethod
    async def _to_console(scope: Scope, receive: Receive, send: Send) -> None:
        # A person who opens the server's address lands on the console; clients use /v1.
        await send_bytes(send, 307, b"", b"text/plain", [(b"location", b"/console/")])


def labeling(settings: Settings) -> Labeling:
    """The platform's AIGC labels, signed with its key."""
    return Labeling(
        Labeler(signing_key(settings), settings.aigc_provider),
        Mode(settings.aigc_label),
        Notice(settings.aigc_notice, Position(settings.aigc_notice_position)),
    )


def report_labels(labels: Labeling) -> Callable[[str, str], str] | None:
    """What labels an evaluation report (it shows models' answers): (page, run id) -> the page."""
    if labels.mode is Mode.OFF:
        return None
    return lambda page, run_id: label_html(page, labels.labeler, f"eval_{run_id}", labels.notice)


def create_app(settings: Settings) -> Platform:
    """Return the platform's ASGI app for *settings* (the database must be prepared)."""
    config = load_config(settings.config)
    db = Database(settings.resolved_database_url, settings.durability)
    transport = Transport()
    source = str(settings.config or "config")
    catalog = Catalog(db, config)
    effective = catalog.effective()

    def build(platform_config: PlatformConfig) -> list[Deployment]:
        return build_deployments(platform_config, settings, transport, source=source)

    labels = labeling(settings)
    health = Health(settings.circuit_failure_threshold, settings.circuit_cooldown_seconds)
    router = Router(build(effective), dict(effective.routing), health)
    limiter: Limiter = (
        RedisLimiter(settings.redis_url, settings.hold_seconds) if settings.redis_url else MemoryLimiter()
    )
    meter = Meter(
        db,
        enabled=settings.metering,
        redis_url=settings.redis_url,
        hold_seconds=settings.hold_seconds,
        staging=settings.usage_staging,
        limiter=limiter,
    )
    gateway = Gateway(
        settings,
        KeyCache(db),
        router,
        transport,
        meter,
        catalog=catalog,
        build=build,
        limiter=limiter,
        guard=Guard(config.guard),
        events=EventLog(db),
        labeling=labels,
    )
    # Runs started through the admin API call this platform's own /v1, as users do.
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    evals = EvalService(db, settings.data_dir, label=report_labels(labels))
    pool_catalog = PoolCatalog(db, config.pools)  # the file's pools and those added at run time
    agents = Agents(db, lambda: [a for a in gateway.router.aliases() if gateway.router.mode(a) == "chat"])
    # The data sandbox: datasets in DuckDB files under the data directory, or in PostgreSQL.
    sandbox = Sandbox.at(
        db,
        settings.data_dir,
        QueryLimits(
            settings.sandbox_query_seconds, settings.sandbox_memory_mb, max_rows=settings.sandbox_max_rows
        ),
        settings.sandbox_store,
    )
    # Compute jobs next to the sandbox's data: what they write waits for the data owner.
    sandbox_jobs = SandboxJobs(sandbox, settings.sandbox_output_mb * 2**20)
    admin = Deferred(
        lambda: create_admin_app(
            db,
            on_money_change=meter.journal.refresh,
            deployments=gateway.deployments_view,
            catalog=catalog,
            evals=evals,
            gateway_url=f"http://{host}:{settings.port}/v1",
            zone=ZoneInfo(settings.timezone),
            pools=pool_catalog,
            agents=agents,
            sandbox=sandbox,
            sandbox_jobs=sandbox_jobs,
        )
    )
    # Tenants' documents are read in child processes with CPU and memory limits (docs/security.md).
    parser = IsolatedParser(
        Limits(
            max_bytes=settings.kb_max_document_mb * 2**20,
            cpu_seconds=settings.kb_parse_cpu_seconds,
            memory_mb=settings.kb_parse_memory_mb,
        ),
        concurrency=settings.kb_parse_concurrency,
    )
    kbs = KnowledgeBases(
        db,
        embedding_model=settings.kb_embedding_model,
        max_bytes=parser.max_bytes,
        read=parser,
        originals=settings.data_dir / "kb" / "files",
    )
    # The knowledge-base app's routes (and those it serves for the auditor, AIGC labels, compute,
    # the sandbox and batches) are made on first request (Deferred); its HTTP client is made now, for
    # what runs beside it.
    outgoing = Outgoing()
    # The embedded pools' Ray head, when dizuo serve started one (or one was given), and its token.
    inventories = Inventories(
        pool_catalog.effective(),
        {},
        embedded=settings.embedded_ray,
        embedded_token=settings.embedded_ray_token,
    )
    files = Files(db, LocalDiskStore(settings.data_dir / "files"), settings.files_max_mb * 10**6)
    batches = Batches(
        db, files, meter, lambda: gateway.router, max_line_bytes=settings.batch_max_line_mb * 10**6
    )
    gateway.lines = batches
    gateway.upkeep.on_shutdown.append(lambda: asyncio.to_thread(batches.writer.close))
    jobs = Jobs(
        db,
        meter,
        inventories.pools,
        inventories,
        outgoing.session,
        guard=gateway.guard,
        events=gateway.events,
        max_working_dir_bytes=settings.compute_max_working_dir_mb * 2**20,
        catalog=pool_catalog,
        evals=evals,
        kbs=kbs,
        kinds=[BatchKind(batches), SandboxKind(sandbox_jobs)],
        gateway_url=settings.public_url or f"http://{host}:{settings.port}/v1",
    )
    # Agents answer as models: their loop calls this platform's /v1 with the caller's key.
    gateway.agents = Runner(
        agents,
        kbs,
        f"http://{host}:{settings.port}/v1",
        outgoing.session,
        lambda: gateway.router,
        sandbox,
        settings.agent_mcp_idle_seconds,
    )
    gateway.upkeep.on_shutdown.append(gateway.agents.connections.close)
    gateway.upkeep.on_shutdown.append(lambda: asyncio.to_thread(sandbox.close))
    batches.jobs = jobs
    reconciler = Reconciler(jobs, also=[batches.round])
    gateway.upkeep.on_startup.append(reconciler.start)
    gateway.upkeep.on_shutdown.append(reconciler.stop)
    gateway.upkeep.on_shutdown.append(outgoing.close)

    def make_knowledge() -> Any:
        app = create_kb_app(
            kbs,
            gateway.keys,
            f"http://{host}:{settings.port}/v1",
            settings.kb_chat_model,
            limiter,
            outgoing,
            writes=lambda alias, lang: gateway.router.writes(alias, lang),  # the router changes at run time
            labeling=labels,
        )
        scoped = app.state.scoped
        install_inspection_routes(app, scoped, parser)
        install_aigc_routes(app, scoped, db, labels, parser)
        install_compute_routes(app, scoped, jobs)
        install_sandbox_routes(app, scoped, sandbox, sandbox_jobs, jobs)
        install_batch_routes(app, scoped, batches, jobs)
        app.state.sandbox = sandbox
        app.state.jobs = jobs
        return app

    knowledge = Deferred(make_knowledge)

    async def release_connections() -> None:
        # The pool's connections go with the app (a process that builds several apps, as tests do,
        # kept two per app open until it exited: PostgreSQL ran out of clients).
        db.dispose()

    gateway.upkeep.on_shutdown.append(release_connections)
    console = Deferred(
        lambda: create_console_app(
            db,
            zone=ZoneInfo(settings.timezone),
            deployments=gateway.deployments_view,
            on_money_change=meter.journal.refresh,
            evals=evals,
            kbs=kbs,
            secure_cookies=settings.cookies_secure,
            aigc_notice=settings.aigc_notice,
            jobs=jobs,
            batches=batches,
            agents=agents,
            sandbox=sandbox,
            suppliers=Suppliers(db, platform_grades(db, evals), platform_usage(db)),
            sandbox_jobs=sandbox_jobs,
        )
    )
    # The control plane's JSON and forms are small: bounded at the edge, before authentication.
    limit = settings.control_max_body_bytes
    zone = ZoneInfo(settings.timezone)
    # Daily: retention and the audit trail's checkpoint; then the last month's indicators, kept.
    keeper = Housekeeper(
        db, kept(settings), lambda: signing_key(settings), chores=[lambda: take_due(db, zone)]
    )
    # A dataset for the sandbox is a file: the admin API streams it to disk once its uploader is
    # authorized; the console's form is read whole (to the same limit) before its session is checked.
    datasets = {"/admin/v1/sandbox/datasets": settings.files_max_mb * 10**6}
    uploads = {"/console/sandbox/datasets": settings.files_max_mb * 10**6}
    return Platform(
        gateway, BodyLimit(admin, limit, datasets), knowledge, BodyLimit(console, limit, uploads), keeper
    )


def app_from_environment() -> Platform:
    """Build the app from ``DIZUO_*`` variables: the factory each ``dizuo serve`` worker runs."""
    app = create_app(load_settings(Settings().config))
    app.gateway.upkeep.serve_alone()  # a server process of its own
    app.build_all()
    if app.housekeeper is not None:  # the retention job: daily, in the server (never in a test's app)
        app.gateway.upkeep.on_startup.append(app.housekeeper.start)
        app.gateway.upkeep.on_shutdown.append(app.housekeeper.stop)
    return app
