"""Rate limits through the gateway: 429 in the envelope with retry-after, and x-ratelimit-* headers.

Each test builds its platform (``gateway_app``); one keeps the session's socket, where a client that
gives up is what frees its slot."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from dizuo.accounts import create_key, create_org
from dizuo.billing import parse_cny
from dizuo.billing.service import topup
from dizuo.store import Database
from tests.support.platform import GatewayApp, PlatformUnderTest, RunningGateway, Serve, upstream_deployment
from tests.support.upstream import FakeUpstream

# ¥1.5 / ¥2 per million tokens in and out: a call of max_tokens N holds about N × ¥0.000002.
ECHO = upstream_deployment("echo-model", "echo", price=("1.5", "2"))


@pytest.fixture(scope="module")
def gateway(serve: Serve) -> Iterator[RunningGateway]:
    """A call its client gives up on frees its concurrency slot (a real socket): ``hang-model`` never answers,
    ``echo-model`` at once."""
    with serve([upstream_deployment("hang-model", "hang"), upstream_deployment("echo-model")]) as running:
        yield running


async def chat(platform: PlatformUnderTest, key: str, max_tokens: int = 10) -> httpx.Response:
    body = {
        "model": "echo-model",
        "messages": [{"role": "user", "content": "限流"}],
        "max_tokens": max_tokens,
    }
    return await platform.http(key).post("/v1/chat/completions", json=body)


async def test_rpm_limit_answers_429_with_retry_after(gateway_app: GatewayApp) -> None:
    # On the embeddings endpoint: limits are the key's, whatever it calls.
    platform = await gateway_app([upstream_deployment("remote-embed", "embed", mode="embedding")])
    key = platform.org(balance="1", limits=(2, None, None)).key

    async def embed() -> httpx.Response:
        return await platform.http(key).post(
            "/v1/embeddings", json={"model": "remote-embed", "input": "限流"}
        )

    first = await embed()
    assert first.status_code == 200
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    assert (await embed()).status_code == 200
    refused = await embed()
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "30"
    error = refused.json()["error"]
    assert error["code"] == "rate_limit_exceeded" and error["type"] == "rate_limit_error"
    assert "密钥" in error["message"]


def key_with(gateway: RunningGateway, **limits: int) -> str:
    db = Database(gateway.settings.resolved_database_url)
    name = f"limited-{uuid.uuid4().hex[:8]}"
    create_org(db, name)
    topup(db, name, parse_cny("1"))
    key = create_key(db, name, limits=(limits.get("rpm"), limits.get("tpm"), limits.get("concurrency"))).key
    db.dispose()
    return key


def call(gateway: RunningGateway, key: str) -> httpx.Response:
    return httpx.post(
        f"{gateway.v1}/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "echo-model", "messages": [{"role": "user", "content": "限流"}]},
        timeout=30,
    )


def test_concurrency_limit(gateway: RunningGateway, upstream: FakeUpstream) -> None:
    key = key_with(gateway, concurrency=1)

    def hanging_call() -> None:
        with contextlib.suppress(httpx.TimeoutException):  # the client gives up; the gateway frees the slot
            httpx.post(
                f"{gateway.v1}/chat/completions",
                headers={"Authorization": f"Bearer {key}"},
                json={"model": "hang-model", "messages": [{"role": "user", "content": "x"}]},
                timeout=1.5,
            )

    upstream.hang_started.clear()
    hanging = threading.Thread(target=hanging_call)
    hanging.start()
    try:
        assert upstream.hang_started.wait(10), "the hanging call never reached the upstream"
        response = call(gateway, key)
        assert response.status_code == 429
        assert "并发" in response.json()["error"]["message"]
    finally:
        hanging.join()
    deadline = time.monotonic() + 5
    while (
        response := call(gateway, key)
    ).status_code == 429:  # the slot comes back once the call is cancelled
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert response.status_code == 200


async def test_organization_limits_apply_to_all_its_keys(gateway_app: GatewayApp) -> None:
    platform = await gateway_app([ECHO])
    name = f"org-limited-{uuid.uuid4().hex[:8]}"
    create_org(platform.db, name, limits=(1, None, None))
    topup(platform.db, name, parse_cny("1"))
    first, second = create_key(platform.db, name).key, create_key(platform.db, name).key
    assert (await chat(platform, first)).status_code == 200
    refused = await chat(platform, second)
    assert refused.status_code == 429
    assert "组织" in refused.json()["error"]["message"]


async def test_a_call_refused_by_its_rate_limit_keeps_no_money_held(gateway_app: GatewayApp) -> None:
    # The limits and the hold are asked for together; a 429 must give its hold back at once.
    platform = await gateway_app([ECHO])
    org = platform.org(balance="1", limits=(1, None, None))
    free = create_key(platform.db, org.name).key
    assert (await chat(platform, org.key, 10)).status_code == 200
    # Holds ¥0.6 of output (¥2 per million tokens): more than what would be left beside another.
    refused = await chat(platform, org.key, 300_000)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    # Had the refused call kept its hold, this one would find too little free money (402).
    assert (await chat(platform, free, 300_000)).status_code == 200


async def after_a_top_up(platform: PlatformUnderTest, name: str) -> None:
    """Top *name* up by ¥1 from outside the gateway, and wait for one refresh of its wallets."""
    topup(platform.db, name, parse_cny("1"))
    await asyncio.sleep(platform.platform.gateway.meter.journal.refresh_seconds + 0.3)


async def test_a_call_refused_for_money_gives_back_its_concurrency_slot(gateway_app: GatewayApp) -> None:
    platform = await gateway_app([ECHO])
    org = platform.org(limits=(None, None, 1))  # no money yet
    assert (await chat(platform, org.key)).status_code == 402
    await after_a_top_up(platform, org.name)
    # The 402 was admitted by the limits first: its slot must be free again, or this is a 429.
    assert (await chat(platform, org.key)).status_code == 200


async def test_a_finished_call_gives_back_its_slot_and_the_tokens_it_did_not_use(
    gateway_app: GatewayApp,
) -> None:
    # Each call holds more tokens than the whole bucket (admitted while it is full) and uses a few
    # dozen: only if every call's estimate is corrected to the truth, and its slot given back before
    # its answer arrives, do the next ones get through.
    platform = await gateway_app([ECHO])
    key = platform.org(balance="1", limits=(None, 1_000, 1)).key
    for _ in range(3):
        response = await chat(platform, key, 2_000)
        assert response.status_code == 200, response.text


async def test_a_call_refused_for_money_counts_against_the_requests_per_minute(
    gateway_app: GatewayApp,
) -> None:
    platform = await gateway_app([ECHO])
    org = platform.org(limits=(2, None, None))  # no money yet
    assert (await chat(platform, org.key)).status_code == 402
    await after_a_top_up(platform, org.name)
    answered = await chat(platform, org.key)
    assert answered.status_code == 200
    assert answered.headers["x-ratelimit-remaining-requests"] == "0"
    assert (await chat(platform, org.key)).status_code == 429
