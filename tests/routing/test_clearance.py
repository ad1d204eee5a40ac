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
from dizuo.store import Database
from tests.conftest import RunningGateway
from tests.support.calls import post_chat

CLASSES = ["general", "important", "core"]
SERVED_BY = {"general": "cls-public", "important": "cls-private", "core": "cls-local"}


def key_for(gateway: RunningGateway, org_class: str, key_class: str | None, region: str | None = "cq") -> str:
    db = Database(gateway.settings.resolved_database_url)
    name = f"cls-{uuid.uuid4().hex[:8]}"
    create_org(db, name, org_class, region=region)
    topup(db, name, parse_cny("1"))
    key = create_key(db, name, data_class=key_class).key
    db.dispose()
    return key


def ask(gateway: RunningGateway, key: str, model: str, header: str | None = None) -> httpx.Response:
    return post_chat(gateway, key, model, "合同条款", {"X-Dizuo-Data-Class": header} if header else None)


@pytest.mark.parametrize(
    ("org_class", "key_class", "header"),
    list(itertools.product(CLASSES, [None, *CLASSES], [None, *CLASSES])),
)
def test_the_highest_class_wins_and_routes_only_to_cleared_compute(
    gateway: RunningGateway, org_class: str, key_class: str | None, header: str | None
) -> None:
    expected = max([org_class, key_class or "general", header or "general"], key=CLASSES.index)
    response = ask(gateway, key_for(gateway, org_class, key_class), "classed-model", header)
    assert response.status_code == 200, response.text
    assert response.headers["x-dizuo-deployment"] == SERVED_BY[expected]


@pytest.mark.parametrize("data_class", ["important", "core"])
def test_public_only_model_refuses_protected_data(gateway: RunningGateway, data_class: str) -> None:
    response = ask(gateway, key_for(gateway, "general", None), "public-only-model", data_class)
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "no_cleared_deployment"
    assert data_class in error["message"] and "pub-only" in error["message"]
    assert "choices" not in response.text


def test_core_data_stays_in_its_region(gateway: RunningGateway) -> None:
    # An organization in Xinjiang: the Chongqing core deployment is not for it.
    response = ask(gateway, key_for(gateway, "core", None, region="xj"), "classed-model")
    assert response.status_code == 503
    assert "cls-local: region cq is outside xj" in response.json()["error"]["message"]


def test_core_data_without_an_org_region_stays_local(gateway: RunningGateway) -> None:
    response = ask(gateway, key_for(gateway, "core", None, region=None), "classed-model")
    assert response.status_code == 503


def test_an_operator_may_allow_core_data_across_regions(gateway: RunningGateway) -> None:
    response = ask(gateway, key_for(gateway, "core", None, region="cq"), "cross-model")
    assert response.status_code == 200
    assert response.headers["x-dizuo-deployment"] == "core-xj"


def test_header_cannot_lower_the_class(gateway: RunningGateway) -> None:
    response = ask(gateway, key_for(gateway, "important", None), "classed-model", "general")
    assert response.headers["x-dizuo-deployment"] == "cls-private"


def test_bad_header_is_a_400(gateway: RunningGateway) -> None:
    response = ask(gateway, key_for(gateway, "general", None), "classed-model", "secret")
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "x-dizuo-data-class"


def test_usage_record_keeps_the_class_the_call_ran_under(gateway: RunningGateway) -> None:
    key = key_for(gateway, "general", None)
    response = ask(gateway, key, "classed-model", "important")
    db = Database(gateway.settings.resolved_database_url)
    with db.session() as session:
        record = session.get(UsageRecord, response.headers["x-request-id"])
        assert record is not None and record.data_class == "important"
    db.dispose()
