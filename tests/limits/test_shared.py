"""Rate limits in Redis: the same rules as in process, shared by every replica (two limiters here).

Needs DIZUO_TEST_REDIS_URL (scripts/services.sh). Redis's clock cannot be moved, so refills are
checked through the retry-after they announce, not by waiting a minute.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis

from dizuo.errors import RateLimited
from dizuo.limits import Limit, Subject
from dizuo.limits.shared import RedisLimiter


@pytest.fixture
async def replicas(redis_url: str | None) -> AsyncIterator[tuple[RedisLimiter, RedisLimiter]]:
    if not redis_url:
        pytest.skip("needs DIZUO_TEST_REDIS_URL (scripts/services.sh)")
    pair = (RedisLimiter(redis_url, slot_seconds=0.5), RedisLimiter(redis_url, slot_seconds=0.5))
    yield pair
    for limiter in pair:
        await limiter.aclose()


def subject(kind: str, limit: Limit) -> Subject:
    return Subject(f"{kind}:{uuid.uuid4().hex[:12]}", limit)


async def test_requests_per_minute_are_shared(replicas: tuple[RedisLimiter, RedisLimiter]) -> None:
    a, b = replicas
    key = (subject("key", Limit(rpm=2)),)
    await a.acquire(key, 0)
    permit = await b.acquire(key, 0)
    assert (permit.state.limit_requests, permit.state.remaining_requests) == (2, 0)
    with pytest.raises(RateLimited) as caught:
        await a.acquire(key, 0)
    assert caught.value.status == 429
    assert caught.value.headers["retry-after"] == "30"  # one request comes back every 30 s


async def test_tokens_are_corrected_by_the_truth(replicas: tuple[RedisLimiter, RedisLimiter]) -> None:
    a, b = replicas
    key = (subject("key", Limit(tpm=1000)),)
    permit = await a.acquire(key, 1500)  # bigger than the bucket: admitted when full, bucket now -500
    with pytest.raises(RateLimited):
        await b.acquire(key, 1)
    await a.release(permit, 400)  # it used 400 in truth: the bucket is back near 600
    left = (await b.acquire(key, 10)).state.remaining_tokens
    assert left is not None and 590 <= left < 600


async def test_concurrency_is_shared_and_all_or_nothing(replicas: tuple[RedisLimiter, RedisLimiter]) -> None:
    a, b = replicas
    key = subject("key", Limit(rpm=100))
    subjects = (key, subject("org", Limit(concurrency=1)))
    first = await a.acquire(subjects, 0)
    with pytest.raises(RateLimited) as caught:
        await b.acquire(subjects, 0)
    assert "organization" in caught.value.message("en")
    # The refused call took nothing from the key's RPM bucket: the next call still sees 98 left.
    await a.release(first, 0)
    permit = await b.acquire(subjects, 0)
    assert permit.state.remaining_requests == 98


async def test_a_crashed_replicas_slots_lapse(replicas: tuple[RedisLimiter, RedisLimiter]) -> None:
    a, b = replicas
    org = (subject("org", Limit(concurrency=2)),)
    await a.acquire(org, 0)
    await a.acquire(org, 0)  # replica a dies holding both slots
    with pytest.raises(RateLimited):
        await b.acquire(org, 0)
    await asyncio.sleep(0.6)
    await b.acquire(org, 0)


async def test_a_slot_that_lapses_sooner_than_those_before_it_still_lapses(
    replicas: tuple[RedisLimiter, RedisLimiter], redis_url: str
) -> None:
    a, _ = replicas
    lasting = RedisLimiter(redis_url, slot_seconds=900)
    org = (subject("org", Limit(concurrency=2)),)
    try:
        await lasting.acquire(org, 0)  # a long call on a replica whose slots lapse in 15 minutes
        await a.acquire(org, 0)  # replica a dies holding the other slot, which lapses in 0.5 s
        with pytest.raises(RateLimited):
            await lasting.acquire(org, 0)
        await asyncio.sleep(0.6)
        await lasting.acquire(org, 0)
    finally:
        await lasting.aclose()


async def test_a_subjects_state_is_forgotten_after_its_last_call(
    replicas: tuple[RedisLimiter, RedisLimiter], redis_url: str
) -> None:
    a, _ = replicas
    key = subject("key", Limit(rpm=10, concurrency=1))
    await a.release(await a.acquire((key,), 5), 5)
    client = redis.Redis.from_url(redis_url)
    try:
        ttl = client.ttl(f"dizuo:limit:{key.id}:state")
    finally:
        client.close()
    # Kept a minute (a bucket left alone that long is full) plus at most two of slack, then gone.
    assert 61 <= ttl <= 182


async def test_a_burst_admits_exactly_the_limit(replicas: tuple[RedisLimiter, RedisLimiter]) -> None:
    a, b = replicas
    key = (subject("key", Limit(rpm=50)),)

    async def one(index: int) -> bool:
        try:
            await (a if index % 2 else b).acquire(key, 0)
        except RateLimited:
            return False
        return True

    admitted = await asyncio.gather(*(one(i) for i in range(200)))
    assert admitted.count(True) == 50
