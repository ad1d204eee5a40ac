"""Organizations, members and API keys."""

from dizuo.accounts.keys import KeyCache, KeyInfo, hash_key, new_key
from dizuo.accounts.service import (
    CreatedKey,
    create_key,
    create_org,
    ensure_default_org,
    find_org,
    get_org,
    revoke_key,
)

__all__ = [
    "CreatedKey",
    "KeyCache",
    "KeyInfo",
    "create_key",
    "create_org",
    "ensure_default_org",
    "find_org",
    "get_org",
    "hash_key",
    "new_key",
    "revoke_key",
]
