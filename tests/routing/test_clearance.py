"""Data classes fail closed: every combination of organization, key and header class."""

from __future__ import annotations

import itertools
import uuid

import httpx
import pytest

from dizuo.accounts import create_key, create_org
from dizuo.billing import parse_cny
from dizuo.billing.service import topup
from dizuo.billing.tables import UsageRecord
from tests.support.platform import GatewayApp, PlatformUnderTest, upstream_deployment

CLASSES = ["general", "important", "core"]
SERVED_BY = {"general": "cls-public", "important": "cls-private", "core": "cls-local"}
# One alias on public, private and local compute in Chongqing, cheapest and least trusted first.
CLASSED = [
    upstream_deployment("classed-model", name="cls-public", cloud="public", region="cq", priority=0),
    upstream_deployment(
        "classed-model",
        name="cls-private",
        cloud="private",
        region="cq",
        data_class_max="important",
        priority=1,
    ),
    upstream_deployment(
        "classed-model", name="cls-local", cloud="local", region="cq", data_class_max="core", priority=2
    ),
]


def key_for(
    platform: PlatformUnderTest, org_class: str, key_class: str | None, region: str | None = "cq"
) -> str:
    name = f"cls-{uuid.uuid4().hex[:8]}"
    create_org(platform.db, name, org_class, region=region)
    topup(platform.db, name, parse_cny("1"))
    return create_key(platform.db, name, data_class=key_class).key


async def ask(platform: PlatformUnderTest, key: str, model: str, header: str | None = None) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "合同条款"}]}
    headers = {"X-Dizuo-Data-Class": header} if header else None
    return await platform.http(key).post("/v1/chat/completions", json=body, headers=headers)


@pytest.mark.parametrize(
    ("org_class", "key_class", "header"),
    list(itertools.product(CLASSES, [None, *CLASSES], [None, *CLASSES])),
)
async def test_the_highest_class_wins_and_routes_only_to_cleared_compute(
    gateway_app: GatewayApp, org_class: str, key_class: str | None, header: str | None
) -> None:
    platform = await gateway_app(CLASSED)
    expected = max([org_class, key_class or "general", header or "general"], key=CLASSES.index)
    response = await ask(platform, key_for(platform, org_class, key_class), "classed-model", header)
    assert response.status_code == 200, response.text
    assert response.headers["x-dizuo-deployment"] == SERVED_BY[expected]


@pytest.mark.parametrize("data_class", ["important", "core"])
async def test_public_only_model_refuses_protected_data(gateway_app: GatewayApp, data_class: str) -> None:
    platform = await gateway_app([upstream_deployment("public-only-model", name="pub-only", cloud="public")])
    response = await ask(platform, key_for(platform, "general", None), "public-only-model", data_class)
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "no_cleared_deployment"
    assert data_class in error["message"] and "pub-only" in error["message"]
    assert "choices" not in response.text


async def test_core_data_stays_in_its_region(gateway_app: GatewayApp) -> None:
    # An organization in Xinjiang: the Chongqing core deployment is not for it.
    platform = await gateway_app(CLASSED)
    response = await ask(platform, key_for(platform, "core", None, region="xj"), "classed-model")
    assert response.status_code == 503
    assert "cls-local: region cq is outside xj" in response.json()["error"]["message"]


async def test_core_data_without_an_org_region_stays_local(gateway_app: GatewayApp) -> None:
    platform = await gateway_app(CLASSED)
    response = await ask(platform, key_for(platform, "core", None, region=None), "classed-model")
    assert response.status_code == 503


async def test_an_operator_may_allow_core_data_across_regions(gateway_app: GatewayApp) -> None:
    across = upstream_deployment(
        "cross-model",
        name="core-xj",
        cloud="private",
        region="xj",
        data_class_max="core",
        core_cross_region=True,
    )
    platform = await gateway_app([across])
    response = await ask(platform, key_for(platform, "core", None, region="cq"), "cross-model")
    assert response.status_code == 200
    assert response.headers["x-dizuo-deployment"] == "core-xj"


async def test_header_cannot_lower_the_class(gateway_app: GatewayApp) -> None:
    platform = await gateway_app(CLASSED)
    response = await ask(platform, key_for(platform, "important", None), "classed-model", "general")
    assert response.headers["x-dizuo-deployment"] == "cls-private"


async def test_bad_header_is_a_400(gateway_app: GatewayApp) -> None:
    platform = await gateway_app(CLASSED)
    response = await ask(platform, key_for(platform, "general", None), "classed-model", "secret")
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "x-dizuo-data-class"


async def test_usage_record_keeps_the_class_the_call_ran_under(gateway_app: GatewayApp) -> None:
    platform = await gateway_app(CLASSED)
    response = await ask(platform, key_for(platform, "general", None), "classed-model", "important")
    with platform.db.session() as session:
        record = session.get(UsageRecord, response.headers["x-request-id"])
        assert record is not None and record.data_class == "important"
