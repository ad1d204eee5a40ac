"""Rate limits through the gateway: 429 in the envelope with retry-after, and x-ratelimit-* headers."""

from __future__ import annotations

import threading
import uuid

import httpx

from dizuo.accounts import create_key, create_org
from dizuo.billing import parse_cny
from dizuo.billing.service import topup
from dizuo.store import Database
from tests.conftest import RunningGateway


def key_with(gateway: RunningGateway, **limits: int) -> str:
    db = Database(gateway.settings.resolved_database_url)
    name = f"limited-{uuid.uuid4().hex[:8]}"
    create_org(db, name)
    topup(db, name, parse_cny("1"))
    key = create_key(
        db, name, limits=(limits.get("rpm"), limits.get("tpm"), limits.get("concurrency"))
    ).key
    db.dispose()
    return key


def call(gateway: RunningGateway, key: str, model: str = "local/use-multilingual-v3") -> httpx.Response:
    return httpx.post(f"{gateway.v1}/embeddings", headers={"Authorization": f"Bearer {key}"},
                      json={"model": model, "input": "限流"}, timeout=30)


def test_rpm_limit_answers_429_with_retry_after(gateway: RunningGateway) -> None:
    key = key_with(gateway, rpm=2)
    first = call(gateway, key)
    assert first.status_code == 200
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    assert call(gateway, key).status_code == 200
    refused = call(gateway, key)
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "30"
    error = refused.json()["error"]
    assert error["code"] == "rate_limit_exceeded" and error["type"] == "rate_limit_error"
    assert "密钥" in error["message"]


def test_concurrency_limit(gateway: RunningGateway) -> None:
    key = key_with(gateway, concurrency=1)
    slow = threading.Thread(
        target=lambda: httpx.post(
            f"{gateway.v1}/chat/completions", headers={"Authorization": f"Bearer {key}"},
            json={"model": "slow-model", "messages": [{"role": "user", "content": "x"}]}, timeout=30,
        )
    )
    slow.start()
    try:
        for _ in range(100):  # wait until the slow call is in flight
            response = call(gateway, key)
            if response.status_code == 429:
                break
        assert response.status_code == 429
        assert "并发" in response.json()["error"]["message"]
    finally:
        slow.join()
    assert call(gateway, key).status_code == 200  # the slot came back when the slow call ended
