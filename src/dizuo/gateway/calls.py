"""Running one model call: try deployments in the router's order until one gives its first reply.

A deployment is skipped when its circuit is open (unless all are) or it is at its RPM/TPM/concurrency
capacity. One that fails before its first byte (connect error, 429, 5xx, timeout) is left for the
next, up to ``Settings.max_attempts`` tried; once a byte has gone to the client nothing is retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from dizuo.accounts import KeyInfo
from dizuo.billing import Hold
from dizuo.errors import NoDeployment, RateLimited, UpstreamError
from dizuo.gateway.admission import Admission
from dizuo.gateway.http import Receive
from dizuo.gateway.metrics import Metrics
from dizuo.guard.policy import Inspection
from dizuo.limits import Limit, Limiter, MemoryLimiter, Permit, Subject
from dizuo.providers import Reply, Usage
from dizuo.routing import Deployment
from dizuo.routing.health import Health

__all__ = [
    "Attempt",
    "Call",
    "Capacity",
    "ClientGone",
    "cancel_on_disconnect",
    "first_reply",
    "without_usage",
]

# Opens one attempt: (deployment, its copy of the body, the gate: done once the attempt's hold is in
# place, nothing may reach the upstream as a request before; None when the hold is in place already).
Opener = Callable[[Deployment, dict[str, Any], Awaitable[None] | None], AsyncGenerator[Reply, None]]
Reserve = Callable[[Deployment], Awaitable[Hold]]
Release = Callable[[Hold], Awaitable[None]]


@dataclass(slots=True)
class Attempt:
    deployment: Deployment
    replies: AsyncGenerator[Reply, None]
    first: Reply
    first_byte_seconds: float
    hold: Hold
    capacity: Permit | None
    attempts: list[dict[str, str | None]]  # each deployment tried: {"deployment", "error"}


class Capacity:
    """Each deployment's own limits (``limits:`` in its config), so that a busy one is skipped."""

    def __init__(self, limiter: Limiter | None = None) -> None:
        self.limiter: Limiter = limiter or MemoryLimiter()
        self._subjects: dict[str, tuple[Subject, ...]] = {}

    async def take(self, dep: Deployment, tokens: int) -> Permit | None:
        """Take room on *dep*, or raise RateLimited when it is full; None when it has no limits."""
        subjects = self._subjects.get(dep.name)
        if subjects is None:
            limits = dep.config.limits
            limit = Limit(limits.rpm, limits.tpm, limits.concurrency)
            subjects = self._subjects[dep.name] = (Subject(f"dep:{dep.name}", limit),) if limit else ()
        return await self.limiter.acquire(subjects, tokens) if subjects else None

    async def give_back(self, permit: Permit | None, tokens: int) -> None:
        if permit is not None:
            await self.limiter.release(permit, tokens)


async def first_reply(
    alias: str,
    candidates: Iterable[Deployment],
    body: dict[str, Any],
    open_call: Opener,
    *,
    max_attempts: int,
    metrics: Metrics,
    reserve: Reserve,
    release: Release,
    health: Health,
    capacity: Capacity,
    tokens: int,
    copy_body: bool = True,
    overlap: bool = True,
) -> Attempt:
    """Return the first deployment that answers, with its first reply; raise the last error otherwise.

    Before each attempt the call's worst case is held for that deployment (its price and voucher
    scope may differ from the previous one's); a failed attempt's hold is released, never charged.
    When every deployment's circuit is open, they are tried anyway (each call a probe), as a load
    balancer's panic mode does, rather than turning failures into 503s.
    """
    skipped: list[str] = []
    circuit_open: list[Deployment] = []
    tried_log: list[dict[str, str | None]] = []
    busy = 0
    last: UpstreamError | None = None
    order = iter(candidates)
    panic = False
    while len(tried_log) < max_attempts:
        dep = next(order, None)
        if dep is None:
            if tried_log or not circuit_open or panic:
                break
            panic, order = True, iter(circuit_open)
            continue
        if dep.unavailable is not None:
            skipped.append(f"{dep.name}: {dep.unavailable}")
            continue
        if not panic and not health.admit(dep.name):
            circuit_open.append(dep)
            continue
        try:
            permit = await capacity.take(dep, tokens)
        except RateLimited:
            busy += 1
            skipped.append(f"{dep.name}: at capacity / 容量已满")
            continue
        # Providers rewrite the body (model name, stream options): each attempt gets its own copy.
        call_body = dict(body) if copy_body else body
        # With *overlap*, the attempt starts while its hold is asked for (building the upstream request
        # is hidden in that wait); the provider sends the request's body only once the hold is in
        # place (the gate). A hold taken in this process has no round trip to hide: the attempt
        # starts once it is held.
        gate: asyncio.Future[None] | None = None
        early: asyncio.Future[Reply] | None = None
        if overlap:
            gate = asyncio.get_running_loop().create_future()
            replies = open_call(dep, call_body, gate)
            early = asyncio.ensure_future(anext(replies))
        try:
            hold = await reserve(dep)
        except BaseException:
            if early is not None:
                early.cancel()  # the upstream sees its connection close, never a whole request
                with contextlib.suppress(BaseException):
                    await early
                await replies.aclose()
            await asyncio.shield(capacity.give_back(permit, 0))
            raise
        opening: Awaitable[Reply]
        if gate is not None and early is not None:
            gate.set_result(None)
            opening = early
        else:
            replies = open_call(dep, call_body, None)
            opening = anext(replies)
        started = time.perf_counter()
        health.started(dep.name)
        try:
            first = await opening
        except StopAsyncIteration:
            last = UpstreamError(
                "upstream_disconnected", deployment=dep.name, detail="empty answer", retryable=True
            )
        except UpstreamError as exc:
            last = exc
        except BaseException:  # our own 4xx, a cancelled call (client gone): nothing to charge
            health.finished(dep.name)
            # Shielded: a call cancelled by its client still gives back what it took.
            await asyncio.shield(_give_back(capacity, permit, release, hold))
            raise
        else:
            elapsed = time.perf_counter() - started
            health.succeeded(dep.name, elapsed)
            metrics.first_byte.labels(dep.name).observe(elapsed)
            tried_log.append({"deployment": dep.name, "error": None})
            return Attempt(dep, replies, first, elapsed, hold, permit, tried_log)
        tried_log.append({"deployment": dep.name, "error": last.code})
        await replies.aclose()
        health.finished(dep.name)
        health.failed(dep.name)
        await _give_back(capacity, permit, release, hold)
        metrics.upstream_errors.labels(dep.name, last.code).inc()
        if not last.retryable:
            break
    if last is not None:
        raise last
    if busy and busy == len(skipped):
        raise RateLimited(
            detail=f"模型 {alias} 的所有部署容量已满 / every deployment of {alias} is at capacity",
            retry_after=1,
            headers={"retry-after": "1"},
        )
    raise NoDeployment(model=alias, detail="; ".join(skipped) or "-")


async def _give_back(capacity: Capacity, permit: Permit | None, release: Release, hold: Hold) -> None:
    await capacity.give_back(permit, 0)
    await release(hold)


@dataclass(slots=True)
class Call:
    """What one call needs for settlement, wherever it ends."""

    key: KeyInfo
    request_id: str
    endpoint: str
    stream: bool
    started: float
    body: dict[str, Any]
    data_class: str
    alias: str
    # How the call takes its rate limits and holds (gateway/admission.py), chosen when it is read.
    admission: Admission | None = None
    order: Iterator[Deployment] | None = None  # the router's order, when its first pick was asked for
    bounds: tuple[int, int] = (0, 0)  # worst-case (prompt, completion) tokens: what is held
    attempt: Attempt | None = None
    releasing: asyncio.Future[None] | None = None  # the give-back started when the call settled
    usage: Usage | None = None
    chunks: int = 0  # content events forwarded (the estimate of output tokens when usage never came)
    settled: bool = False
    released: bool = False  # rate-limit slots, capacity and the health count given back
    inspection: Inspection | None = None  # what the data-risk guard found and did
    batch: tuple[str, int] | None = None  # the batch and line it answers (a batch worker's call)

    @property
    def permit(self) -> Permit | None:
        """The call's rate limits' permit, once taken."""
        return self.admission.permit if self.admission is not None else None


class ClientGone(Exception):
    """The client closed the connection; the call was cancelled."""


@contextlib.asynccontextmanager
async def cancel_on_disconnect(receive: Receive) -> AsyncIterator[None]:
    """Cancel the enclosed work (and so the upstream request) when the client disconnects."""
    task = asyncio.current_task()
    assert task is not None
    gone = False

    async def watch() -> None:
        nonlocal gone
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                gone = True
                task.cancel()
                return

    watcher = asyncio.create_task(watch())
    try:
        yield
    except asyncio.CancelledError:
        if not gone:
            raise
        task.uncancel()
        raise ClientGone from None
    finally:
        watcher.cancel()


def without_usage(reply: Reply) -> bytes | None:
    """Hide usage the client did not ask for: drop usage-only chunks, strip it from others."""
    if reply.usage_only:
        return None
    data = orjson.loads(reply.data)
    data.pop("usage", None)
    return bytes(orjson.dumps(data))
