"""In-process limits with a clock the test moves."""

from __future__ import annotations

import pytest

from dizuo.errors import RateLimited
from dizuo.limits import Limit, MemoryLimiter, Subject
from tests.support.clock import Clock


def test_rpm_refills_over_the_minute() -> None:
    clock = Clock()
    limiter = MemoryLimiter(clock)
    key = (Subject("key:a", Limit(rpm=2)),)
    limiter.acquire_now(key, 0)
    permit = limiter.acquire_now(key, 0)
    assert permit.state.remaining_requests == 0 and permit.state.limit_requests == 2
    with pytest.raises(RateLimited) as caught:
        limiter.acquire_now(key, 0)
    assert caught.value.headers["retry-after"] == "30"  # one request comes back every 30 s
    clock.now = 30.0
    limiter.acquire_now(key, 0)


def test_tpm_admits_while_positive_and_is_corrected_by_the_truth() -> None:
    clock = Clock()
    limiter = MemoryLimiter(clock)
    key = (Subject("key:a", Limit(tpm=1000)),)
    permit = limiter.acquire_now(key, 1500)  # bigger than the bucket: admitted when full, bucket now -500
    with pytest.raises(RateLimited):
        limiter.acquire_now(key, 1)
    limiter.release_now(permit, 400)  # it used 400 in truth: bucket back to 600
    assert limiter.acquire_now(key, 10).state.remaining_tokens == 590


def test_concurrency_and_all_or_nothing() -> None:
    limiter = MemoryLimiter(Clock())
    subjects = (Subject("key:a", Limit(rpm=100)), Subject("org:o", Limit(concurrency=1)))
    first = limiter.acquire_now(subjects, 0)
    with pytest.raises(RateLimited) as caught:
        limiter.acquire_now(subjects, 0)
    assert "organization" in caught.value.message("en")
    # The refused call took nothing from the key's RPM bucket.
    assert limiter._requests["key:a"].level == 99
    limiter.release_now(first, 0)
    limiter.acquire_now(subjects, 0)
