"""The ASGI app of the data plane: ``/v1/*``, health, readiness and metrics.

Pipeline of one call (DESIGN §1): auth (in-memory key cache) → body checks → data-risk guard on
the prompt → route (data class, strategy, health) → rate limits and the wallet's hold → provider,
failing over before the first byte → guard on the answer → response → settlement: the usage
record and its ledger transaction, durable before the answer completes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from dizuo import validate
from dizuo.accounts import KeyCache, KeyInfo
from dizuo.billing import Meter, Settlement, worst_case_tokens
from dizuo.billing.meter import estimate_usage, max_output
from dizuo.compliance.labels import Labeler, Labeling, Mode, Notice
from dizuo.config import GuardConfig, PlatformConfig
from dizuo.errors import (
    AuthenticationFailed,
    DataRiskBlocked,
    DizuoError,
    InternalError,
    InvalidRequest,
    Lang,
    MethodNotAllowed,
    ModelNotFound,
    RouteNotFound,
    SharedStateUnavailable,
    pick_language,
)
from dizuo.gateway.admission import (
    Admission,
    AskedEarly,
    LimitsBesideHold,
    LimitsThenHold,
    LimitsWithHold,
    Terms,
)
from dizuo.gateway.agentcalls import AGENT_PREFIX, AgentCall, AgentRunner, unpinned
from dizuo.gateway.batchlines import Answered, InFlight, LineBook, line_of
from dizuo.gateway.calls import (
    Attempt,
    Call,
    Capacity,
    ClientGone,
    Opener,
    cancel_on_disconnect,
    first_reply,
    without_usage,
)
from dizuo.gateway.guarding import StreamGuard, whole_answer
from dizuo.gateway.http import Headers, Receive, Scope, Send, read_body, send_bytes, send_error, send_json
from dizuo.gateway.labeling import StreamLabel, label_whole, stream_header
from dizuo.gateway.metrics import CONTENT_TYPE, Metrics
from dizuo.gateway.upkeep import Upkeep
from dizuo.guard.events import EventLog
from dizuo.guard.policy import Guard
from dizuo.limits import Limiter, MemoryLimiter, Permit
from dizuo.providers import Reply, Transport, Usage
from dizuo.routing import Deployment, Router
from dizuo.routing.catalog import Catalog
from dizuo.routing.clearance import request_class
from dizuo.routing.deployments import batch_priced, free
from dizuo.routing.router import Pool
from dizuo.settings import Settings
from dizuo.store import ordered_id

__all__ = ["Gateway"]

log = logging.getLogger("dizuo.gateway")

SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
DONE = b"data: [DONE]\n\n"
AWAY_LOG_SECONDS = 10.0  # while Redis is away, how often the 503s it causes are logged
MODEL_PREFIX = "/v1/models/"
MODE_WORDS = {"chat": ("对话", "chat"), "embedding": ("向量嵌入", "embedding")}
Handler = Callable[[Scope, Receive, Send, Headers, Lang, str], Awaitable[None]]


def _agent_entry(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "dizuo", "dizuo": {"mode": "agent"}}


def _cut_short(held: bytes | None, error: bytes) -> bytes:
    """A stream's end after an error: the client's usage chunk when it was held back for the label
    (the label is not given to an answer cut short), then the error event."""
    usage = b"data: " + held + b"\n\n" if held is not None else b""
    return usage + b"data: " + error + b"\n\n"


class Gateway:
    """OpenAI-compatible endpoints over the configured deployments."""

    def __init__(
        self,
        settings: Settings,
        keys: KeyCache,
        router: Router,
        transport: Transport,
        meter: Meter,
        *,
        catalog: Catalog | None = None,
        build: Callable[[PlatformConfig], list[Deployment]] | None = None,
        limiter: Limiter | None = None,
        guard: Guard | None = None,
        events: EventLog | None = None,
        labeling: Labeling | None = None,
    ) -> None:
        self.settings = settings
        self.labeling = labeling  # AIGC labels on chat answers; None: none (tests of other things)
        self.lines: LineBook | None = None  # batches' lines (dizuo.batches), set when batches are served
        self.in_flight = InFlight()  # the batch lines being answered here now
        self.agents: AgentRunner | None = None  # the agents' loop (dizuo.agents), set when agents are served
        self.guard = guard or Guard(GuardConfig())
        self.events = events
        self._alerts: set[asyncio.Future[None]] = set()
        self.meter = meter
        self.limiter: Limiter = limiter or MemoryLimiter()
        self.capacity = Capacity(self.limiter)
        self._local_limits = isinstance(self.limiter, MemoryLimiter)
        # Holds, rate limits and capacity all in this process's memory: a call takes them in turn
        # (LimitsThenHold), and giving them back never waits, so it does so in its own task at its
        # end (no task of its own, nothing to shield).
        self._all_in_process = meter.holds_in_process and self._local_limits
        self.keys = keys
        self.router = router
        self.transport = transport
        self.metrics = Metrics()
        self.started = False
        self.upkeep = Upkeep(self, catalog, build)  # start-up, shutdown, refresh, probes
        self._away_logged = -AWAY_LOG_SECONDS  # when Redis being away was last logged (monotonic)
        self._away_calls = 0
        self.routes: dict[str, tuple[bytes, Handler]] = {
            "/v1/chat/completions": (b"POST", self.chat),
            "/v1/embeddings": (b"POST", self.embeddings),
            "/v1/models": (b"GET", self.models),
            "/healthz": (b"GET", self.healthz),
            "/readyz": (b"GET", self.readyz),
            "/metrics": (b"GET", self.render_metrics),
        }

    # ---- lifecycle (gateway/upkeep.py) -----------------------------------------------------

    async def startup(self) -> None:
        """Load keys, start every provider and what runs beside the gateway (:meth:`Upkeep.startup`)."""
        await self.upkeep.startup()

    async def shutdown(self) -> None:
        """Stop what :meth:`startup` started (:meth:`Upkeep.shutdown`)."""
        await self.upkeep.shutdown()

    # ---- ASGI ----------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.upkeep.lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        headers = Headers.parse(scope["headers"])
        lang = pick_language(headers.accept_language, self.settings.language)
        request_id = f"req_{ordered_id()}"
        path = scope["path"]
        try:
            route = self.routes.get(path)
            if route is None and path.startswith(MODEL_PREFIX):
                route = (b"GET", self.model)  # /v1/models/{id}: an id may hold "/" (local/smollm2-…)
            if route is None:
                raise RouteNotFound(path=path)
            method, handler = route
            if scope["method"].encode() != method:
                raise MethodNotAllowed(path=path, method=scope["method"], allowed=method.decode())
            await handler(scope, receive, send, headers, lang, request_id)
        except Answered as stored:  # a batch's line answered before: its answer, not a second call
            await send_bytes(send, stored.status, stored.body, extra=[(b"x-request-id", request_id.encode())])
        except DizuoError as exc:
            await send_error(send, exc, lang, [(b"x-request-id", request_id.encode())])
        except (RedisConnectionError, RedisTimeoutError) as exc:
            # Redis is away: no hold or rate limit can be taken (or given back) for any replica.
            self._shared_state_away(exc)
            error = SharedStateUnavailable(headers={"retry-after": "1"})
            # A stream that had started is cut short instead (no final event: the client sees it).
            with contextlib.suppress(RuntimeError):
                await send_error(send, error, lang, [(b"x-request-id", request_id.encode())])
        except Exception:  # the one place that turns our own bugs into a clean 500
            log.exception("unhandled error in %s %s (%s)", scope["method"], path, request_id)
            await send_error(send, InternalError(request_id=request_id), lang)

    def _shared_state_away(self, error: Exception) -> None:
        """Log that Redis is away: once, then at most every ``AWAY_LOG_SECONDS`` while it stays away
        (every call fails the same way)."""
        now = time.monotonic()
        self._away_calls += 1
        if now >= self._away_logged + AWAY_LOG_SECONDS:
            log.error(
                "Redis is unreachable; %d calls answered 503 since the last report: %s",
                self._away_calls,
                error,
            )
            self._away_logged, self._away_calls = now, 0

    # ---- pipeline pieces -----------------------------------------------------------------

    async def _authenticate(self, headers: Headers) -> KeyInfo:
        auth = headers.authorization
        if not auth:
            raise AuthenticationFailed("missing_api_key")
        scheme, _, token = auth.partition(b" ")
        if scheme.lower() != b"bearer" or not token:
            raise AuthenticationFailed("missing_api_key")
        info = await self.keys.lookup(token.strip().decode("latin-1"))
        if info is None:
            raise AuthenticationFailed()
        return info

    def _allowed(self, key: KeyInfo) -> list[str]:
        return [alias for alias in self.router.aliases() if key.may_use(alias)]

    def _not_found(self, key: KeyInfo, alias: str) -> ModelNotFound:
        """The 404 for *alias*, naming the models this key may use."""
        allowed = self._allowed(key)
        shown = ", ".join(allowed[:50]) + (" …" if len(allowed) > 50 else "") if allowed else "-"
        return ModelNotFound(param="model", model=alias, available=shown)

    def _check_agent(self, key: KeyInfo, alias: str) -> None:
        """A key calls ``agent/NAME[@V]`` with the ``models`` scope, when it may use ``agent/NAME``."""
        if key.scopes is not None:
            key.require("models")
        if not key.may_use(unpinned(alias)):
            raise self._not_found(key, alias)

    async def _agent(
        self, send: Send, call: AgentCall, headers: Headers, lang: Lang, request_id: str
    ) -> None:
        """Answer a call of an agent with what its loop answers."""
        assert self.agents is not None
        token = headers.authorization.partition(b" ")[2].strip().decode("latin-1")
        reply = await self.agents.answer(
            call.key, token, call.alias, call.body, request_id, lang, call.data_class
        )
        extra = [(b"x-request-id", request_id.encode())]
        if reply.events is None:
            await send_bytes(send, reply.status, reply.body, extra=extra)
            return
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS + extra})
        async for event in reply.events:
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    def _check_model(self, key: KeyInfo, alias: str, mode: str, endpoint: str) -> None:
        if key.scopes is not None:
            key.require("models")
        actual = self.router.mode(alias)
        if actual is None or not key.may_use(alias):
            raise self._not_found(key, alias)
        if actual != mode:
            zh, en = MODE_WORDS[actual]
            raise InvalidRequest(
                "wrong_model_mode", param="model", model=alias, actual=zh, actual_en=en, endpoint=endpoint
            )

    @staticmethod
    def _estimate(body: dict[str, Any]) -> int:
        """The tokens a call takes from TPM limits until its usage is known."""
        return estimate_usage(body, 0).prompt_tokens + max_output(body, default=0)

    async def _release(self, call: Call) -> None:
        if call.released:
            return
        call.released = True
        if call.admission is not None:
            await call.admission.end()  # rate limits a refused call never took, holds asked for unused
        tokens = call.usage.total_tokens if call.usage else 0
        if call.attempt is not None:
            self.router.health.finished(call.attempt.deployment.name)
        if call.permit is not None:
            await self.limiter.release(call.permit, tokens)
        if call.attempt is not None:
            await self.capacity.give_back(call.attempt.capacity, tokens)

    def _count_tokens(self, dep: Deployment, usage: Usage) -> None:
        # Prometheus token counters; the usage record and ledger are written by the meter.
        self.metrics.tokens.labels(dep.alias, dep.name, "prompt").inc(usage.prompt_tokens)
        self.metrics.tokens.labels(dep.alias, dep.name, "completion").inc(usage.completion_tokens)

    @staticmethod
    def _response_headers(call: Call, dep: Deployment) -> list[tuple[bytes, bytes]]:
        headers = [(b"x-request-id", call.request_id.encode()), *dep.headers]
        if call.permit is not None:
            headers += call.permit.state.headers()
        return headers

    # ---- one model call, whatever the endpoint -------------------------------------------

    async def _begin(
        self, receive: Receive, headers: Headers, request_id: str, endpoint: str
    ) -> tuple[Call, Pool]:
        """Authenticate, read and check the body, find the cleared deployments, apply rate limits (with
        Redis: ask for the first hold and the limits together, answered in _first_reply).

        Return the call and its pool of deployments.
        """
        started = time.perf_counter()
        key = await self._authenticate(headers)
        alias: str | None = None
        taken: tuple[str, int] | None = None
        try:
            batch = line_of(key, headers) if key.batch_id is not None else None
            if batch is not None:
                if self.lines is None:
                    raise RouteNotFound(path="/v1/batches")
                # Under way here already (asked again meanwhile): wait for that call's stored answer.
                waited = await self.in_flight.take(batch)
                taken = batch
                # A line handed out for the first time was never sent: it has no stored answer to
                # look for (the worker's word is enough: its key could make any call of the batch),
                # unless another call of it was under way here (a second worker of the batch sent it
                # meanwhile): then that call's answer may be stored.
                fresh = headers.batch_fresh and not waited
                stored = None if fresh else await asyncio.to_thread(self.lines.answered, *batch)
                if stored is not None:
                    raise Answered(*stored)
            raw = await read_body(receive, headers.content_length, self.settings.max_body_bytes)
            if endpoint == "chat":
                body, alias, stream = validate.chat_body(raw)
                if alias.startswith(AGENT_PREFIX) and self.agents is not None and batch is None:
                    self._check_agent(key, alias)
                    raise AgentCall(key, alias, body, request_class(key.data_class, headers.data_class))
                self._check_model(key, alias, "chat", "/v1/chat/completions")
            else:
                (body, alias), stream = validate.embeddings_body(raw), False
                self._check_model(key, alias, "embedding", "/v1/embeddings")
            data_class = request_class(key.data_class, headers.data_class)
            inspection = self.guard.inspect_prompt(key.guard, data_class, body)
            if inspection.prompt_counts:
                self._guard_event(
                    key, request_id, alias, "prompt", inspection.policy.action, inspection.prompt_counts
                )
                if inspection.blocks_prompt:
                    raise DataRiskBlocked(list(inspection.prompt_counts))
            data_class = inspection.raised_class(data_class)
            pool = self.router.eligible(alias, data_class, key.org_region, key.serves_public)
            call = Call(key, request_id, endpoint, stream, started, body, data_class, alias)
            call.bounds = worst_case_tokens(body, len(raw)) if endpoint == "chat" else (len(raw), 0)
            if batch is not None:
                if stream:
                    raise InvalidRequest(
                        "invalid_param",
                        param="stream",
                        reason_zh="批处理的请求不能流式返回",
                        reason_en="a batch's requests cannot stream",
                    )
                call.batch = batch
            call.admission = self._admission(call, pool)
            call.inspection = inspection
            return call, pool  # a batch's line stays under way until the call ends (_accounted)
        except BaseException as exc:
            if taken is not None:
                self.in_flight.end(taken)
            if isinstance(exc, DizuoError):
                # A known caller's refused call (bad body, unknown model, guard block, 429) is charted too.
                self.meter.failed(key, request_id, alias, endpoint, exc, started)
            raise

    def _admission(self, call: Call, pool: Pool) -> Admission:
        """How *call* takes its rate limits and holds (gateway/admission.py), by where they live."""
        meter, key = self.meter, call.key
        terms = Terms(key.org_id, batch_priced if call.batch is not None else _as_is, *call.bounds)
        due = (key.limits, self._estimate(call.body)) if key.limits else None
        if meter.admits_limits:
            if call.batch is None:
                # Ask Redis now for the hold (and the limits) of the deployment the router will try
                # first: its round trip passes while the call gets ready.
                order = self.router.order(call.alias, pool)
                first = next(order, None)
                call.order = order if first is None else itertools.chain((first,), order)
                if first is not None and first.unavailable is None:
                    subjects, estimate = due or ((), 0)
                    asking = meter.ask(key.org_id, first, *call.bounds, subjects, estimate)
                    return AskedEarly(meter, terms, self.limiter, due, first, asking)
            return LimitsWithHold(meter, terms, self.limiter, due)
        limits: Awaitable[Permit] | None = self.limiter.acquire(*due) if due is not None else None
        if self._all_in_process:
            return LimitsThenHold(meter, terms, limits)
        if limits is not None and not self._local_limits:
            limits = asyncio.ensure_future(limits)  # sent to Redis now, answered by the first hold
        return LimitsBesideHold(meter, terms, limits)

    def _guard_event(
        self, key: KeyInfo, request_id: str, alias: str, direction: str, action: str, counts: dict[str, int]
    ) -> None:
        self.metrics.guard.labels(direction, action).inc(sum(counts.values()))
        event = {
            "org_id": key.org_id,
            "key_id": key.key_id,
            "request_id": request_id,
            "direction": direction,
            "action": action,
            "counts": dict(counts),
            "model": alias,
        }
        if self.events is not None:
            self.events.record(**event)  # type: ignore[arg-type]
        config = self.guard.config
        if config.webhook and action in config.webhook_actions:
            # An alert must not slow or fail the call: sent in the background, failures logged.
            task = asyncio.ensure_future(self._alert(config.webhook, {**event, "org_name": key.org_name}))
            self._alerts.add(task)
            task.add_done_callback(self._alerts.discard)

    async def _alert(self, url: str, event: dict[str, Any]) -> None:
        event["time"] = time.time()
        try:
            async with self.transport.session.post(
                url, json=event, timeout=aiohttp.ClientTimeout(total=10)
            ) as r:
                if r.status >= 300:
                    log.warning("guard webhook %s answered %d", url, r.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("guard webhook %s failed: %s", url, exc)

    def _answer_event(self, call: Call) -> None:
        inspection = call.inspection
        if inspection is not None and inspection.answer_counts:
            action = inspection.policy.action
            self._guard_event(
                call.key, call.request_id, call.alias, "answer", action, inspection.answer_counts
            )

    async def _first_reply(self, call: Call, pool: Pool, open_call: Opener) -> Attempt:
        """Hold, route and fail over until a deployment gives its first reply."""
        assert call.admission is not None
        call.attempt = await first_reply(
            call.alias,
            call.order or self.router.order(call.alias, pool),
            call.body,
            open_call,
            max_attempts=self.settings.max_attempts,
            metrics=self.metrics,
            reserve=call.admission.hold,
            release=self.meter.release,
            health=self.router.health,
            capacity=self.capacity,
            tokens=sum(call.bounds),
            copy_body=len(pool.deps) > 1,
            overlap=not self.meter.holds_in_process,
        )
        return call.attempt

    @contextlib.asynccontextmanager
    async def _accounted(self, call: Call, receive: Receive) -> AsyncIterator[None]:
        """Run the call's work: cancelled if the client leaves (and billed for what was generated),
        limits and capacity given back, metrics counted, whatever the outcome."""
        self.metrics.in_flight.inc()
        status = "200"
        try:
            # A batch's line is seen through to its stored answer even when its worker is gone: the
            # next worker gets that answer rather than paying for the line twice.
            async with cancel_on_disconnect(receive) if call.batch is None else contextlib.nullcontext():
                yield
        except DizuoError as exc:
            status = str(exc.status)
            if not call.settled:  # a settled call (an answer the guard refused) has its usage record
                self.meter.failed(call.key, call.request_id, call.alias, call.endpoint, exc, call.started)
            raise
        except ClientGone:
            status = "499"
            if call.attempt is not None and not call.settled:
                # Billed for what was generated before the client left, no more (DESIGN §3.6).
                usage = call.usage if call.stream else call.attempt.first.usage
                await self._settle(call, usage, status="client_gone")
        finally:
            if call.batch is not None:
                self.in_flight.end(call.batch)  # its answer is stored, or it has none to wait for
            if call.releasing is None and self._all_in_process:
                await self._release(call)  # never suspends, so a cancellation cannot cut it short
            else:
                # Shielded: a call cancelled by its client still gives back its slots.
                await asyncio.shield(call.releasing or self._release(call))
            self.metrics.in_flight.dec()
            self.metrics.requests.labels(call.endpoint, call.alias, status).inc()
            self.metrics.latency.labels(call.endpoint).observe(time.perf_counter() - call.started)

    async def _send_whole(self, send: Send, call: Call, attempt: Attempt) -> None:
        """Settle a non-streamed answer (durably), then send it."""
        data = attempt.first.data
        inspection = call.inspection
        if call.endpoint == "chat" and inspection is not None and inspection.touches_answer:
            await attempt.replies.aclose()
            try:
                data, attempt.first.body = whole_answer(self.guard, inspection, data, attempt.first.body)
            except DataRiskBlocked as refused:
                # The upstream did the work: it is charged, and the client gets the refusal.
                kept = await self._keep_line(call, refused.status, refused.body())
                await self._settle(call, attempt.first.usage, status="blocked" if kept else "repeated")
                self._answer_event(call)
                raise
        if call.batch is not None:
            await self._send_line(send, call, attempt, data)
            return
        # The settlement goes out first; what need not come before it (closing the upstream's reply,
        # the answer's headers) is done while Redis answers.
        settling = self._settle(call, attempt.first.usage)
        try:
            data, extra = self._labeled(call, attempt, data)
            await attempt.replies.aclose()  # nothing when the guard closed it already
        finally:
            await settling
        self._answer_event(call)
        await send_bytes(send, 200, data, extra=extra)

    def _labeled(self, call: Call, attempt: Attempt, data: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        """A whole answer with its AIGC label, and the headers it goes with."""
        extra = self._response_headers(call, attempt.deployment)
        labels = self._labels(call)
        if labels is not None:
            data, aigc = label_whole(
                labels[0], data, call.request_id, attempt.deployment, labels[1], attempt.first.body
            )
            if aigc is not None:
                extra.append((b"aigc", aigc))
        return data, extra

    async def _send_line(self, send: Send, call: Call, attempt: Attempt, data: bytes) -> None:
        """A batch's line: labeled, written onto the line, then settled and sent (see batchlines)."""
        data, extra = self._labeled(call, attempt, data)
        await attempt.replies.aclose()
        kept = await self._keep_line(call, 200, data)
        await self._settle(call, attempt.first.usage, status="ok" if kept else "repeated")
        self._answer_event(call)
        await send_bytes(send, 200, data, extra=extra)

    async def _keep_line(self, call: Call, status: int, body: bytes) -> bool:
        """Write a batch line's answer onto the line; False when it had one already (the line was
        answered by a call at another replica meanwhile): this call is then recorded at no cost."""
        if call.batch is not None and self.lines is not None:
            return await self.lines.keep(*call.batch, status, body, call.request_id)
        return True

    def _labels(self, call: Call) -> tuple[Labeler, Notice | None] | None:
        """How *call*'s answer is labeled: the labeler and, for an explicit label, the notice; None
        for answers that are not chat or when labels are off for the call's key."""
        labeling = self.labeling
        if labeling is None or call.endpoint != "chat":
            return None
        mode = labeling.mode_for(call.key.label)
        if mode is Mode.OFF:
            return None
        return labeling.labeler, labeling.notice if mode is Mode.EXPLICIT else None

    # ---- /v1/chat/completions ------------------------------------------------------------

    async def chat(
        self, scope: Scope, receive: Receive, send: Send, headers: Headers, lang: Lang, request_id: str
    ) -> None:
        """Answer a chat completion, streamed or whole; hold before forwarding, settle after."""
        try:
            call, pool = await self._begin(receive, headers, request_id, "chat")
        except AgentCall as agent:
            await self._agent(send, agent, headers, lang, request_id)
            return
        body, stream = call.body, call.stream
        client_usage = stream and (body.get("stream_options") or {}).get("include_usage") is True

        def open_call(
            dep: Deployment, call_body: dict[str, Any], gate: Awaitable[None] | None
        ) -> AsyncGenerator[Reply, None]:
            return dep.provider.chat(call_body, stream, gate)

        async with self._accounted(call, receive):
            attempt = await self._first_reply(call, pool, open_call)
            if stream:
                await self._stream(send, call, client_usage, lang)
            else:
                await self._send_whole(send, call, attempt)

    def _settle(self, call: Call, usage: Usage | None, status: str = "ok") -> Awaitable[Settlement]:
        """Settle the call (the meter sends what it can at once) and start giving back its limits;
        the awaitable returned (awaited, always) ends when the usage record is durable. Whoever
        has work that needs no record yet does it before awaiting."""
        attempt = call.attempt
        assert attempt is not None
        call.settled = True
        if usage is None:
            whole = None if call.stream else attempt.first.data
            usage = estimate_usage(call.body, call.chunks, whole)
            status = status if status != "ok" else "estimated"
        call.usage = usage
        dep = attempt.deployment
        if call.batch is not None:
            dep = free(dep) if status == "repeated" else batch_priced(dep)
        settling = self.meter.settle(
            attempt.hold,
            dep,
            usage,
            request_id=call.request_id,
            key_id=call.key.key_id,
            data_class=call.data_class,
            endpoint=call.endpoint,
            stream=call.stream,
            started=call.started,
            status=status,
            attempts=attempt.attempts,
            permit=call.permit,
        )
        # The call's work is done: give back what it took while the record is made durable (rate
        # limits kept in the meter's Redis went back with the settlement's script). The call's end
        # (_accounted) waits for it. (Giving them back after the answer measured slower: that Python
        # then delays the next call.) What lives in this process only is given back at the end.
        if not self._all_in_process:
            call.releasing = asyncio.ensure_future(self._release(call))
        self._count_tokens(attempt.deployment, usage)
        return settling

    async def _stream(self, send: Send, call: Call, client_usage: bool, lang: Lang) -> None:
        attempt = call.attempt
        assert attempt is not None
        dep = attempt.deployment
        headers = SSE_HEADERS + self._response_headers(call, dep)
        labels = self._labels(call)
        label = None
        if labels is not None:
            label = StreamLabel(labels[0], call.request_id, dep, labels[1])
            headers.append((b"aigc", stream_header(labels[0], call.request_id, dep)))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        reply: Reply | None = attempt.first
        replies = attempt.replies
        inspection = call.inspection
        guard = StreamGuard(inspection) if inspection is not None and inspection.touches_answer else None
        held: bytes | None = None  # the client's usage chunk, sent last with the label
        try:
            while reply is not None:
                if reply.usage is not None:
                    call.usage = reply.usage
                    data = reply.data if client_usage else without_usage(reply)
                elif reply.usage_only:  # usage the meter cannot use (it estimates): still no output
                    data = reply.data if client_usage else None
                else:
                    data = reply.data
                    call.chunks += 1
                if data is not None and guard is not None:
                    data = guard.chunk(data)
                if data is not None and label is not None:
                    if reply.usage_only:
                        data, held = held, data
                    else:
                        data = label.chunk(data)
                if data is not None:
                    await send(
                        {"type": "http.response.body", "body": b"data: " + data + b"\n\n", "more_body": True}
                    )
                reply = await anext(replies, None)
            # Text the guard still held back, then (explicit labels) the notice of unfinished choices.
            rest = guard.rest() if guard is not None else None
            if rest is not None and label is not None:
                rest = label.chunk(rest)
            notice = label.unfinished() if label is not None else None
            for event in (rest, notice):
                if event is not None:
                    await send(
                        {"type": "http.response.body", "body": b"data: " + event + b"\n\n", "more_body": True}
                    )
        except DataRiskBlocked as exc:
            # Mid-stream: the status is sent already; the answer ends with an error event, no [DONE].
            await self._settle(call, call.usage, status="blocked")
            self._answer_event(call)
            await send({"type": "http.response.body", "body": _cut_short(held, exc.body(lang))})
            return
        except DizuoError as exc:
            # Bytes already reached the client: no retry, no status change; end with an error event.
            self.metrics.upstream_errors.labels(dep.name, exc.code).inc()
            self.router.health.failed(dep.name)
            await self._settle(call, call.usage, status="upstream_cut")
            await send({"type": "http.response.body", "body": _cut_short(held, exc.body(lang))})
            return
        finally:
            await replies.aclose()
        # The stream is not complete until its usage record is durable (DESIGN §3.3).
        settling = self._settle(call, call.usage)
        try:
            last = label.final(held) if label is not None else None
        finally:
            await settling
        self._answer_event(call)
        # The label's chunk and [DONE] in one write (a write per event costs about 20 µs).
        tail = DONE if last is None else b"data: " + last + b"\n\n" + DONE
        await send({"type": "http.response.body", "body": tail})

    # ---- /v1/embeddings ------------------------------------------------------------------

    async def embeddings(
        self, scope: Scope, receive: Receive, send: Send, headers: Headers, lang: Lang, request_id: str
    ) -> None:
        """Answer an embeddings request."""
        call, pool = await self._begin(receive, headers, request_id, "embeddings")

        async def one(
            dep: Deployment, call_body: dict[str, Any], gate: Awaitable[None] | None
        ) -> AsyncGenerator[Reply, None]:
            if gate is not None:
                await gate
            yield await dep.provider.embed(call_body)

        async with self._accounted(call, receive):
            attempt = await self._first_reply(call, pool, one)
            await self._send_whole(send, call, attempt)

    # ---- /v1/models, health, metrics -----------------------------------------------------

    async def models(
        self, scope: Scope, receive: Receive, send: Send, headers: Headers, lang: Lang, request_id: str
    ) -> None:
        """List the model aliases this key may use."""
        key = await self._authenticate(headers)
        data = [self._model_entry(alias) for alias in self._allowed(key)]
        if self.agents is not None:
            data += [_agent_entry(name) for name in await self.agents.names(key)]
        await send_json(send, 200, {"object": "list", "data": data})

    async def model(
        self, scope: Scope, receive: Receive, send: Send, headers: Headers, lang: Lang, request_id: str
    ) -> None:
        """One model alias, as the list shows it (``client.models.retrieve``); 404 when this key may not
        use it."""
        key = await self._authenticate(headers)
        alias = scope["path"][len(MODEL_PREFIX) :]
        if alias.startswith(AGENT_PREFIX) and self.agents is not None:
            if unpinned(alias) in await self.agents.names(key):
                await send_json(send, 200, _agent_entry(alias))
                return
            raise self._not_found(key, alias)
        if self.router.mode(alias) is None or not key.may_use(alias):
            raise self._not_found(key, alias)
        await send_json(send, 200, self._model_entry(alias))

    def _model_entry(self, alias: str) -> dict[str, Any]:
        deps = self.router.candidates(alias)
        filings = {d.config.filing.number: d.config.filing for d in deps if d.config.filing is not None}
        return {
            "id": alias,
            "object": "model",
            "created": 0,
            "owned_by": deps[0].provider.spec.name,
            "dizuo": {
                "mode": deps[0].mode,
                # The service filings (生成式人工智能服务备案) its deployments carry; empty: unfiled.
                "filings": [filing.model_dump() for _, filing in sorted(filings.items())],
                "deployments": [
                    {
                        "name": dep.name,
                        "provider": dep.provider.spec.name,
                        "region": dep.config.region,
                        "cloud": dep.config.cloud,
                        "accelerator": dep.config.accelerator,
                        "data_class_max": dep.config.data_class_max,
                        "price_cny_per_million": None
                        if dep.price_in is None
                        else {"input": str(dep.price_in), "output": str(dep.price_out)},
                        "price_source": dep.price_source,
                        "filing": dep.config.filing.model_dump() if dep.config.filing is not None else None,
                        "available": dep.unavailable is None,
                    }
                    for dep in sorted(deps, key=lambda d: d.name)
                ],
            },
        }

    async def healthz(
        self, scope: Scope, receive: Receive, send: Send, headers: Headers, lang: Lang, request_id: str
    ) -> None:
        """Liveness: the process answers."""
        await send_json(send, 200, {"status": "ok"})

    async def readyz(
        self, scope: Scope, receive: Receive, send: Send, headers: Headers, lang: Lang, request_id: str
    ) -> None:
        """Readiness: started, keys loaded; lists deployments that cannot take calls."""
        unavailable = {dep.name: dep.unavailable for dep in self.router.deployments if dep.unavailable}
        ready = self.started
        body = {
            "status": "ready" if ready else "starting",
            "keys": len(self.keys),
            "unavailable": unavailable,
        }
        await send_json(send, 200 if ready else 503, body)

    async def render_metrics(
        self, scope: Scope, receive: Receive, send: Send, headers: Headers, lang: Lang, request_id: str
    ) -> None:
        """Prometheus text format."""
        health = self.router.health
        for dep in self.router.deployments:
            self.metrics.deployment_up.labels(dep.name).set(0 if health.state(dep.name) == "open" else 1)
            latency = health.of(dep.name).latency
            if latency is not None:
                self.metrics.deployment_latency.labels(dep.name).set(latency)
        await send_bytes(send, 200, self.metrics.render(), CONTENT_TYPE)

    def deployments_view(self) -> list[dict[str, Any]]:
        """Every deployment with its placement, clearance, price and health (admin API, console)."""
        return self.router.describe()


def _as_is(dep: Deployment) -> Deployment:
    return dep
