"""/v1/models, health, readiness and Prometheus metrics. The embedded local models are listed by a
server this module starts (which loads them once); the rest on a platform each test describes."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from dizuo.routing import LOCAL_CHAT, LOCAL_EMBEDDING
from tests.support.platform import GatewayApp, RunningGateway, Serve, upstream_deployment

FAILOVER = [
    upstream_deployment("failover-model", "fail500", name="fo-primary", priority=0),
    upstream_deployment("failover-model", "echo", name="fo-backup", priority=1, region="xj"),
]


@pytest.fixture(scope="module")
def gateway(serve: Serve) -> Iterator[RunningGateway]:
    """The embedded local models beside a chat and an embedding deployment (``echo-model``, ``remote-embed``),
    listed and retrieved."""
    with serve(
        [upstream_deployment("echo-model"), upstream_deployment("remote-embed", "embed", mode="embedding")],
        local=True,
    ) as running:
        yield running


def test_models_lists_configured_and_local(client: openai.OpenAI) -> None:
    ids = {model.id for model in client.models.list()}
    assert {"echo-model", "remote-embed", LOCAL_CHAT, LOCAL_EMBEDDING} <= ids


async def test_models_shows_deployments_with_prices(gateway_app: GatewayApp) -> None:
    platform = await gateway_app(FAILOVER)
    org = platform.org()
    data = (await platform.http(org.key).get("/v1/models")).json()["data"]
    failover = next(m for m in data if m["id"] == "failover-model")
    names = [d["name"] for d in failover["dizuo"]["deployments"]]
    assert names == ["fo-backup", "fo-primary"]
    assert failover["dizuo"]["deployments"][0]["price_cny_per_million"] == {"input": "1.5", "output": "2"}


async def test_models_respects_the_key_allowlist(gateway_app: GatewayApp) -> None:
    platform = await gateway_app(
        [upstream_deployment("echo-model"), upstream_deployment("tools-model", "tools"), *FAILOVER]
    )
    org = platform.org(models=["echo-model", "tools-model"])
    data = (await platform.http(org.key).get("/v1/models")).json()["data"]
    assert sorted(m["id"] for m in data) == ["echo-model", "tools-model"]


async def test_health_and_readiness(gateway_app: GatewayApp) -> None:
    platform = await gateway_app([upstream_deployment("echo-model")])
    client = platform.http()
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


async def test_metrics_count_calls_and_tokens(gateway_app: GatewayApp) -> None:
    platform = await gateway_app([upstream_deployment("echo-model", name="echo-1")])
    org = platform.org(balance="1")
    async with platform.sdk(org.key) as client:
        await client.chat.completions.create(model="echo-model", messages=[{"role": "user", "content": "x"}])
    text = (await platform.http().get("/metrics")).text
    assert 'dizuo_requests_total{endpoint="chat",model="echo-model",status="200"} 1.0' in text
    assert 'dizuo_tokens_total{deployment="echo-1",kind="prompt",model="echo-model"} 7.0' in text
    assert "dizuo_upstream_first_byte_seconds_bucket" in text


def test_a_model_is_retrieved_by_its_id_slashes_and_all(client: openai.OpenAI) -> None:
    local = client.models.retrieve("local/smollm2-135m-instruct")
    assert local.id == "local/smollm2-135m-instruct" and local.object == "model"
    assert client.models.retrieve("echo-model").owned_by == "openai-compatible"
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve("no-such/model")
    assert caught.value.code == "model_not_found"


async def test_the_server_s_address_leads_a_person_to_the_console(gateway_app: GatewayApp) -> None:
    platform = await gateway_app()
    answer = await platform.http().get("/", follow_redirects=False)
    assert answer.status_code == 307 and answer.headers["location"] == "/console/"
