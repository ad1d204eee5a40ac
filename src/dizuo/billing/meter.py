"""The billing side of one call: what to hold before forwarding, and what to charge after."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import Any

import orjson

from dizuo.accounts.keys import KeyInfo
from dizuo.billing.failures import FailureLog
from dizuo.billing.holds import Book, Hold, Scope, Settlement, WalletBook
from dizuo.billing.journal import Charge, Journal
from dizuo.billing.money import token_cost
from dizuo.billing.shared import Asking, RedisBook, Taking
from dizuo.billing.spool import Spool, recover, spool_dir, spools
from dizuo.billing.staging import Drain, Staging, stages
from dizuo.errors import DizuoError, InsufficientQuota
from dizuo.limits import Limiter, Permit, Subject
from dizuo.limits.shared import RedisLimiter
from dizuo.providers import Usage
from dizuo.providers.base import answer_texts
from dizuo.routing import Deployment
from dizuo.store import Database

__all__ = ["DEFAULT_MAX_OUTPUT", "Meter", "estimate_usage", "max_output", "worst_case_tokens"]

log = logging.getLogger("dizuo.billing")

# When a call sets no max_tokens, this many output tokens are held (and the deployment's own
# limit, once configured, replaces it). A longer answer is charged from free balance after.
DEFAULT_MAX_OUTPUT = 4096
# Organizations whose last refusal is remembered before old ones are forgotten (bounded memory).
REREAD_MEMORY = 10_000


def worst_case_tokens(body: dict[str, Any], body_bytes: int) -> tuple[int, int]:
    """Return (prompt, completion) token bounds for a chat body.

    The prompt cannot have more tokens than the request has bytes (byte-level BPE tokenizers, which
    every current vendor uses, spend at least one byte per token), so the body's size bounds it.
    """
    choices = body.get("n") or 1
    return body_bytes, max_output(body) * int(choices)


def max_output(body: dict[str, Any], default: int = DEFAULT_MAX_OUTPUT) -> int:
    """The most output tokens an upstream may produce for *body* as it is forwarded.

    Both limits are forwarded as sent, and vendors differ in which one they honour: with
    ``max_completion_tokens: 1, max_tokens: 8192`` a hold of one token let an org with ¥0.01 run up
    ¥0.0556 of uncollected charges per call. The larger of the two is the bound; *default* when
    neither is set.
    """
    limits = [int(body[name]) for name in ("max_completion_tokens", "max_tokens") if body.get(name)]
    return max(limits, default=default)


class Meter:
    """Holds, settlements and the journal of one worker."""

    def __init__(
        self,
        db: Database,
        enabled: bool = True,
        *,
        redis_url: str | None = None,
        hold_seconds: float = 900,
        staging: Staging = "auto",
        limiter: Limiter | None = None,
    ) -> None:
        """Keep holds in this process, or in Redis at *redis_url* when several replicas share wallets
        (holds of a crashed replica then lapse after *hold_seconds*). *staging* says whether a call's
        usage record may become durable before its database commit: in Redis, with Redis
        (:func:`dizuo.billing.staging.stages`); else in a spool file beside a SQLite database
        (:func:`dizuo.billing.spool.spools`).

        A *limiter* keeping its rate limits in the same Redis lets :meth:`ask` take a call's limits
        with its hold, and :meth:`settle` give them back with the charge: one command each."""
        self.enabled = enabled
        self.book: Book
        self._shared: RedisBook | None = None
        if redis_url:
            self.book = self._shared = RedisBook(
                redis_url, hold_seconds, loader=lambda org_id: self.journal.refresh(org_id)
            )
        else:
            self.book = WalletBook()
        self.journal = Journal(db, self.book)
        self._limits = (
            limiter
            if isinstance(limiter, RedisLimiter) and self._shared is not None and limiter.url == redis_url
            else None
        )
        self._staging = staging
        # Set by start(): the drain that moves staged records into the database, when staging in
        # Redis; the spool that does so, when staging in a local file.
        self.drain: Drain | None = None
        self.spool: Spool | None = None
        self.failures = FailureLog(db)
        # Holds taken and not yet settled or released: calls in flight on this event loop. A call
        # that settles with none left beside it commits its record without the writer's hand-off.
        self._live = 0
        self._reread: dict[str, float] = {}  # organization -> when a refusal last read its wallet
        self._rereading: dict[str, asyncio.Future[None]] = {}  # organization -> its read under way

    def start(self) -> None:
        if self.enabled:
            db = self.journal.db
            # Records a killed process spooled are committed before the wallets are first read.
            recover(db)
            self.journal.start()
            self.failures.start()
            shared = self._shared
            where = "the database"
            if shared is not None:
                appendonly = shared.keeps_appendonly() if self._staging == "auto" else None
                if stages(self._staging, db.durability, appendonly):
                    self.drain = Drain(self.journal, shared)
                    self.drain.start()
                    where = "Redis, then the database"
            elif spools(self._staging, db):
                directory = spool_dir(db)
                assert directory is not None
                self.spool = Spool(self.journal, directory)
                self.spool.start()
                where = f"{directory}, then the database"
            log.info("usage records become durable in %s (DIZUO_USAGE_STAGING=%s)", where, self._staging)

    def stop(self) -> None:
        if self.enabled:
            if self.drain is not None:
                self.drain.stop()
            if self.spool is not None:
                self.spool.stop()
            self.journal.stop()
            self.failures.stop()
        self.book.close()

    def failed(
        self,
        key: KeyInfo,
        request_id: str,
        model: str | None,
        endpoint: str,
        error: DizuoError,
        started: float,
    ) -> None:
        """Note a call of *key* that got *error* (no money moved); written in the background."""
        if self.enabled:
            self.failures.record(
                request_id=request_id,
                org_id=key.org_id,
                key_id=key.key_id,
                model=model,
                endpoint=endpoint,
                status=error.status,
                code=error.code,
                latency_ms=int((time.perf_counter() - started) * 1000),
            )

    async def aclose(self) -> None:
        await self.book.aclose()

    async def reserve(self, org_id: str, dep: Deployment, prompt: int, completion: int) -> Hold:
        """Hold the worst-case cost of a call to *dep*, or raise 402.

        Before saying 402 the organization's wallet may be read once from the database: a top-up
        made a moment ago outside this process must not be refused while the background refresh has
        not seen it yet. At most once per refresh period an organization: repeated refusals are
        answered from memory, so a key with no money cannot load the database.
        """
        scope = Scope(dep.provider.spec.name, dep.config.region, dep.alias)
        if not self.enabled:
            return Hold("", org_id, 0, 0, (), scope)
        return await self.hold(org_id, _cost(dep, prompt, completion), scope)

    async def hold(self, org_id: str, amount: int, scope: Scope) -> Hold:
        """Hold *amount* micro-yuan for a charge in *scope* (metering on), or raise 402 — after reading
        the wallet once more, as :meth:`reserve` says. Given back by :meth:`release`."""
        try:
            hold = await self.book.reserve(org_id, amount, scope, time.time())
        except InsufficientQuota:
            if not await self._reread_wallet(org_id):
                raise
            hold = await self.book.reserve(org_id, amount, scope, time.time())
        self._live += 1
        return hold

    async def _reread_wallet(self, org_id: str) -> bool:
        """Read *org_id*'s wallet from the database before a refusal, if it may be (:meth:`_may_reread`)
        or is being read already for another call: calls refused meanwhile wait for that one read
        (a new organization's first burst is not refused while its wallet is on its way). False when
        the refusal stands as it is."""
        reading = self._rereading.get(org_id)
        if reading is None:
            if not self._may_reread(org_id):
                return False
            reading = self._rereading[org_id] = asyncio.ensure_future(
                asyncio.to_thread(self.journal.refresh, org_id)
            )
            reading.add_done_callback(lambda _: self._rereading.pop(org_id, None))
        await asyncio.shield(reading)
        return True

    def _may_reread(self, org_id: str) -> bool:
        """Whether a refused call may read *org_id*'s wallet from the database now: once per refresh
        period (the background refresh sees every change within it anyway)."""
        now = time.monotonic()
        period = self.journal.refresh_seconds
        if now - self._reread.get(org_id, -period) < period:
            return False
        if len(self._reread) >= REREAD_MEMORY:  # forget organizations refused long ago
            self._reread = {org: at for org, at in self._reread.items() if now - at < period}
        self._reread[org_id] = now
        return True

    @property
    def holds_in_process(self) -> bool:
        """Whether a hold is taken in this process's memory (no Redis): nothing to wait for."""
        return self._shared is None

    @property
    def admits_limits(self) -> bool:
        """Whether :meth:`ask` takes rate limits with the hold (metering on, limits in its Redis)."""
        return self.enabled and self._limits is not None

    def ask(
        self,
        org_id: str,
        dep: Deployment,
        prompt: int,
        completion: int,
        subjects: tuple[Subject, ...],
        tokens: int,
    ) -> Asking:
        """Ask Redis at once to hold the worst-case cost of a call to *dep* and to take the rate limits
        of *subjects* (with *tokens* estimated; none when empty), in one script: 429 before 402, and
        neither takes anything. :meth:`admitted` (awaited, always) gives the hold and the permit (None
        without limits); other work done in between is hidden in Redis's round trip. Only when
        :attr:`admits_limits`."""
        assert self._limits is not None and self._shared is not None
        scope = Scope(dep.provider.spec.name, dep.config.region, dep.alias)
        limits = Taking(subjects, tokens, self._limits.slot_seconds) if subjects else None
        return self._shared.ask(org_id, _cost(dep, prompt, completion), scope, time.time(), limits)

    async def admitted(self, asking: Asking) -> tuple[Hold, Permit | None]:
        """The outcome of :meth:`ask`. Before a 402 the wallet is read from the database once, as
        :meth:`reserve` does."""
        assert self._shared is not None
        try:
            hold, permit = await self._shared.answer(asking)
        except InsufficientQuota:
            if not await self._reread_wallet(asking.org_id):
                raise
            hold, permit = await self._shared.admit(
                asking.org_id, asking.amount, asking.scope, time.time(), asking.limits
            )
        self._live += 1
        return hold, permit

    async def release(self, hold: Hold) -> None:
        if self.enabled and hold.id and not hold.settled:
            self._live -= 1
            await self.book.release(hold)

    def settle(
        self,
        hold: Hold,
        dep: Deployment,
        usage: Usage,
        *,
        request_id: str,
        key_id: str,
        data_class: str,
        endpoint: str,
        stream: bool,
        started: float,
        status: str = "ok",
        attempts: list[dict[str, str | None]] | None = None,
        permit: Permit | None = None,
    ) -> Awaitable[Settlement]:
        """Charge the true cost and write the usage record and ledger entries; the awaitable returned
        (awaited, always) ends once they are durable. When a drain stages records in Redis, the script
        that charges and stages is sent before this returns, so work the caller does before awaiting
        is hidden in Redis's round trip.

        The call's rate-limit *permit*, when the limits are kept in the meter's Redis
        (:attr:`admits_limits`), is given back by the same script (and marked released); else it is
        left to the limiter."""
        if not self.enabled:
            return _done(Settlement(0, 0, (), 0))
        limits = (permit, usage.total_tokens) if permit is not None and self._limits is not None else None
        if hold.id and not hold.settled:
            self._live -= 1
        cost = _cost(dep, usage.prompt_tokens, usage.completion_tokens)
        record: dict[str, Any] = {
            "request_id": request_id,
            "org_id": hold.org_id,
            "key_id": key_id,
            "model": dep.alias,
            "deployment": dep.name,
            "provider": dep.provider.spec.name,
            "region": dep.config.region,
            "endpoint": endpoint,
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "latency_ms": int((time.perf_counter() - started) * 1000),
            "data_class": data_class,
            "stream": stream,
            "status": status,
            "attempts": attempts,
        }
        if self.drain is not None:
            # One script charges the wallet and stages the record; a drain commits it (staging.py).
            book = self.drain.book
            stage = {**record, "created_at": time.time()}
            return book.settled(book.settling(hold, cost, stage, limits))
        return self._journal(hold, cost, record, dep.provider.spec.name, limits)

    async def _journal(
        self,
        hold: Hold,
        cost: int,
        record: dict[str, Any],
        provider: str,
        limits: tuple[Permit, int] | None,
    ) -> Settlement:
        """Settle in the book (giving back the rate *limits* with it when the book is Redis's), then
        make the record durable: appended to the spool, or committed through the journal."""
        if limits is not None and self._shared is not None:
            settlement = await self._shared.settle(hold, cost, limits=limits)
        else:
            settlement = await self.book.settle(hold, cost)
        record |= {
            "cost": settlement.own + settlement.voucher_total,
            "voucher_part": settlement.voucher_total,
            "own_part": settlement.own,
            "uncollected": settlement.uncollected,
        }
        charge = Charge(record, settlement, provider)
        if self.spool is not None:
            record["created_at"] = time.time()
            try:
                self.spool.stage(charge)
                return settlement
            except OSError:  # a full disk, say: the database may still take it
                log.exception("spooling a usage record failed; committing it to the database instead")
        await self.journal.record(charge, alone=self._live == 0)
        return settlement


async def _done(settlement: Settlement) -> Settlement:
    return settlement


def _cost(dep: Deployment, prompt: int, completion: int) -> int:
    if dep.price_in is None or dep.price_out is None:
        return 0
    return token_cost(prompt, completion, dep.price_in, dep.price_out)


def estimate_usage(body: dict[str, Any], chunks: int, answer: bytes | None = None) -> Usage:
    """Estimate usage when the upstream reported none: one token per character of input text, and of
    output one per forwarded stream event or, for a whole *answer*, one per character of its choices'
    text (an upper bound for Chinese, a rough one for English)."""
    text = 0
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        text += len(content) if isinstance(content, str) else len(orjson.dumps(content)) if content else 0
    value = body.get("input")
    if isinstance(value, str):
        text += len(value)
    elif isinstance(value, list):
        text += sum(len(item) if isinstance(item, str) else 1 for item in value)
    out = chunks if answer is None else _answer_characters(answer)
    return Usage(text, out, text + out)


def _answer_characters(answer: bytes) -> int:
    """Characters of a chat completion's text: each choice's content, reasoning and tool arguments."""
    try:
        data = orjson.loads(answer)
    except orjson.JSONDecodeError:
        return 0
    choices = data.get("choices") if isinstance(data, dict) else None
    total = 0
    for choice in choices if isinstance(choices, list) else ():
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            continue
        total += sum(len(text) for _, _, text in answer_texts(message))
        for call in message.get("tool_calls") or ():  # and each tool call's name
            function = call.get("function") if isinstance(call, dict) else None
            total += len(str(function.get("name") or "")) if isinstance(function, dict) else 0
    return total
