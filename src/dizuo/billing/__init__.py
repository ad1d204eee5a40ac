"""Money: prices, wallets, vouchers (算力券), holds, the ledger and usage records."""

from dizuo.billing.holds import Hold, Scope, Settlement, WalletBook
from dizuo.billing.meter import Meter, worst_case_tokens
from dizuo.billing.money import format_cny, parse_cny, token_cost
from dizuo.billing.split import Share, Split, split_charge

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
