"""/v1/models, health, readiness and Prometheus metrics."""

from __future__ import annotations

import httpx
import openai
import pytest

from dizuo.accounts import create_key
from dizuo.routing import LOCAL_CHAT, LOCAL_EMBEDDING
from dizuo.store import Database
from tests.conftest import RunningGateway


def test_models_lists_configured_and_local(client: openai.OpenAI) -> None:
    ids = {model.id for model in client.models.list()}
    assert {"echo-model", "failover-model", "remote-embed", LOCAL_CHAT, LOCAL_EMBEDDING} <= ids


def test_models_shows_deployments_with_prices(gateway: RunningGateway, api_key: str) -> None:
    data = httpx.get(f"{gateway.v1}/models", headers={"Authorization": f"Bearer {api_key}"}).json()["data"]
    failover = next(m for m in data if m["id"] == "failover-model")
    names = [d["name"] for d in failover["dizuo"]["deployments"]]
    assert names == ["fo-backup", "fo-primary"]
    assert failover["dizuo"]["deployments"][0]["price_cny_per_million"] == {"input": "1.5", "output": "2"}


def test_models_respects_the_key_allowlist(gateway: RunningGateway) -> None:
    db = Database(gateway.settings.resolved_database_url)
    key = create_key(db, "default", models=["echo-model", LOCAL_CHAT]).key
    db.dispose()
    data = httpx.get(f"{gateway.v1}/models", headers={"Authorization": f"Bearer {key}"}).json()["data"]
    assert sorted(m["id"] for m in data) == sorted(["echo-model", LOCAL_CHAT])


def test_health_and_readiness(gateway: RunningGateway) -> None:
    assert httpx.get(f"{gateway.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{gateway.url}/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


def test_metrics_count_calls_and_tokens(gateway: RunningGateway, client: openai.OpenAI) -> None:
    client.chat.completions.create(model="echo-model", messages=[{"role": "user", "content": "x"}])
    text = httpx.get(f"{gateway.url}/metrics").text
    assert 'dizuo_requests_total{endpoint="chat",model="echo-model",status="200"}' in text
    assert 'dizuo_tokens_total{deployment="echo-1",kind="prompt",model="echo-model"}' in text
    assert "dizuo_upstream_first_byte_seconds_bucket" in text


def test_a_model_is_retrieved_by_its_id_slashes_and_all(client: openai.OpenAI) -> None:
    local = client.models.retrieve("local/smollm2-135m-instruct")
    assert local.id == "local/smollm2-135m-instruct" and local.object == "model"
    assert client.models.retrieve("echo-model").owned_by == "openai-compatible"
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve("no-such/model")
    assert caught.value.code == "model_not_found"


def test_the_server_s_address_leads_a_person_to_the_console(gateway: RunningGateway) -> None:
    answer = httpx.get(f"{gateway.url}/", follow_redirects=False)
    assert answer.status_code == 307 and answer.headers["location"] == "/console/"
