"""Idempotency keys for money changes: a top-up or a voucher sent twice (a retry after a timeout, a
double click) is made once. The client names the request (``Idempotency-Key`` header, or
``--idempotency-key`` in the CLI); the same key with the same parameters returns the first result,
with other parameters it is refused (409), and the key is remembered in the change's own transaction,
so a crash cannot separate the two.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from sqlalchemy.orm import Session

from dizuo.billing.tables import IdempotencyKey
from dizuo.errors import IdempotencyConflict, InvalidRequest
from dizuo.store import utcnow

__all__ = ["Idempotent", "check_key"]


def check_key(key: str | None) -> str | None:
    """*key* stripped, or 400 when it is empty or longer than 200 characters."""
    if key is None:
        return None
    key = key.strip()
    if not 1 <= len(key) <= 200:
        raise InvalidRequest(
            "invalid_param",
            param="idempotency_key",
            reason_zh="幂等键应为 1 到 200 个字符",
            reason_en="the idempotency key must have 1 to 200 characters",
        )
    return key


class Idempotent:
    """One money change under an optional client key: :meth:`replayed` before making it,
    :meth:`remember` in the same transaction after."""

    def __init__(self, action: str, org_id: str, key: str | None, params: dict[str, Any]) -> None:
        self.key = f"{action}:{org_id}:{key}" if key is not None else None
        self.client_key = key
        self.fingerprint = hashlib.sha256(
            orjson.dumps(params, option=orjson.OPT_SORT_KEYS, default=str)
        ).hexdigest()

    def replayed(self, session: Session) -> str | None:
        """The result of the first request with this key, or None when there was none."""
        if self.key is None:
            return None
        row = session.get(IdempotencyKey, self.key)
        if row is None:
            return None
        if row.fingerprint != self.fingerprint:
            raise IdempotencyConflict(key=self.client_key)
        return row.result

    def remember(self, session: Session, result: str) -> None:
        if self.key is not None:
            session.add(
                IdempotencyKey(key=self.key, fingerprint=self.fingerprint, result=result, created_at=utcnow())
            )
