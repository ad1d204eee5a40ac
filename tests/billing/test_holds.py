"""Holds: reserve the worst case, settle the truth, never below zero — in process and shared in Redis.

Every test runs against both books; the Redis ones need DIZUO_TEST_REDIS_URL (scripts/services.sh).
The tests at the end are about what only a shared book does: several replicas, lapsing holds,
commits and failed commits reported by the journal.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future
from decimal import Decimal

import pytest

from dizuo.billing.holds import Book, Committed, Scope, Snapshot, VoucherState, WalletBook
from dizuo.billing.shared import RedisBook, Taking
from dizuo.errors import InsufficientQuota, RateLimited
from dizuo.limits import Limit, Subject
from dizuo.limits.shared import RedisLimiter

SCOPE = Scope("deepseek", "cq", "deepseek-chat")
NOW = 1_000.0

Factory = Callable[..., Book]


def voucher(
    vid: str, copay: str, remaining: int, valid_to: float = 2_000.0, **scope: frozenset[str]
) -> VoucherState:
    return VoucherState(
        vid,
        Decimal(copay),
        remaining,
        0.0,
        valid_to,
        scope.get("providers"),
        scope.get("regions"),
        scope.get("models"),
    )


@pytest.fixture(params=["memory", "redis"])
async def make_book(request: pytest.FixtureRequest, redis_url: str | None) -> AsyncIterator[Factory]:
    if request.param == "redis" and not redis_url:
        pytest.skip("needs DIZUO_TEST_REDIS_URL (scripts/services.sh)")
    made: list[Book] = []

    def make(hold_seconds: float = 900) -> Book:
        book: Book = (
            WalletBook() if request.param == "memory" else RedisBook(redis_url or "", hold_seconds, _no_db)
        )
        made.append(book)
        return book

    yield make
    for book in made:
        await book.aclose()
        book.close()


def _no_db(org_id: str) -> None:
    """These tests load every wallet themselves; a book that asks the database finds nothing."""


async def landed(work: Future[None] | None) -> None:
    """Wait for what the book scheduled on the event loop (the journal does not wait)."""
    if work is not None:
        await asyncio.wrap_future(work)


@pytest.fixture
def org() -> str:
    return f"org-{uuid.uuid4().hex[:12]}"  # a fresh organization: the Redis database is shared by tests


def book_with(make: Factory, org: str, balance: int, *vouchers: VoucherState, **options: float) -> Book:
    book = make(**options)
    book.load(org, 1, balance, vouchers)
    return book


async def test_reserve_settle_release_the_rest(make_book: Factory, org: str) -> None:
    book = book_with(make_book, org, 10_000_000)
    hold = await book.reserve(org, 4_000_000, SCOPE, NOW)
    assert (await book.state(org)).held == 4_000_000
    settlement = await book.settle(hold, 1_500_000)
    assert (settlement.own, settlement.uncollected) == (1_500_000, 0)
    wallet = await book.state(org)
    assert (wallet.balance, wallet.held) == (8_500_000, 0)


async def test_release_gives_everything_back(make_book: Factory, org: str) -> None:
    book = book_with(make_book, org, 1_000_000, voucher("v1", "0.5", 1_000_000))
    hold = await book.reserve(org, 1_000_000, SCOPE, NOW)
    await book.release(hold)
    await book.release(hold)  # twice is harmless
    wallet = await book.state(org)
    assert (wallet.balance, wallet.held, wallet.vouchers["v1"].held) == (1_000_000, 0, 0)


async def test_insufficient_funds_names_the_missing_amount(make_book: Factory, org: str) -> None:
    book = book_with(make_book, org, 1_000_000)
    with pytest.raises(InsufficientQuota) as caught:
        await book.reserve(org, 3_000_000, SCOPE, NOW)
    assert caught.value.status == 402
    assert "2.000000" in caught.value.message("en")
    assert (await book.state(org)).held == 0


async def test_voucher_share_is_held_and_charged(make_book: Factory, org: str) -> None:
    # ¥10 worst case with a 30 % voucher: hold ¥3 on the voucher and ¥7 own. True cost ¥2:
    # voucher pays ¥0.60, own ¥1.40.
    book = book_with(make_book, org, 7_000_000, voucher("v1", "0.3", 50_000_000))
    hold = await book.reserve(org, 10_000_000, SCOPE, NOW)
    assert dict(hold.vouchers) == {"v1": 3_000_000} and hold.own == 7_000_000
    settlement = await book.settle(hold, 2_000_000)
    assert settlement.vouchers == (("v1", 600_000),) and settlement.own == 1_400_000
    wallet = await book.state(org)
    assert wallet.vouchers["v1"].remaining == 49_400_000 and wallet.vouchers["v1"].held == 0
    assert wallet.balance == 5_600_000


async def test_soonest_expiring_voucher_pays_first_and_out_of_scope_ones_not_at_all(
    make_book: Factory, org: str
) -> None:
    book = book_with(
        make_book,
        org,
        100_000_000,
        voucher("late", "0.5", 10_000_000, valid_to=3_000.0),
        voucher("soon", "0.5", 10_000_000, valid_to=1_500.0),
        voucher("local-only", "1", 10_000_000, regions=frozenset({"local"})),
        voucher("expired", "1", 10_000_000, valid_to=999.0),
    )
    hold = await book.reserve(org, 2_000_000, SCOPE, NOW)
    assert hold.vouchers == (("soon", 1_000_000),)


async def test_underestimated_hold_takes_the_excess_from_free_balance_then_records_it_uncollected(
    make_book: Factory, org: str
) -> None:
    book = book_with(make_book, org, 1_000_000)
    hold = await book.reserve(org, 400_000, SCOPE, NOW)
    settlement = await book.settle(hold, 1_500_000)
    assert (settlement.own, settlement.uncollected) == (1_000_000, 500_000)
    assert (await book.state(org)).balance == 0


async def test_settle_twice_is_refused(make_book: Factory, org: str) -> None:
    book = book_with(make_book, org, 1_000_000)
    hold = await book.reserve(org, 10, SCOPE, NOW)
    await book.settle(hold, 5)
    with pytest.raises(RuntimeError):
        await book.settle(hold, 5)


async def test_reload_keeps_holds_and_uncommitted_charges(make_book: Factory, org: str) -> None:
    book = book_with(make_book, org, 10_000_000, voucher("v1", "0.5", 4_000_000))
    hold = await book.reserve(org, 2_000_000, SCOPE, NOW)
    settled = await book.reserve(org, 1_000_000, SCOPE, NOW)
    await book.settle(settled, 1_000_000)  # own 500_000, voucher 500_000, not yet committed
    # A top-up of ¥5 lands in the database meanwhile: it still holds the pre-charge figures.
    book.load(org, 2, 15_000_000, [voucher("v1", "0.5", 4_000_000)])
    wallet = await book.state(org)
    assert wallet.balance == 14_500_000 and wallet.held == hold.own
    assert wallet.vouchers["v1"].remaining == 3_500_000 and wallet.vouchers["v1"].held == 1_000_000


async def test_many_concurrent_calls_never_overspend(make_book: Factory, org: str) -> None:
    book = book_with(make_book, org, 1_000_000, voucher("v1", "0.3", 200_000))
    results: list[int] = []

    async def worker() -> None:
        rng = random.Random()
        for _ in range(100):
            try:
                hold = await book.reserve(org, rng.randint(1, 20_000), SCOPE, NOW)
            except InsufficientQuota:
                continue
            await asyncio.sleep(0)
            settlement = await book.settle(hold, rng.randint(0, hold.amount))
            results.append(settlement.own + settlement.voucher_total)

    await asyncio.gather(*(worker() for _ in range(8)))
    wallet = await book.state(org)
    assert wallet.balance >= 0 and wallet.vouchers["v1"].remaining >= 0
    assert wallet.held == 0 and wallet.vouchers["v1"].held == 0
    assert 1_000_000 - wallet.balance + 200_000 - wallet.vouchers["v1"].remaining == sum(results)


# ---- what only the shared book does ----------------------------------------------------------


@pytest.fixture
def make_shared(make_book: Factory, request: pytest.FixtureRequest) -> Factory:
    if request.node.callspec.params["make_book"] != "redis":
        pytest.skip("a property of the shared book")
    return make_book


async def test_two_replicas_share_one_wallet_exactly(make_shared: Factory, org: str) -> None:
    # Two books are two replicas: 400 calls of ¥0.01 race for ¥1 of balance and ¥0.50 of a 50 % voucher.
    terms = voucher("v1", "0.5", 500_000)
    replicas = [book_with(make_shared, org, 1_000_000, terms) for _ in range(2)]
    outcomes: list[bool] = []

    async def call(book: Book) -> None:
        try:
            hold = await book.reserve(org, 10_000, SCOPE, NOW)
        except InsufficientQuota:
            outcomes.append(False)
            return
        await asyncio.sleep(random.random() / 100)
        await book.settle(hold, 10_000)
        outcomes.append(True)

    await asyncio.gather(*(call(replicas[i % 2]) for i in range(400)))
    # ¥0.01 splits ¥0.005 voucher + ¥0.005 own: the voucher lasts 100 calls, then own pays whole ¥0.01
    # calls until ¥1 − 100 × ¥0.005 = ¥0.50 is gone: 50 more.
    assert outcomes.count(True) == 150
    wallet = await replicas[1].state(org)
    assert (wallet.balance, wallet.held, wallet.vouchers["v1"].remaining) == (0, 0, 0)


async def test_a_crashed_replicas_holds_lapse(make_shared: Factory, org: str) -> None:
    crashed = book_with(make_shared, org, 1_000_000, hold_seconds=0.3)
    await crashed.reserve(org, 1_000_000, SCOPE, time.time())  # never settled: the replica died
    survivor = book_with(make_shared, org, 1_000_000)
    with pytest.raises(InsufficientQuota):
        await survivor.reserve(org, 1, SCOPE, time.time())
    await asyncio.sleep(0.4)
    hold = await survivor.reserve(org, 1_000_000, SCOPE, time.time())
    assert hold.own == 1_000_000


async def test_a_hold_that_lapses_sooner_than_those_before_it_still_lapses(
    make_shared: Factory, org: str
) -> None:
    # The survivor's hold (900 s) tells Redis nothing can lapse for 15 minutes; the crashed replica's
    # hold, taken after it, lapses in 0.3 s: its money must come back then, not in 15 minutes.
    survivor = book_with(make_shared, org, 1_000_000)
    await survivor.settle(await survivor.reserve(org, 100_000, SCOPE, time.time()), 100_000)
    lasting = await survivor.reserve(org, 100_000, SCOPE, time.time())
    crashed = book_with(make_shared, org, 1_000_000, hold_seconds=0.3)
    await crashed.reserve(org, 800_000, SCOPE, time.time())  # never settled: the replica died
    with pytest.raises(InsufficientQuota):
        await survivor.reserve(org, 1, SCOPE, time.time())
    await asyncio.sleep(0.4)
    hold = await survivor.reserve(org, 800_000, SCOPE, time.time())
    assert hold.own == 800_000
    await survivor.release(lasting)


async def test_commit_moves_charges_from_pending_to_the_database_state(
    make_shared: Factory, org: str
) -> None:
    book = book_with(make_shared, org, 1_000_000, voucher("v1", "0.5", 1_000_000))
    settlement = await book.settle(await book.reserve(org, 400_000, SCOPE, NOW), 400_000)
    assert (settlement.own, settlement.voucher_total) == (200_000, 200_000)
    # The journal committed it: the database now says version 2 with the charge applied.
    await landed(
        book.committed(
            Committed(
                [settlement], {org: -200_000}, {"v1": -200_000}, {org: Snapshot(2, 800_000, {"v1": 800_000})}
            )
        )
    )
    wallet = await book.state(org)
    assert (wallet.balance, wallet.vouchers["v1"].remaining) == (800_000, 800_000)
    # An older state pushed late (a slow refresh) changes nothing.
    book.load(org, 1, 1_000_000, [voucher("v1", "0.5", 1_000_000)])
    assert (await book.state(org)).balance == 800_000


async def test_a_failed_commit_gives_the_money_back(make_shared: Factory, org: str) -> None:
    book = book_with(make_shared, org, 1_000_000)
    settlement = await book.settle(await book.reserve(org, 1_000_000, SCOPE, NOW), 1_000_000)
    assert (await book.state(org)).balance == 0
    await landed(book.failed(Committed([settlement], {org: -1_000_000}, {})))
    assert (await book.state(org)).balance == 1_000_000


async def test_a_voucher_revoked_meanwhile_pays_nothing(make_shared: Factory, org: str) -> None:
    book = book_with(make_shared, org, 1_000_000, voucher("v1", "0.5", 1_000_000))
    hold = await book.reserve(org, 400_000, SCOPE, NOW)
    book.load(org, 2, 1_000_000, [])  # the issuer revoked v1
    settlement = await book.settle(hold, 400_000)
    assert (settlement.own, settlement.vouchers) == (400_000, ())


async def test_the_shared_split_charges_exactly_what_the_in_process_one_does(make_shared: Factory) -> None:
    # Redis splits holds in Lua; vouchers that run out mid-charge make the uncovered part fractional.
    # Whatever the hold, settling the full worst case must charge exactly the in-process amounts.
    rng = random.Random(7)
    for _ in range(60):
        org = f"org-{uuid.uuid4().hex[:12]}"
        terms = [
            voucher(
                f"v{i}",
                rng.choice(["0.3", "0.3333", "0.5", "0.0007", "1"]),
                rng.randint(0, 5_000),
                valid_to=1_100.0 + i,
            )
            for i in range(rng.randint(1, 3))
        ]
        amount = rng.randint(1, 20_000)
        memory = WalletBook()
        memory.load(org, 1, 1_000_000, [voucher(v.id, str(v.copay), v.remaining, v.valid_to) for v in terms])
        shared = book_with(make_shared, org, 1_000_000, *terms)
        expected = await memory.settle(await memory.reserve(org, amount, SCOPE, NOW), amount)
        got = await shared.settle(await shared.reserve(org, amount, SCOPE, NOW), amount)
        assert (got.own, got.vouchers, got.uncollected) == (
            expected.own,
            expected.vouchers,
            expected.uncollected,
        )


# ---- rate limits taken with the hold (one script) --------------------------------------------


def limited(org: str, **limit: int) -> tuple[Subject, ...]:
    return (Subject(f"key:{org}", Limit(**limit)),)


def taking(subjects: tuple[Subject, ...], tokens: int = 100) -> Taking:
    return Taking(subjects, tokens, 900)


@pytest.fixture
def shared_book(make_shared: Factory, org: str) -> RedisBook:
    """The shared (Redis) book with *org*'s wallet of ¥1 loaded: the one that takes limits and hold in
    one script."""
    book = book_with(make_shared, org, 1_000_000)
    assert isinstance(book, RedisBook)
    return book


async def test_admit_takes_the_limits_and_the_hold_together(shared_book: RedisBook, org: str) -> None:
    book = shared_book
    key = limited(org, rpm=10, tpm=1_000, concurrency=1)
    hold, permit = await book.admit(org, 400_000, SCOPE, NOW, taking(key))
    assert (await book.state(org)).held == 400_000
    assert (permit.state.remaining_requests, permit.state.remaining_tokens) == (9, 900)
    limiter = RedisLimiter(book.url)
    try:
        with pytest.raises(RateLimited):  # the slot is taken, for every replica's limiter too
            await limiter.acquire(key, 1)
        # The limiter gives the permit back like one it took itself, correcting the tokens to the truth.
        await book.settle(hold, 100_000)
        await limiter.release(permit, 40)
        again = await limiter.acquire(key, 0)
        assert again.state.remaining_requests == 8
        assert again.state.remaining_tokens is not None and 958 <= again.state.remaining_tokens <= 960
    finally:
        await limiter.aclose()


async def test_settle_gives_the_limits_back_in_the_same_script(shared_book: RedisBook, org: str) -> None:
    book = shared_book
    key = limited(org, rpm=10, tpm=1_000, concurrency=1)
    hold, permit = await book.admit(org, 400_000, SCOPE, NOW, taking(key))
    assert permit is not None
    settlement = await book.settle(hold, 100_000, limits=(permit, 40))
    assert (settlement.own, permit.released) == (100_000, True)
    limiter = RedisLimiter(book.url)
    try:
        await limiter.release(permit, 40)  # released already: must change nothing
        # The slot is free, the second request is counted, and the estimate (100) became the truth (40).
        again = await limiter.acquire(key, 0)
        assert again.state.remaining_requests == 8
        assert again.state.remaining_tokens is not None and 958 <= again.state.remaining_tokens <= 960
        with pytest.raises(RateLimited):  # concurrency 1: the slot just taken is the only one
            await limiter.acquire(key, 0)
    finally:
        await limiter.aclose()
    assert (await book.state(org)).held == 0


async def test_a_429_from_admit_holds_no_money(shared_book: RedisBook, org: str) -> None:
    book = shared_book
    key = limited(org, rpm=1)
    await book.admit(org, 100_000, SCOPE, NOW, taking(key))
    with pytest.raises(RateLimited) as caught:
        await book.admit(org, 900_000, SCOPE, NOW, taking(key))
    assert caught.value.headers["retry-after"] == "60"
    assert (await book.state(org)).held == 100_000  # the first call's hold only


async def test_a_402_from_admit_takes_no_limits(shared_book: RedisBook, org: str) -> None:
    book = shared_book
    key = limited(org, rpm=1, concurrency=1)
    with pytest.raises(InsufficientQuota):
        await book.admit(org, 2_000_000, SCOPE, NOW, taking(key))
    hold, permit = await book.admit(org, 1_000_000, SCOPE, NOW, taking(key))
    assert (hold.own, permit.state.remaining_requests) == (1_000_000, 0)
    # A 429 is answered before the wallet is asked, even when the wallet would say 402.
    with pytest.raises(RateLimited):
        await book.admit(org, 2_000_000, SCOPE, NOW, taking(key))


async def test_a_cancelled_admit_gives_back_what_it_took(shared_book: RedisBook, org: str) -> None:
    book = shared_book
    key = limited(org, concurrency=1)
    await book.state(org)  # connected: the script below is written at once
    task = asyncio.ensure_future(book.admit(org, 1_000_000, SCOPE, NOW, taking(key)))
    await asyncio.sleep(0)  # the script is on its way to Redis
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    hold, _ = await book.admit(org, 1_000_000, SCOPE, NOW, taking(key))  # slot and money free again
    assert hold.own == 1_000_000
