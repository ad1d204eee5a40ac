"""Voucher splits: co-pay, expiry order, exhaustion, each with the amounts written out."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from dizuo.billing.split import Share, split_charge


def test_copay_share_and_own_rest() -> None:
    # ¥10.00 charge, one voucher at 30 % with plenty left: voucher ¥3.00, own ¥7.00
    split = split_charge(10_000_000, [Share("v1", Decimal("0.3"), 500_000_000)])
    assert split.vouchers == (("v1", 3_000_000),)
    assert split.own == 7_000_000


def test_exhausted_voucher_hands_over_to_the_next() -> None:
    # ¥10.00; v1 (expires first, 50 %) has ¥1.00 left: it covers ¥2.00 of the charge and pays ¥1.00.
    # v2 (30 %) covers the remaining ¥8.00 and pays ¥2.40. Own: 10 - 1 - 2.40 = ¥6.60.
    split = split_charge(
        10_000_000, [Share("v1", Decimal("0.5"), 1_000_000), Share("v2", Decimal("0.3"), 100_000_000)]
    )
    assert split.vouchers == (("v1", 1_000_000), ("v2", 2_400_000))
    assert split.own == 6_600_000


def test_all_vouchers_exhausted_own_pays_the_rest() -> None:
    split = split_charge(10_000_000, [Share("v1", Decimal("0.3"), 500_000)])
    assert split.vouchers == (("v1", 500_000),)
    assert split.own == 9_500_000


def test_full_copay_voucher_pays_everything() -> None:
    split = split_charge(1_234_567, [Share("v1", Decimal(1), 10_000_000)])
    assert split.vouchers == (("v1", 1_234_567),)
    assert split.own == 0


def test_rounding_half_up_on_the_share() -> None:
    # 5 µ¥ at 30 % is 1.5 µ¥: the voucher pays 2, own pays 3
    split = split_charge(5, [Share("v1", Decimal("0.3"), 100)])
    assert (split.vouchers, split.own) == ((("v1", 2),), 3)


@given(
    amount=st.integers(0, 10**12),
    shares=st.lists(st.tuples(st.decimals("0.0001", "1", places=4), st.integers(0, 10**12)), max_size=5),
)
def test_parts_always_add_up_and_never_exceed_what_a_voucher_has(
    amount: int, shares: list[tuple[Decimal, int]]
) -> None:
    split = split_charge(amount, [Share(f"v{i}", copay, left) for i, (copay, left) in enumerate(shares)])
    assert split.total == amount
    assert split.own >= 0
    left = {f"v{i}": available for i, (_, available) in enumerate(shares)}
    assert all(0 < paid <= left[vid] for vid, paid in split.vouchers)
