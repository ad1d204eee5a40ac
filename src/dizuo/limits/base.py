"""Rate limits: requests per minute, tokens per minute and calls in flight, per key and per organization.

One interface, two backends: :mod:`dizuo.limits.memory` for one process, :mod:`dizuo.limits.shared`
(Redis, atomic Lua scripts) for several replicas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

from dizuo.errors import RateLimited

__all__ = ["Limit", "Limiter", "Permit", "RateState", "Subject", "too_many"]


@dataclass(frozen=True, slots=True)
class Limit:
    rpm: int | None = None
    tpm: int | None = None
    concurrency: int | None = None

    def __bool__(self) -> bool:
        return self.rpm is not None or self.tpm is not None or self.concurrency is not None


@dataclass(frozen=True, slots=True)
class Subject:
    """Who a limit applies to, e.g. ``key:<id>`` or ``org:<id>``, and the limit itself."""

    id: str
    limit: Limit


@dataclass(slots=True)
class RateState:
    """What the client is told in ``x-ratelimit-*`` headers, for the most constrained subject."""

    limit_requests: int | None = None
    remaining_requests: int | None = None
    reset_requests: float | None = None
    limit_tokens: int | None = None
    remaining_tokens: int | None = None
    reset_tokens: float | None = None

    def tighten(self, kind: str, limit: int | None, level: float, reset: float) -> None:
        """Report this subject's *kind* ("requests" or "tokens") if it has less left than the one shown."""
        remaining = int(level)
        if kind == "requests":
            if self.remaining_requests is None or remaining < self.remaining_requests:
                self.limit_requests, self.remaining_requests, self.reset_requests = limit, remaining, reset
        elif self.remaining_tokens is None or remaining < self.remaining_tokens:
            self.limit_tokens, self.remaining_tokens, self.reset_tokens = limit, remaining, reset

    def headers(self) -> list[tuple[bytes, bytes]]:
        out = []
        for name, value in (
            (b"x-ratelimit-limit-requests", self.limit_requests),
            (b"x-ratelimit-remaining-requests", self.remaining_requests),
            (b"x-ratelimit-limit-tokens", self.limit_tokens),
            (b"x-ratelimit-remaining-tokens", self.remaining_tokens),
        ):
            if value is not None:
                out.append((name, b"%d" % max(value, 0)))
        for name, seconds in (
            (b"x-ratelimit-reset-requests", self.reset_requests),
            (b"x-ratelimit-reset-tokens", self.reset_tokens),
        ):
            if seconds is not None:
                out.append((name, b"%.3fs" % max(seconds, 0)))
        return out


@dataclass(slots=True)
class Permit:
    subjects: tuple[Subject, ...]
    tokens: int  # tokens taken from the TPM buckets at acquire (the estimate)
    state: RateState = field(default_factory=RateState)
    released: bool = False
    id: str = ""  # names the call's concurrency slots in a shared backend


class Limiter(Protocol):
    async def acquire(self, subjects: tuple[Subject, ...], tokens: int) -> Permit:
        """Take one request and *tokens* from every subject's limits, or raise 429 taking nothing."""
        ...

    async def release(self, permit: Permit, actual_tokens: int) -> None:
        """End the call: free its concurrency slot and correct the token estimate to *actual_tokens*."""
        ...

    async def aclose(self) -> None:
        """Close connections to a shared backend."""
        ...


def too_many(what_zh: str, what_en: str, subject: str, retry_after: float) -> RateLimited:
    """Build the 429 for *subject*, with a whole-second ``retry-after``."""
    seconds = max(1, math.ceil(retry_after))
    who_zh = "密钥" if subject.startswith("key:") else "组织"
    who_en = "key" if subject.startswith("key:") else "organization"
    return RateLimited(
        detail=f"{who_zh}{what_zh} / the {who_en}'s {what_en}",
        retry_after=seconds,
        headers={"retry-after": str(seconds)},
    )
