"""A platform built for one test: exactly the deployments and organizations the test writes down,
served in process through ``httpx.ASGITransport`` (no socket, no server thread).

    async def test_a_call_is_charged(gateway_app: GatewayApp) -> None:
        platform = await gateway_app(deployments=[upstream_deployment("echo-model", price=("1.5", "2"))])
        org = platform.org(balance="1")
        async with platform.sdk(org.key) as client:
            await client.chat.completions.create(model="echo-model", messages=[...])
        assert platform.balance(org) == 1_000_000 - 17

The upstream is the session's :class:`~tests.support.upstream.FakeUpstream`, a real HTTP server:
the deployment's ``upstream_model`` picks its behaviour. Where the behaviour needs a real socket (a
client that disconnects, SSE framing as a client reads it off the wire, the console in Chromium, the
embedded local models loaded once for a module), a module serves the platform it describes with
the ``serve`` fixture:

    @pytest.fixture(scope="module")
    def gateway(serve: Serve) -> Iterator[RunningGateway]:
        with serve([upstream_deployment("slow-model", "slow")]) as running:
            yield running
"""

from __future__ import annotations

import contextlib
import os
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml
from sqlalchemy import select

from dizuo.accounts import create_key, create_org
from dizuo.accounts.members import create_member, create_token
from dizuo.app import Platform, create_app, load_settings, prepare
from dizuo.billing import parse_cny
from dizuo.billing.service import topup
from dizuo.billing.tables import UsageRecord, Wallet
from dizuo.gateway import Gateway
from dizuo.settings import Settings
from dizuo.store import Database
from tests.support.servers import ServerThread, free_port
from tests.support.upstream import FakeUpstream

__all__ = [
    "GatewayApp",
    "PlatformUnderTest",
    "RunningGateway",
    "Serve",
    "Tenant",
    "admin_api",
    "upstream_deployment",
]

UPSTREAM_KEY = "sk-upstream-secret"
BASE = "http://dizuo.test"


def upstream_deployment(
    model: str,
    upstream_model: str = "echo",
    *,
    name: str | None = None,
    price: tuple[str, str] | None = ("1.5", "2"),
    **extra: object,
) -> dict[str, object]:
    """A deployment of *model* on the session's fake upstream (its behaviour named by
    *upstream_model*), priced *price* = (input, output) CNY per million tokens."""
    entry: dict[str, object] = {
        "name": name or f"{model}-{uuid.uuid4().hex[:4]}",
        "model": model,
        "provider": "openai-compatible",
        "base_url": "{upstream}",
        "api_key": "env:FAKE_UPSTREAM_KEY",
        "upstream_model": upstream_model,
    }
    if price is not None:
        entry["price"] = {"input": price[0], "output": price[1]}
    entry.update(extra)
    return entry


def on(upstream: FakeUpstream, deployment: dict[str, object]) -> dict[str, object]:
    """*deployment* (from :func:`upstream_deployment`) pointed at *upstream*'s address."""
    return {k: (upstream.base_url if v == "{upstream}" else v) for k, v in deployment.items()}


def pool_settings(
    folder: Path, pool: dict[str, object], deployments: Sequence[dict[str, object]], **settings: Any
) -> Settings:
    """Settings of a platform served over a real socket (a pool's jobs call it back) in *folder*: the
    one *pool*, whose nodes run dizuo with this Python (a remote cluster's image has dizuo installed),
    and *deployments*; a free port, keys seen within 0.2 s, and *settings* (database_url, redis_url, a
    data_dir other than *folder* …)."""
    config = folder / "dizuo.yaml"
    body = {"local": False, "pools": [{**pool, "python": sys.executable}], "deployments": list(deployments)}
    config.write_text(yaml.safe_dump(body, allow_unicode=True), encoding="utf-8")
    settings.setdefault("data_dir", folder)
    return load_settings(config, port=free_port(), key_refresh_seconds=0.2, **settings)


def _settings(
    path: Path,
    upstream: FakeUpstream,
    deployments: Sequence[dict[str, object]],
    sections: dict[str, object],
    database_url: str,
    redis_url: str | None,
    **settings: Any,
) -> Settings:
    """Settings of a platform under test: its configuration (*deployments* on *upstream*, the other
    *sections*) written to *path*, its data beside it; the session's database and Redis; usage
    records written at once (they are read right after the call; staging has its own tests), keys
    seen within 0.2 s; *settings* over those."""
    config = {**sections, "deployments": [on(upstream, d) for d in deployments]}
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    options: dict[str, Any] = {
        "data_dir": path.parent,
        "database_url": database_url,
        "redis_url": redis_url,
        "usage_staging": "off",
        "key_refresh_seconds": 0.2,
        **settings,
    }
    return load_settings(path, **options)


@dataclass(frozen=True)
class Tenant:
    """An organization a test made, with its one API key."""

    id: str
    name: str
    key: str


@dataclass
class PlatformUnderTest:
    """The platform a test built, and what a test reads back from it."""

    platform: Platform
    db: Database
    clients: list[httpx.AsyncClient] = field(default_factory=list)
    admins: dict[str | None, httpx.AsyncClient] = field(default_factory=dict)

    def http(self, key: str | None = None) -> httpx.AsyncClient:
        """A raw HTTP client of the platform (status lines and headers in view), signed with *key*."""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.platform), base_url=BASE, headers=headers, timeout=30
        )
        self.clients.append(client)
        return client

    def admin(self, token: str | None) -> httpx.AsyncClient:
        """The admin API (``/admin/v1``), signed with the member's *token* (None: not signed)."""
        client = self.admins.get(token)
        if client is None:
            client = self.admins[token] = self.http(token)
            client.base_url = httpx.URL(f"{BASE}/admin/v1")
        return client

    def member(self, role: str, **scope: str) -> str:
        """A new member of *role* (*scope*: its ``org`` or ``issuer``) and an admin token of theirs."""
        username = f"{role}-{uuid.uuid4().hex[:8]}"
        create_member(self.db, username, "correct horse battery", role, **scope)
        return create_token(self.db, username)

    def people(self) -> dict[str, str]:
        """Two organizations (``org_a``, ``org_b``: their names), an issuer, and a token of each kind
        of member: ``admin`` (the platform's), ``a-admin`` and ``a-dev`` (organization A's admin
        and developer), ``bureau`` (the issuer's) and ``auditor``."""
        tag = uuid.uuid4().hex[:6]
        org_a, org_b, issuer = f"甲公司-{tag}", f"乙公司-{tag}", f"大数据局-{tag}"
        create_org(self.db, org_a)
        create_org(self.db, org_b)
        return {
            "org_a": org_a,
            "org_b": org_b,
            "issuer": issuer,
            "admin": self.member("platform-admin"),
            "a-admin": self.member("org-admin", org=org_a),
            "a-dev": self.member("org-developer", org=org_a),
            "bureau": self.member("voucher-issuer", issuer=issuer),
            "auditor": self.member("auditor"),
        }

    @property
    def settings(self) -> Settings:
        """The platform's settings (its database's URL, for the CLI)."""
        return self.platform.gateway.settings

    def sdk(self, key: str) -> openai.AsyncOpenAI:
        """The real ``openai`` SDK, reaching the platform in process."""
        return openai.AsyncOpenAI(base_url=f"{BASE}/v1", api_key=key, max_retries=0, http_client=self.http())

    def org(self, balance: str | None = None, **key: Any) -> Tenant:
        """A new organization with *balance* CNY (none: an empty wallet) and one key (*key*: its
        limits, models or scopes, as ``create_key`` takes them)."""
        name = f"租户-{uuid.uuid4().hex[:8]}"
        made = create_org(self.db, name)
        if balance is not None:
            topup(self.db, name, parse_cny(balance))
        return Tenant(made.id, name, create_key(self.db, name, **key).key)

    def records(self, org: Tenant) -> list[UsageRecord]:
        """The organization's usage records, oldest first."""
        with self.db.session() as session:
            query = select(UsageRecord).where(UsageRecord.org_id == org.id).order_by(UsageRecord.created_at)
            return list(session.scalars(query))

    def balance(self, org: Tenant) -> int:
        """The organization's own balance in micro-yuan (¥1 = 1,000,000)."""
        with self.db.session() as session:
            wallet = session.get(Wallet, org.id)
            assert wallet is not None
            return wallet.balance


GatewayApp = Callable[..., Awaitable[PlatformUnderTest]]


async def admin_api(
    platform: PlatformUnderTest, token: str | None, method: str, path: str, **kwargs: Any
) -> httpx.Response:
    """One request to *platform*'s admin API (*path* below ``/admin/v1``), signed with *token*."""
    return await platform.admin(token).request(method, path, **kwargs)


@pytest.fixture
async def gateway_app(
    upstream: FakeUpstream,
    database_url: str,
    redis_url: str | None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[GatewayApp]:
    """Build the platform a test describes: ``await gateway_app(deployments=[...], **settings)``;
    it is started, and stopped after the test. The database is the session's (SQLite, or
    PostgreSQL with ``DIZUO_TEST_DATABASE_URL``), holds and limits shared through Redis when
    ``DIZUO_TEST_REDIS_URL`` is set."""
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", UPSTREAM_KEY)
    built: list[PlatformUnderTest] = []

    async def build(
        deployments: Sequence[dict[str, object]] = (),
        *,
        routing: dict[str, str] | None = None,
        pools: Sequence[dict[str, object]] = (),
        guard: dict[str, object] | None = None,
        **settings: Any,
    ) -> PlatformUnderTest:
        sections: dict[str, object] = {"local": False, "routing": routing or {}, "pools": list(pools)}
        if guard is not None:  # the platform's guard section: its default policy, its webhook
            sections["guard"] = guard
        path = tmp_path / f"dizuo-{len(built)}.yaml"
        ready = _settings(path, upstream, deployments, sections, database_url, redis_url, **settings)
        migrated = Database(ready.resolved_database_url)
        migrated.upgrade()  # not prepare(): the default organization and its one-time key are not ours
        migrated.dispose()
        platform = create_app(ready)
        await platform.gateway.startup()
        under_test = PlatformUnderTest(platform, Database(ready.resolved_database_url))
        built.append(under_test)
        return under_test

    yield build
    for under_test in built:
        for client in under_test.clients:
            await client.aclose()
        await under_test.platform.gateway.shutdown()
        under_test.db.dispose()


@dataclass
class RunningGateway:
    """A platform served over a real socket, and the key of its default organization (funded)."""

    url: str
    first_key: str
    settings: Settings
    platform: Platform

    @property
    def app(self) -> Gateway:
        return self.platform.gateway

    @property
    def v1(self) -> str:
        return f"{self.url}/v1"


Serve = Callable[..., contextlib.AbstractContextManager[RunningGateway]]


@pytest.fixture(scope="session")
def serve(
    upstream: FakeUpstream,
    database_url: str,
    redis_url: str | None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Serve:
    """Serve the platform a module describes on a real socket, for as long as the ``with`` lasts::

        with serve(deployments=[...], local=True, server={...}, **settings) as running: ...

    *local*: the embedded local models too (about a second to load); *server*, *guard*,
    *routing*: those sections of the configuration; *settings*: the settings ``load_settings``
    takes. Its default organization is funded with ¥1,000 (``first_key`` is its key). The database
    is the session's, holds and limits shared through Redis when ``DIZUO_TEST_REDIS_URL`` is set."""
    os.environ["FAKE_UPSTREAM_KEY"] = UPSTREAM_KEY

    @contextlib.contextmanager
    def served(
        deployments: Sequence[dict[str, object]] = (),
        *,
        local: bool = False,
        server: dict[str, object] | None = None,
        guard: dict[str, object] | None = None,
        routing: dict[str, str] | None = None,
        **settings: Any,
    ) -> Iterator[RunningGateway]:
        sections: dict[str, object] = {"local": local}
        for section, value in (("server", server), ("guard", guard), ("routing", routing)):
            if value is not None:
                sections[section] = value
        options: dict[str, Any] = {
            "port": free_port(),  # the platform's own URL (evaluation runs call it) is the real one
            # The suite's documents take well under a second and 100 MB; bombs are cut at 5 s or 512 MB.
            "kb_parse_cpu_seconds": 5,
            "kb_parse_memory_mb": 512,
            **settings,
        }
        path = tmp_path_factory.mktemp("served") / "dizuo.yaml"
        ready = _settings(path, upstream, deployments, sections, database_url, redis_url, **options)
        first_key, _ = prepare(ready)
        db = Database(ready.resolved_database_url)
        if first_key is None:  # another platform on this database made the default organization
            first_key = create_key(db, "default").key
        topup(db, "default", parse_cny("1000"))
        db.dispose()
        platform = create_app(ready)
        running = ServerThread(platform, port=ready.port).start()
        try:
            yield RunningGateway(running.url, first_key, ready, platform)
        finally:
            running.stop()

    return served
