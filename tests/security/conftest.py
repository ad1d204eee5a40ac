"""The platform the security tests attack, served on a real socket (bodies sent byte by byte, the
console's forms): two chat models on the fake upstream, ``echo-model`` at ¥1.5 / ¥2 and
``pricey-model`` at ¥0.001 an output token (a call's hold then equals its true cost). Two tenants of
it, each with a funded API key and its own members, and a platform admin: what a cross-tenant test
needs to try one tenant's reach into the other."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from dizuo.accounts import create_key, create_org
from dizuo.accounts.members import create_member, create_token
from dizuo.billing import parse_cny
from dizuo.billing.service import topup
from dizuo.store import Database
from tests.support.platform import RunningGateway, Serve, upstream_deployment

PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class Tenant:
    org: str
    key: str  # an API key of the organization, with ¥10 in its wallet
    admin: str  # an org-admin's admin API token
    developer: str  # an org-developer's admin API token
    admin_user: str
    developer_user: str


@dataclass(frozen=True)
class Platform:
    a: Tenant
    b: Tenant
    operator: str  # a platform admin's token
    operator_user: str


def _tenant(db: Database, tag: str, name: str) -> Tenant:
    org = f"{name}-{tag}"
    create_org(db, org)
    topup(db, org, parse_cny("10"))
    users = (f"{name}-admin-{tag}", f"{name}-dev-{tag}")
    create_member(db, users[0], PASSWORD, "org-admin", org=org)
    create_member(db, users[1], PASSWORD, "org-developer", org=org)
    key = create_key(db, org).key
    return Tenant(org, key, create_token(db, users[0]), create_token(db, users[1]), *users)


@pytest.fixture(scope="package")
def gateway(serve: Serve) -> Iterator[RunningGateway]:
    deployments = [
        upstream_deployment("echo-model"),
        upstream_deployment("pricey-model", price=("0", "1000")),
    ]
    with serve(deployments) as running:
        yield running


@pytest.fixture(scope="module")
def platform(gateway: RunningGateway) -> Platform:
    db = Database(gateway.settings.resolved_database_url)
    tag = uuid.uuid4().hex[:6]
    try:
        operator = f"operator-{tag}"
        create_member(db, operator, PASSWORD, "platform-admin")
        found = Platform(_tenant(db, tag, "甲"), _tenant(db, tag, "乙"), create_token(db, operator), operator)
    finally:
        db.dispose()
    time.sleep(3 * gateway.settings.key_refresh_seconds)  # every worker has loaded the new keys
    return found


@pytest.fixture
def admin_api(gateway: RunningGateway) -> Iterator[httpx.Client]:
    """An admin API client; pass a token per request with ``headers=bearer(token)``."""
    with httpx.Client(base_url=f"{gateway.url}/admin/v1", timeout=30) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}
