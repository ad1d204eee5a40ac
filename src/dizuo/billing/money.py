"""Money: integers of micro-yuan (1 CNY = 1,000,000 µ¥), never float.

Rounding rule (docs/billing.md): a call's cost is computed exactly in ``Decimal`` from its tokens and
the deployment's price per million tokens, then rounded half-up to a whole micro-yuan. A voucher's
share of a charge is rounded half-up to a whole micro-yuan; the organization's own part is the cost
minus the voucher parts, so the parts always add up to the cost exactly.
"""

from __future__ import annotations

import functools
import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

__all__ = ["MICRO", "format_cny", "micro_from_cny", "parse_cny", "round_micro", "token_cost"]

MICRO = 1_000_000
_MILLION = Decimal(1_000_000)


def round_micro(value: Decimal) -> int:
    """Round a micro-yuan amount half-up to an integer."""
    return int(value.to_integral_value(rounding=ROUND_HALF_UP))


def token_cost(prompt_tokens: int, completion_tokens: int, price_in: Decimal, price_out: Decimal) -> int:
    """Return the cost in micro-yuan of a call, prices in CNY per million tokens, rounded half-up.

    CNY per million tokens is exactly micro-yuan per token. Computed in integers from each price's
    exact fraction (the same result as ``Decimal``, which is exact here, at about half its cost
    on every call's path)."""
    top_in, bottom_in = _fraction(price_in)
    top_out, bottom_out = _fraction(price_out)
    bottom = bottom_in * bottom_out
    whole, rest = divmod(
        prompt_tokens * top_in * bottom_out + completion_tokens * top_out * bottom_in, bottom
    )
    return whole + (2 * rest >= bottom)  # half-up: exact halves away from zero (costs are never negative)


@functools.lru_cache(maxsize=1024)
def _fraction(price: Decimal) -> tuple[int, int]:
    return price.as_integer_ratio()


_PLAIN = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")


def parse_cny(text: str, *, allow_zero: bool = False) -> int:
    """Parse a decimal CNY string such as ``"100.00"`` into micro-yuan; reject anything else.

    Raises ValueError with a message in both languages.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("金额不能为空 / the amount is empty")
    if not _PLAIN.fullmatch(text.strip()):  # "1e3" is a thousand to Decimal, a typo to an accountant
        raise ValueError(
            f"金额 {text!r} 应写成普通小数，如 1000.00 / {text!r} is not a decimal amount written as 1000.00"
        )
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(f"金额 {text!r} 不是十进制数 / {text!r} is not a decimal amount") from None
    if not value.is_finite():
        raise ValueError(f"金额 {text!r} 无效 / {text!r} is not a finite amount")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"金额必须大于 0：{text} / the amount must be positive: {text}")
    micro = value * MICRO
    if micro != micro.to_integral_value():
        raise ValueError(f"金额最多 6 位小数：{text} / at most 6 decimal places: {text}")
    if micro > 10**15:  # a billion yuan: a typo, not a top-up
        raise ValueError(f"金额过大：{text} / the amount is too large: {text}")
    return int(micro)


def micro_from_cny(value: Decimal | int | str) -> int:
    """Convert an exact CNY amount to micro-yuan (must be representable)."""
    micro = Decimal(value) * MICRO
    if micro != micro.to_integral_value():
        raise ValueError(f"{value} CNY is not a whole number of micro-yuan")
    return int(micro)


def format_cny(micro: int) -> str:
    """Format micro-yuan as a CNY decimal string with 6 places, e.g. ``"12.340000"``."""
    sign = "-" if micro < 0 else ""
    whole, frac = divmod(abs(micro), MICRO)
    return f"{sign}{whole}.{frac:06d}"
