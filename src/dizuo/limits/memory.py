"""In-process rate limits: token buckets for RPM and TPM, a counter for concurrency.

The event loop is single-threaded and these methods never await, so checking every subject and then
taking from all of them is atomic: a call is either admitted by all its limits or by none.

A TPM bucket admits a call while it has any tokens left and then takes the call's estimate, which
may drive it below zero; the true count corrects it when the call ends. A call larger than the whole
bucket therefore still gets through when the bucket is full, instead of never.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from dizuo.limits.base import Permit, RateState, Subject, too_many

__all__ = ["MemoryLimiter"]


@dataclass(slots=True)
class _Bucket:
    capacity: float
    level: float
    stamp: float

    def refill(self, now: float) -> None:
        rate = self.capacity / 60.0
        self.level = min(self.capacity, self.level + (now - self.stamp) * rate)
        self.stamp = now

    def wait_for(self, need: float) -> float:
        """Seconds until the level reaches *need*."""
        return max(0.0, (need - self.level) / (self.capacity / 60.0))


class MemoryLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._requests: dict[str, _Bucket] = {}
        self._tokens: dict[str, _Bucket] = {}
        self._in_flight: dict[str, int] = {}

    def _bucket(self, table: dict[str, _Bucket], subject: str, capacity: int, now: float) -> _Bucket:
        bucket = table.get(subject)
        if bucket is None or bucket.capacity != capacity:
            bucket = table[subject] = _Bucket(float(capacity), float(capacity), now)
        else:
            bucket.refill(now)
        return bucket

    async def acquire(self, subjects: tuple[Subject, ...], tokens: int) -> Permit:
        return self.acquire_now(subjects, tokens)

    async def release(self, permit: Permit, actual_tokens: int) -> None:
        self.release_now(permit, actual_tokens)

    async def aclose(self) -> None:
        pass

    def acquire_now(self, subjects: tuple[Subject, ...], tokens: int) -> Permit:
        """Admit the call under every subject's limits, or raise 429 having taken nothing."""
        now = self._clock()
        state = RateState()
        taken: list[tuple[Subject, _Bucket | None, _Bucket | None]] = []
        for subject in subjects:
            limit = subject.limit
            requests = tokens_bucket = None
            if limit.rpm is not None:
                requests = self._bucket(self._requests, subject.id, limit.rpm, now)
                if requests.level < 1:
                    raise too_many(
                        "每分钟请求数已达上限",
                        "requests per minute are used up",
                        subject.id,
                        requests.wait_for(1),
                    )
            if limit.tpm is not None:
                tokens_bucket = self._bucket(self._tokens, subject.id, limit.tpm, now)
                if tokens_bucket.level <= 0:
                    raise too_many(
                        "每分钟 token 数已达上限",
                        "tokens per minute are used up",
                        subject.id,
                        tokens_bucket.wait_for(1),
                    )
            if limit.concurrency is not None and self._in_flight.get(subject.id, 0) >= limit.concurrency:
                raise too_many("并发请求数已达上限", "calls in flight are at the limit", subject.id, 1)
            taken.append((subject, requests, tokens_bucket))
        for subject, requests, tokens_bucket in taken:
            if requests is not None:
                requests.level -= 1
                state.tighten(
                    "requests", subject.limit.rpm, requests.level, requests.wait_for(requests.capacity)
                )
            if tokens_bucket is not None:
                tokens_bucket.level -= tokens
                state.tighten(
                    "tokens",
                    subject.limit.tpm,
                    tokens_bucket.level,
                    tokens_bucket.wait_for(tokens_bucket.capacity),
                )
            if subject.limit.concurrency is not None:
                self._in_flight[subject.id] = self._in_flight.get(subject.id, 0) + 1
        return Permit(subjects, tokens, state)

    def release_now(self, permit: Permit, actual_tokens: int) -> None:
        """Free the call's concurrency slots and correct its token estimate."""
        if permit.released:
            return
        permit.released = True
        correction = actual_tokens - permit.tokens
        for subject in permit.subjects:
            if subject.limit.concurrency is not None:
                self._in_flight[subject.id] = max(0, self._in_flight.get(subject.id, 0) - 1)
            bucket = self._tokens.get(subject.id)
            if subject.limit.tpm is not None and bucket is not None and correction:
                bucket.level = min(bucket.capacity, bucket.level - correction)
