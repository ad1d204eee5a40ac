"""Holds in memory: reserve the worst case, settle the truth, never below zero."""

from __future__ import annotations

import random
import threading
from decimal import Decimal

import pytest

from dizuo.billing.holds import Scope, VoucherState, WalletBook
from dizuo.errors import InsufficientQuota

SCOPE = Scope("deepseek", "cq", "deepseek-chat")
NOW = 1_000.0


def voucher(vid: str, copay: str, remaining: int, valid_to: float = 2_000.0, **scope: frozenset[str]) -> VoucherState:
    return VoucherState(vid, Decimal(copay), remaining, 0.0, valid_to, scope.get("providers"), scope.get("regions"),
                        scope.get("models"))


def book_with(balance: int, *vouchers: VoucherState) -> WalletBook:
    book = WalletBook()
    book.load("org", balance, vouchers)
    return book


def test_reserve_settle_release_the_rest() -> None:
    book = book_with(10_000_000)
    hold = book.reserve("org", 4_000_000, SCOPE, NOW)
    assert book.wallets["org"].held == 4_000_000
    settlement = book.settle(hold, 1_500_000)
    assert (settlement.own, settlement.uncollected) == (1_500_000, 0)
    wallet = book.wallets["org"]
    assert (wallet.balance, wallet.held) == (8_500_000, 0)


def test_insufficient_funds_names_the_missing_amount() -> None:
    book = book_with(1_000_000)
    with pytest.raises(InsufficientQuota) as caught:
        book.reserve("org", 3_000_000, SCOPE, NOW)
    assert caught.value.status == 402
    assert "2.000000" in caught.value.message("en")
    assert book.wallets["org"].held == 0


def test_voucher_share_is_held_and_charged() -> None:
    # ¥10 worst case with a 30 % voucher: hold ¥3 on the voucher and ¥7 own. True cost ¥2:
    # voucher pays ¥0.60, own ¥1.40.
    book = book_with(7_000_000, voucher("v1", "0.3", 50_000_000))
    hold = book.reserve("org", 10_000_000, SCOPE, NOW)
    assert dict(hold.vouchers) == {"v1": 3_000_000} and hold.own == 7_000_000
    settlement = book.settle(hold, 2_000_000)
    assert settlement.vouchers == (("v1", 600_000),) and settlement.own == 1_400_000
    wallet = book.wallets["org"]
    assert wallet.vouchers["v1"].remaining == 49_400_000 and wallet.vouchers["v1"].held == 0
    assert wallet.balance == 5_600_000


def test_soonest_expiring_voucher_pays_first_and_out_of_scope_ones_not_at_all() -> None:
    book = book_with(
        100_000_000,
        voucher("late", "0.5", 10_000_000, valid_to=3_000.0),
        voucher("soon", "0.5", 10_000_000, valid_to=1_500.0),
        voucher("local-only", "1", 10_000_000, regions=frozenset({"local"})),
        voucher("expired", "1", 10_000_000, valid_to=999.0),
    )
    hold = book.reserve("org", 2_000_000, SCOPE, NOW)
    assert hold.vouchers == (("soon", 1_000_000),)


def test_underestimated_hold_takes_the_excess_from_free_balance_then_records_it_uncollected() -> None:
    book = book_with(1_000_000)
    hold = book.reserve("org", 400_000, SCOPE, NOW)
    settlement = book.settle(hold, 1_500_000)
    assert (settlement.own, settlement.uncollected) == (1_000_000, 500_000)
    assert book.wallets["org"].balance == 0


def test_settle_twice_is_refused() -> None:
    book = book_with(1_000_000)
    hold = book.reserve("org", 10, SCOPE, NOW)
    book.settle(hold, 5)
    with pytest.raises(RuntimeError):
        book.settle(hold, 5)


def test_reload_keeps_holds_and_uncommitted_charges() -> None:
    book = book_with(10_000_000, voucher("v1", "0.5", 4_000_000))
    hold = book.reserve("org", 2_000_000, SCOPE, NOW)
    settled = book.reserve("org", 1_000_000, SCOPE, NOW)
    book.settle(settled, 1_000_000)  # own 500_000, voucher 500_000, not yet committed
    # A top-up of ¥5 lands in the database meanwhile: it still holds the pre-charge figures.
    book.load("org", 15_000_000, [voucher("v1", "0.5", 4_000_000)])
    wallet = book.wallets["org"]
    assert wallet.balance == 14_500_000 and wallet.held == hold.own
    assert wallet.vouchers["v1"].remaining == 3_500_000 and wallet.vouchers["v1"].held == 1_000_000


def test_many_threads_never_overspend() -> None:
    book = book_with(1_000_000, voucher("v1", "0.3", 200_000))
    results: list[int] = []

    def worker() -> None:
        rng = random.Random()
        for _ in range(300):
            try:
                hold = book.reserve("org", rng.randint(1, 20_000), SCOPE, NOW)
            except InsufficientQuota:
                continue
            settlement = book.settle(hold, rng.randint(0, hold.amount))
            results.append(settlement.own + settlement.voucher_total)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wallet = book.wallets["org"]
    assert wallet.balance >= 0 and wallet.vouchers["v1"].remaining >= 0
    assert wallet.held == 0 and wallet.vouchers["v1"].held == 0
    assert 1_000_000 - wallet.balance + 200_000 - wallet.vouchers["v1"].remaining == sum(results)
