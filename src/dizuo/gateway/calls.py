"""Running one model call: try deployments in the router's order until one gives its first reply.

A deployment that fails before its first byte (connect error, 429, 5xx, timeout) is left for the
next one, up to ``Settings.max_attempts``; once a byte has gone to the client nothing is retried.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from dizuo.billing import Hold
from dizuo.errors import NoDeployment, UpstreamError
from dizuo.gateway.metrics import Metrics
from dizuo.providers import Reply
from dizuo.routing import Deployment

__all__ = ["Attempt", "first_reply"]

Opener = Callable[[Deployment, dict[str, Any]], AsyncGenerator[Reply, None]]
Reserve = Callable[[Deployment], Awaitable[Hold]]
Release = Callable[[Hold], None]


@dataclass(slots=True)
class Attempt:
    deployment: Deployment
    replies: AsyncGenerator[Reply, None]
    first: Reply
    first_byte_seconds: float
    hold: Hold


async def first_reply(
    alias: str,
    candidates: list[Deployment],
    body: dict[str, Any],
    open_call: Opener,
    max_attempts: int,
    metrics: Metrics,
    reserve: Reserve,
    release: Release,
) -> Attempt:
    """Return the first deployment that answers, with its first reply; raise the last error otherwise.

    Before each attempt the call's worst case is held for that deployment (its price and voucher
    scope may differ from the previous one's); a failed attempt's hold is released, never charged.
    """
    usable = [dep for dep in candidates if dep.unavailable is None]
    if not usable:
        reasons = "; ".join(f"{dep.name}: {dep.unavailable}" for dep in candidates)
        raise NoDeployment(model=alias, detail=reasons)
    tries = usable[:max_attempts]
    last: UpstreamError | None = None
    for index, dep in enumerate(tries):
        # Providers rewrite the body (model name, stream options): each attempt gets its own copy.
        call_body = body if len(tries) == 1 else dict(body)
        hold = await reserve(dep)
        started = time.perf_counter()
        replies = open_call(dep, call_body)
        try:
            first = await anext(replies)
        except StopAsyncIteration:
            await replies.aclose()
            release(hold)
            last = UpstreamError(
                "upstream_disconnected", deployment=dep.name, detail="empty answer", retryable=True
            )
        except UpstreamError as exc:
            await replies.aclose()
            release(hold)
            last = exc
        except BaseException:  # our own 4xx, a cancelled call (client gone): nothing to charge
            release(hold)
            raise
        else:
            elapsed = time.perf_counter() - started
            metrics.first_byte.labels(dep.name).observe(elapsed)
            return Attempt(dep, replies, first, elapsed, hold)
        metrics.upstream_errors.labels(dep.name, last.code).inc()
        if not last.retryable or index == len(tries) - 1:
            break
    assert last is not None
    raise last
