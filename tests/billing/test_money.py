"""Money parsing, formatting and the rounding rule."""

from __future__ import annotations

from decimal import Decimal

import pytest

from dizuo.billing.money import format_cny, parse_cny, token_cost


@pytest.mark.parametrize(
    ("text", "micro"),
    [("100.00", 100_000_000), ("0.000001", 1), ("12.3456", 12_345_600), (" 7 ", 7_000_000)],
)
def test_parse(text: str, micro: int) -> None:
    assert parse_cny(text) == micro


@pytest.mark.parametrize("text", ["-1", "0", "abc", "1e3x", "NaN", "Infinity", "0.0000001", "", "1" * 20])
def test_parse_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_cny(text)


def test_format() -> None:
    assert format_cny(12_345_600) == "12.345600"
    assert format_cny(-5) == "-0.000005"
    assert format_cny(0) == "0.000000"


def test_cost_is_exact_then_rounded_half_up() -> None:
    # 7 prompt tokens at ¥1.08/M and 3 completion tokens at ¥4.32/M = 7.56 + 12.96 = 20.52 µ¥ -> 21
    assert token_cost(7, 3, Decimal("1.08"), Decimal("4.32")) == 21
    # 1 token at ¥0.5/M is exactly half a micro-yuan: half-up gives 1
    assert token_cost(1, 0, Decimal("0.5"), Decimal(0)) == 1
    # a million tokens each way at ¥2 / ¥8 is exactly ¥10
    assert token_cost(1_000_000, 1_000_000, Decimal(2), Decimal(8)) == 10_000_000
