"""Money: prices, wallets, vouchers (算力券), holds, the ledger and usage records.

The metering pipeline (:class:`Meter`, with the providers, Redis and routing it needs) is imported
when first named, so that a command or report that only reads the books does not load it."""

from typing import TYPE_CHECKING, Any

from dizuo.billing.holds import Hold, Scope, Settlement, WalletBook
from dizuo.billing.money import format_cny, parse_cny, token_cost
from dizuo.billing.split import Share, Split, split_charge

if TYPE_CHECKING:
    from dizuo.billing.meter import Meter, worst_case_tokens

__all__ = [
    "Hold",
    "Meter",
    "Scope",
    "Settlement",
    "Share",
    "Split",
    "WalletBook",
    "format_cny",
    "parse_cny",
    "split_charge",
    "token_cost",
    "worst_case_tokens",
]


def __getattr__(name: str) -> Any:
    if name in ("Meter", "worst_case_tokens"):
        from dizuo.billing import meter

        return getattr(meter, name)
    raise AttributeError(f"module 'dizuo.billing' has no attribute {name!r}")
