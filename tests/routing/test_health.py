"""Circuit breaking and capacity through the gateway, with an upstream that fails and recovers on command."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from dizuo.accounts import create_key, create_org
from dizuo.accounts.members import create_member, create_token
from dizuo.billing import parse_cny
from dizuo.billing.service import topup
from dizuo.routing.health import Health
from dizuo.store import Database
from tests.conftest import RunningGateway
from tests.support.calls import post_chat
from tests.support.clock import Clock
from tests.support.upstream import FakeUpstream


def ask(gateway: RunningGateway, key: str, model: str) -> httpx.Response:
    return post_chat(gateway, key, model)


def seen(upstream: FakeUpstream, model: str) -> int:
    return sum(1 for s in upstream.seen if s.body.get("model") == model)


@pytest.mark.parametrize("failure", ["fail500", "ratelimit"])
def test_failing_deployment_is_skipped_then_probed_back(
    gateway: RunningGateway, api_key: str, upstream: FakeUpstream, failure: str
) -> None:
    with upstream.scripted(modes={"ctl-a": failure}):
        # Threshold 3 in the test gateway: three failovers from cb-a to cb-b open cb-a's circuit.
        for _ in range(3):
            response = ask(gateway, api_key, "cb-model")
            assert response.status_code == 200 and response.headers["x-dizuo-deployment"] == "cb-b"
        before = seen(upstream, "ctl-a")
        for _ in range(3):
            assert ask(gateway, api_key, "cb-model").headers["x-dizuo-deployment"] == "cb-b"
        assert seen(upstream, "ctl-a") == before, "an open circuit was not skipped"
        assert gateway.app.router.health.state("cb-a") == "open"
        upstream.modes["ctl-a"] = "ok"
        time.sleep(1.05)  # cooldown 1 s in the test gateway
        probe = ask(gateway, api_key, "cb-model")
        assert probe.headers["x-dizuo-deployment"] == "cb-a"
        assert gateway.app.router.health.state("cb-a") == "closed"


def test_deployment_at_capacity_spills_over(gateway: RunningGateway, api_key: str) -> None:
    served = [ask(gateway, api_key, "cap-model").headers["x-dizuo-deployment"] for _ in range(3)]
    assert served == ["cap-a", "cap-b", "cap-b"]  # cap-a allows one call a minute


def test_a_deployment_passed_over_keeps_no_money_held(gateway: RunningGateway) -> None:
    # With Redis the hold is asked for the router's first choice before the call is ready; when that
    # choice is passed over (cap-a, one call a minute), its hold must go back before cap-b's is taken.
    db = Database(gateway.settings.resolved_database_url)
    name = f"spill-{uuid.uuid4().hex[:8]}"
    create_org(db, name)
    topup(db, name, parse_cny("1"))
    key = create_key(db, name).key
    db.dispose()

    # Each holds ¥0.6 of output (¥2 per million tokens): two such holds do not fit in ¥1.
    served = [post_chat(gateway, key, "cap-model", max_tokens=300_000) for _ in range(3)]
    assert [r.status_code for r in served] == [200, 200, 200]
    assert served[-1].headers["x-dizuo-deployment"] == "cap-b"


def test_deployments_show_health_in_admin_and_metrics(gateway: RunningGateway, api_key: str) -> None:
    ask(gateway, api_key, "echo-model")
    text = httpx.get(f"{gateway.url}/metrics").text
    assert 'dizuo_deployment_up{deployment="echo-1"} 1.0' in text
    assert 'dizuo_deployment_latency_seconds{deployment="echo-1"}' in text
    db = Database(gateway.settings.resolved_database_url)
    create_member(db, "ops-viewer", "correct horse battery", "auditor")
    token = create_token(db, "ops-viewer")
    db.dispose()
    rows = httpx.get(
        f"{gateway.url}/admin/v1/deployments", headers={"Authorization": f"Bearer {token}"}
    ).json()
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


def test_active_probe_opens_and_closes_the_circuit(gateway: RunningGateway, upstream: FakeUpstream) -> None:
    health = gateway.app.router.health
    with upstream.scripted(modes={"probe": "fail"}):
        deadline = time.monotonic() + 5
        while health.state("probe-a") != "open":  # threshold 3, probed every 0.1 s, with no calls at all
            assert time.monotonic() < deadline, "failing probes did not open the circuit"
            time.sleep(0.05)
    deadline = time.monotonic() + 5
    while health.state("probe-a") != "closed":
        assert time.monotonic() < deadline, "a good probe did not close the circuit"
        time.sleep(0.05)


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


def test_latency_strategy_learns_the_faster_deployment(
    gateway: RunningGateway, api_key: str, upstream: FakeUpstream
) -> None:
    with upstream.scripted(modes={"ctl-lat-slow": "slow:0.15"}):
        served = [ask(gateway, api_key, "lat-model").headers["x-dizuo-deployment"] for _ in range(6)]
    assert set(served[:2]) == {"lat-slow", "lat-fast"}  # each unmeasured one is tried once
    assert served[2:] == ["lat-fast"] * 4
