"""Circuit breaking and capacity through the gateway, with an upstream that fails and recovers on command."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from dizuo.accounts.members import create_member, create_token
from dizuo.routing.health import Health
from tests.support.clock import Clock
from tests.support.platform import GatewayApp, PlatformUnderTest, RunningGateway, Serve, upstream_deployment
from tests.support.upstream import FakeUpstream


@pytest.fixture(scope="module")
def gateway(serve: Serve) -> Iterator[RunningGateway]:
    """A stream read off a real socket: ``mid-model``'s first deployment (``mid-a``) cuts its stream after the
    first event; the second (``mid-b``) must not be tried."""
    with serve(
        [
            upstream_deployment("mid-model", "ctl-mid-a", name="mid-a", priority=0),
            upstream_deployment("mid-model", "ctl-mid-b", name="mid-b", priority=1),
        ]
    ) as running:
        yield running


def seen(upstream: FakeUpstream, model: str) -> int:
    return sum(1 for s in upstream.seen if s.body.get("model") == model)


def scripted() -> str:
    """An upstream model name of this test's own, whose behaviour it sets with ``upstream.scripted``."""
    return f"ctl-{uuid.uuid4().hex[:8]}"


async def ask(platform: PlatformUnderTest, key: str, model: str, **body: Any) -> httpx.Response:
    return await platform.http(key).post(
        "/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": "x"}], **body}
    )


@pytest.mark.parametrize("failure", ["fail500", "ratelimit"])
async def test_failing_deployment_is_skipped_then_probed_back(
    gateway_app: GatewayApp, upstream: FakeUpstream, failure: str
) -> None:
    primary = scripted()
    platform = await gateway_app(
        [
            upstream_deployment("cb-model", primary, name="cb-a", priority=0),
            upstream_deployment("cb-model", name="cb-b", priority=1),
        ],
        circuit_failure_threshold=3,
        circuit_cooldown_seconds=1.0,
    )
    key = platform.org(balance="1").key
    with upstream.scripted(modes={primary: failure}):
        # Three failovers from cb-a to cb-b open cb-a's circuit.
        for _ in range(3):
            response = await ask(platform, key, "cb-model")
            assert response.status_code == 200 and response.headers["x-dizuo-deployment"] == "cb-b"
        before = seen(upstream, primary)
        for _ in range(3):
            assert (await ask(platform, key, "cb-model")).headers["x-dizuo-deployment"] == "cb-b"
        assert seen(upstream, primary) == before, "an open circuit was not skipped"
        assert platform.platform.router.health.state("cb-a") == "open"
        upstream.modes[primary] = "ok"
        await asyncio.sleep(1.05)  # the cooldown
        probe = await ask(platform, key, "cb-model")
        assert probe.headers["x-dizuo-deployment"] == "cb-a"
        assert platform.platform.router.health.state("cb-a") == "closed"


async def test_deployment_at_capacity_spills_over(gateway_app: GatewayApp) -> None:
    platform = await gateway_app(
        [
            upstream_deployment("cap-model", name="cap-a", priority=0, limits={"rpm": 1}),
            upstream_deployment("cap-model", name="cap-b", priority=1),
        ]
    )
    key = platform.org(balance="1").key
    served = [(await ask(platform, key, "cap-model")).headers["x-dizuo-deployment"] for _ in range(3)]
    assert served == ["cap-a", "cap-b", "cap-b"]  # cap-a allows one call a minute


async def test_a_deployment_passed_over_keeps_no_money_held(gateway_app: GatewayApp) -> None:
    # With Redis the hold is asked for the router's first choice before the call is ready; when that
    # choice is passed over (cap-a, one call a minute), its hold must go back before cap-b's is taken.
    platform = await gateway_app(
        [
            upstream_deployment("cap-model", name="cap-a", priority=0, limits={"rpm": 1}, price=("1.5", "2")),
            upstream_deployment("cap-model", name="cap-b", priority=1, price=("1.5", "2")),
        ]
    )
    key = platform.org(balance="1").key
    # Each holds ¥0.6 of output (300,000 tokens at ¥2/M): two such holds do not fit in ¥1.
    served = [await ask(platform, key, "cap-model", max_tokens=300_000) for _ in range(3)]
    assert [r.status_code for r in served] == [200, 200, 200]
    assert served[-1].headers["x-dizuo-deployment"] == "cap-b"


async def test_deployments_show_health_in_admin_and_metrics(gateway_app: GatewayApp) -> None:
    platform = await gateway_app(
        [upstream_deployment("echo-model", name="echo-1", region="cq", data_class_max="general")]
    )
    await ask(platform, platform.org(balance="1").key, "echo-model")
    text = (await platform.http().get("/metrics")).text
    assert 'dizuo_deployment_up{deployment="echo-1"} 1.0' in text
    assert 'dizuo_deployment_latency_seconds{deployment="echo-1"}' in text
    viewer = f"ops-viewer-{uuid.uuid4().hex[:6]}"
    create_member(platform.db, viewer, "correct horse battery", "auditor")
    rows = (await platform.http(create_token(platform.db, viewer)).get("/admin/v1/deployments")).json()
    echo = next(row for row in rows if row["name"] == "echo-1")
    assert echo["health"]["state"] == "closed" and echo["health"]["latency_ms"] > 0
    assert echo["region"] == "cq" and echo["data_class_max"] == "general"


def test_breaker_states() -> None:
    clock = Clock()
    health = Health(failure_threshold=2, cooldown=10, clock=clock)
    health.failed("d")
    assert health.admit("d")
    health.failed("d")
    assert health.state("d") == "open" and not health.admit("d")
    clock.now = 10
    assert health.admit("d")  # the one probe
    assert not health.admit("d")  # and no second one while it runs
    health.failed("d")  # the probe failed: open again
    assert health.state("d") == "open"
    clock.now = 20
    assert health.admit("d")
    health.succeeded("d", 0.1)
    assert health.state("d") == "closed" and health.of("d").latency == pytest.approx(0.1)


async def test_active_probe_opens_and_closes_the_circuit(
    gateway_app: GatewayApp, upstream: FakeUpstream
) -> None:
    platform = await gateway_app(
        [upstream_deployment("probe-model", name="probe-a", probe_seconds=0.1)], circuit_failure_threshold=3
    )
    health = platform.platform.router.health
    with upstream.scripted(modes={"probe": "fail"}):
        deadline = time.monotonic() + 5
        while health.state("probe-a") != "open":  # threshold 3, probed every 0.1 s, with no calls at all
            assert time.monotonic() < deadline, "failing probes did not open the circuit"
            await asyncio.sleep(0.05)
    deadline = time.monotonic() + 5
    while health.state("probe-a") != "closed":
        assert time.monotonic() < deadline, "a good probe did not close the circuit"
        await asyncio.sleep(0.05)


def test_no_failover_once_bytes_reached_the_client(
    gateway: RunningGateway, api_key: str, upstream: FakeUpstream
) -> None:
    with upstream.scripted(modes={"ctl-mid-a": "drop"}):
        with httpx.stream(
            "POST",
            f"{gateway.v1}/chat/completions",
            headers={"Authorization": f"Bearer {api_key}"},
            json={"model": "mid-model", "stream": True, "messages": [{"role": "user", "content": "x"}]},
            timeout=30,
        ) as response:
            text = response.read().decode()
        assert response.headers["x-dizuo-deployment"] == "mid-a"
        assert '"error"' in text and "[DONE]" not in text
        assert seen(upstream, "ctl-mid-b") == 0, "the call was retried after bytes reached the client"


async def test_latency_strategy_learns_the_faster_deployment(
    gateway_app: GatewayApp, upstream: FakeUpstream
) -> None:
    slow = scripted()
    platform = await gateway_app(
        [
            upstream_deployment("lat-model", slow, name="lat-slow"),
            upstream_deployment("lat-model", name="lat-fast"),
        ],
        routing={"lat-model": "latency"},
    )
    key = platform.org(balance="1").key
    with upstream.scripted(modes={slow: "slow:0.15"}):
        served = [(await ask(platform, key, "lat-model")).headers["x-dizuo-deployment"] for _ in range(6)]
    assert set(served[:2]) == {"lat-slow", "lat-fast"}  # each unmeasured one is tried once
    assert served[2:] == ["lat-fast"] * 4
