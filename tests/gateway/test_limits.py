"""Rate limits through the gateway: 429 in the envelope with retry-after, and x-ratelimit-* headers."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid

import httpx

from dizuo.accounts import create_key, create_org
from dizuo.billing import parse_cny
from dizuo.billing.service import topup
from dizuo.store import Database
from tests.conftest import RunningGateway
from tests.support.calls import post_chat
from tests.support.upstream import FakeUpstream


def key_with(gateway: RunningGateway, **limits: int) -> str:
    db = Database(gateway.settings.resolved_database_url)
    name = f"limited-{uuid.uuid4().hex[:8]}"
    create_org(db, name)
    topup(db, name, parse_cny("1"))
    key = create_key(db, name, limits=(limits.get("rpm"), limits.get("tpm"), limits.get("concurrency"))).key
    db.dispose()
    return key


def call(gateway: RunningGateway, key: str, model: str = "local/use-multilingual-v3") -> httpx.Response:
    return httpx.post(
        f"{gateway.v1}/embeddings",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": model, "input": "限流"},
        timeout=30,
    )


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


def test_organization_limits_apply_to_all_its_keys(gateway: RunningGateway) -> None:
    db = Database(gateway.settings.resolved_database_url)
    name = f"org-limited-{uuid.uuid4().hex[:8]}"
    create_org(db, name, limits=(1, None, None))
    first, second = create_key(db, name).key, create_key(db, name).key
    db.dispose()
    assert call(gateway, first).status_code == 200
    refused = call(gateway, second)
    assert refused.status_code == 429
    assert "组织" in refused.json()["error"]["message"]


def chat(gateway: RunningGateway, key: str, max_tokens: int) -> httpx.Response:
    return post_chat(gateway, key, "echo-model", "限流", max_tokens=max_tokens)


def test_a_call_refused_by_its_rate_limit_keeps_no_money_held(gateway: RunningGateway) -> None:
    # The limits and the hold are asked for together; a 429 must give its hold back at once.
    db = Database(gateway.settings.resolved_database_url)
    name = f"limited-{uuid.uuid4().hex[:8]}"
    create_org(db, name)
    topup(db, name, parse_cny("1"))
    limited = create_key(db, name, limits=(1, None, None)).key
    free = create_key(db, name).key
    db.dispose()
    assert chat(gateway, limited, 10).status_code == 200
    # Holds ¥0.6 of output (¥2 per million tokens): more than what would be left beside another.
    refused = chat(gateway, limited, 300_000)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    # Had the refused call kept its hold, this one would find too little free money (402).
    assert chat(gateway, free, 300_000).status_code == 200


def test_a_call_refused_for_money_gives_back_its_concurrency_slot(gateway: RunningGateway) -> None:
    db = Database(gateway.settings.resolved_database_url)
    name = f"limited-{uuid.uuid4().hex[:8]}"
    create_org(db, name)  # no money yet
    key = create_key(db, name, limits=(None, None, 1)).key
    assert chat(gateway, key, 10).status_code == 402
    topup(db, name, parse_cny("1"))
    db.dispose()
    time.sleep(gateway.app.meter.journal.refresh_seconds + 0.3)  # a top-up from outside: one refresh
    # The 402 was admitted by the limits first: its slot must be free again, or this is a 429.
    assert chat(gateway, key, 10).status_code == 200


def test_a_finished_call_gives_back_its_slot_and_the_tokens_it_did_not_use(gateway: RunningGateway) -> None:
    # Each call holds more tokens than the whole bucket (admitted while it is full) and uses a few
    # dozen: only if every call's estimate is corrected to the truth, and its slot given back before
    # its answer arrives, do the next ones get through.
    key = key_with(gateway, tpm=1_000, concurrency=1)
    for _ in range(3):
        response = chat(gateway, key, 2_000)
        assert response.status_code == 200, response.text


def test_a_call_refused_for_money_counts_against_the_requests_per_minute(gateway: RunningGateway) -> None:
    db = Database(gateway.settings.resolved_database_url)
    name = f"limited-{uuid.uuid4().hex[:8]}"
    create_org(db, name)  # no money yet
    key = create_key(db, name, limits=(2, None, None)).key
    assert chat(gateway, key, 10).status_code == 402
    topup(db, name, parse_cny("1"))
    db.dispose()
    time.sleep(gateway.app.meter.journal.refresh_seconds + 0.3)  # a top-up from outside: one refresh
    answered = chat(gateway, key, 10)
    assert answered.status_code == 200
    assert answered.headers["x-ratelimit-remaining-requests"] == "0"
    assert chat(gateway, key, 10).status_code == 429
