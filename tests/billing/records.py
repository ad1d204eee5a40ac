"""Usage records for the journal's tests, and what the database holds after a commit."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from sqlalchemy import func, select

from dizuo.billing import Scope, rollups
from dizuo.billing.holds import Book
from dizuo.billing.journal import Charge
from dizuo.billing.tables import LedgerEntry, UsageRecord, Wallet
from dizuo.store import Database

SCOPE = Scope("openai-compatible", "cq", "echo-model")


def usage_record(request_id: str, org_id: str, **fields: Any) -> dict[str, Any]:
    """A chat call's usage record without its money columns (the staged form), *fields* added."""
    return {
        "request_id": request_id,
        "org_id": org_id,
        "key_id": "k" * 32,
        "model": "echo-model",
        "deployment": "echo-1",
        "provider": "openai-compatible",
        "region": "cq",
        "endpoint": "chat",
        "prompt_tokens": 12,
        "completion_tokens": 3,
        "latency_ms": 1,
        "data_class": "general",
        "stream": False,
        "status": "ok",
        "attempts": None,
        **fields,
    }


async def settled_charge(book: Book, org_id: str, cost: int, **fields: Any) -> Charge:
    """A call's charge as the meter makes it: twice *cost* held in *book*, *cost* settled, its usage
    record complete (*fields* added)."""
    hold = await book.reserve(org_id, cost * 2, SCOPE, time.time())
    settlement = await book.settle(hold, cost)
    money = {"cost": cost, "voucher_part": 0, "own_part": cost, "uncollected": 0}
    return Charge(
        usage_record(f"req_{uuid.uuid4().hex}", org_id, **money, **fields), settlement, "openai-compatible"
    )


def committed(db: Database, org_id: str) -> tuple[int, int, int, int]:
    """(usage records, their cost, the charge legs' sum, the wallet's balance) as the database has them;
    and the hourly rollups must say what the records say, whatever path committed them."""
    assert rollups.verify(db, org_id=org_id) == []
    with db.session() as session:
        records, cost = session.execute(
            select(func.count(), func.coalesce(func.sum(UsageRecord.cost), 0)).where(
                UsageRecord.org_id == org_id
            )
        ).one()
        legs = session.scalar(
            select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
                LedgerEntry.org_id == org_id, LedgerEntry.kind == "charge"
            )
        )
        wallet = session.get(Wallet, org_id)
        assert wallet is not None
        return int(records), int(cost), int(legs or 0), wallet.balance


async def wait_for_records(db: Database, org_id: str, count: int, seconds: float = 15) -> None:
    """Wait until *org_id* has *count* usage records (staged ones reach the database a moment late)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        with db.session() as session:
            found = session.scalar(select(func.count()).where(UsageRecord.org_id == org_id))
        if found == count or asyncio.get_running_loop().time() > deadline:
            return
        await asyncio.sleep(0.05)
