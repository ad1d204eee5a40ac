"""Usage records staged in Redis: durable when the settle script returns, committed once by a drain.

Needs DIZUO_TEST_REDIS_URL (scripts/services.sh); runs on SQLite and on PostgreSQL. The replicas
test (tests/billing/test_replicas.py) runs two `dizuo serve` processes with staging on.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import select

from dizuo.accounts import create_org
from dizuo.billing import Scope, parse_cny
from dizuo.billing.journal import Journal
from dizuo.billing.service import topup
from dizuo.billing.shared import STREAM, RedisBook
from dizuo.billing.staging import GROUP, REFUSED, Drain, decode, stages
from dizuo.billing.tables import LedgerEntry, UsageRecord
from dizuo.store import Database, utc
from tests.billing.records import committed, usage_record

pytestmark = pytest.mark.skipif(
    not os.environ.get("DIZUO_TEST_REDIS_URL"), reason="needs DIZUO_TEST_REDIS_URL (scripts/services.sh)"
)

SCOPE = Scope("openai-compatible", "cq", "echo-model")
TEN_YUAN = 10_000_000


@dataclass
class Staged:
    db: Database
    book: RedisBook
    journal: Journal
    org_id: str
    redis: redis.Redis

    def drain(self, claim_idle: float = 10.0) -> Drain:
        drain = Drain(self.journal, self.book, claim_idle=claim_idle)
        drain.join_group()
        return drain

    async def charge(self, cost: int, book: RedisBook | None = None) -> tuple[str, float]:
        """Hold twice *cost*, then settle *cost* staging its record; returns (request id, staged at)."""
        book = book or self.book
        hold = await book.reserve(self.org_id, cost * 2, SCOPE, time.time())
        request_id = f"req_{uuid.uuid4().hex}"
        at = time.time()
        await book.settle(hold, cost, stage=record(request_id, self.org_id, at))
        return request_id, at

    def committed(self) -> tuple[int, int, int, int]:
        return committed(self.db, self.org_id)

    async def spendable(self) -> int:
        return (await self.book.state(self.org_id)).balance

    def unacknowledged(self) -> int:
        return int(self.redis.xpending(STREAM, GROUP)["pending"])


def record(request_id: str, org_id: str, at: float) -> dict[str, Any]:
    """A usage record as the meter stages it: no money columns (the script fills them)."""
    attempts = [{"deployment": "echo-1", "error": None}]
    return usage_record(request_id, org_id, latency_ms=4, attempts=attempts, created_at=at)


@pytest.fixture
def staged(database_url: str, redis_url: str) -> Iterator[Staged]:
    db = Database(database_url)
    db.upgrade()
    name = f"staged-{uuid.uuid4().hex[:8]}"
    org = create_org(db, name)
    topup(db, name, parse_cny("10"))
    client = redis.Redis.from_url(redis_url)
    client.delete(STREAM)  # entries other tests' replicas left behind are not this test's
    client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    book = RedisBook(redis_url, 900, loader=lambda org_id: journal.refresh(org_id))
    journal = Journal(db, book)
    journal.start()
    yield Staged(db, book, journal, org.id, client)
    journal.stop()
    book.close()
    client.close()
    db.dispose()


async def test_a_staged_charge_is_spent_at_once_and_committed_by_a_drain(staged: Staged) -> None:
    request_id, at = await staged.charge(1_500)
    # Answered: the money is spent for every replica, the record waits in Redis, not yet in the database.
    assert await staged.spendable() == TEN_YUAN - 1_500
    assert staged.redis.xlen(STREAM) == 1
    assert staged.committed() == (0, 0, 0, TEN_YUAN)

    drain = staged.drain()
    assert await asyncio.to_thread(drain.read, None) == 1
    drain.stop()
    assert staged.committed() == (1, 1_500, 0, TEN_YUAN - 1_500)
    with staged.db.session() as session:
        row = session.get(UsageRecord, request_id)
        assert row is not None
        assert (row.own_part, row.voucher_part, row.uncollected, row.status) == (1_500, 0, 0, "ok")
        assert row.attempts == [{"deployment": "echo-1", "error": None}]
        # The record keeps the moment of its answer, not the moment of its commit.
        assert abs((utc(row.created_at) - dt.datetime.fromtimestamp(at, dt.UTC)).total_seconds()) < 0.001
        legs = session.scalars(select(LedgerEntry).where(LedgerEntry.request_id == request_id)).all()
        assert sum(leg.amount for leg in legs) == 0 and len(legs) == 2
    # The entry is gone, and the charge left the pending sum without counting twice.
    assert staged.redis.xlen(STREAM) == 0
    assert await staged.spendable() == TEN_YUAN - 1_500


async def test_staged_money_stays_spent_past_the_hold_expiry(staged: Staged, redis_url: str) -> None:
    # A pending charge of a crashed replica lapses after hold_seconds; a staged one must not: its
    # record is still to be committed, and its money would be spent twice.
    short = RedisBook(redis_url, 0.1, loader=lambda org_id: staged.journal.refresh(org_id))
    await staged.charge(2_000, book=short)
    await asyncio.sleep(0.3)
    hold = await short.reserve(staged.org_id, 10, SCOPE, time.time())  # drops what expired
    await short.release(hold)
    assert await staged.spendable() == TEN_YUAN - 2_000
    short.close()


async def test_records_a_dead_replica_read_are_claimed_and_committed(staged: Staged) -> None:
    for cost in (100, 200, 300):
        await staged.charge(cost)
    # A replica read them and died before committing.
    taken = staged.redis.xreadgroup(GROUP, "dead-replica", {STREAM: ">"}, count=10)
    assert len(taken[0][1]) == 3
    drain = staged.drain(claim_idle=0.2)
    assert await asyncio.to_thread(drain.read, None) == 0  # they are not new
    assert await asyncio.to_thread(drain.claim) == 0  # and not idle long enough
    await asyncio.sleep(0.3)
    assert await asyncio.to_thread(drain.claim) == 3
    drain.stop()
    assert staged.committed() == (3, 600, 0, TEN_YUAN - 600)
    assert staged.unacknowledged() == 0 and staged.redis.xlen(STREAM) == 0
    assert await staged.spendable() == TEN_YUAN - 600


async def test_a_record_committed_but_not_acknowledged_is_not_written_twice(staged: Staged) -> None:
    await staged.charge(700)
    await staged.charge(800)
    # A replica read both, committed them, and died before it acknowledged them.
    (_, entries), *_ = staged.redis.xreadgroup(GROUP, "dead-replica", {STREAM: ">"}, count=10)
    _, error = staged.journal.commit([decode(fields) for _, fields in entries])
    assert error is None
    assert staged.committed() == (2, 1_500, 0, TEN_YUAN - 1_500)
    # A third one is staged meanwhile: only it is new when the entries are claimed.
    await staged.charge(900)
    drain = staged.drain(claim_idle=0.1)
    await asyncio.sleep(0.2)
    assert await asyncio.to_thread(drain.claim) == 2
    assert await asyncio.to_thread(drain.read, None) == 1
    drain.stop()
    assert staged.committed() == (3, 2_400, 0, TEN_YUAN - 2_400)
    assert staged.unacknowledged() == 0 and staged.redis.xlen(STREAM) == 0
    assert await staged.spendable() == TEN_YUAN - 2_400


async def test_a_drain_that_cannot_commit_keeps_the_records_and_their_money(
    staged: Staged, tmp_path: Path
) -> None:
    await staged.charge(400)
    # This replica's database is away (a file in a folder that does not exist): its commit fails.
    away = Database(f"sqlite:///{tmp_path / 'missing' / 'dizuo.db'}")
    failing = Drain(Journal(away, staged.book), staged.book, claim_idle=0.1)
    failing.join_group()
    assert await asyncio.to_thread(failing.read, None) == 1
    failing.stop()
    away.dispose()
    assert staged.unacknowledged() == 1
    assert staged.committed() == (0, 0, 0, TEN_YUAN)
    assert await staged.spendable() == TEN_YUAN - 400  # still counted as spent
    # Another drain takes it over once it has been idle, and commits it.
    await asyncio.sleep(0.2)
    drain = staged.drain(claim_idle=0.1)
    assert await asyncio.to_thread(drain.claim) == 1
    drain.stop()
    assert staged.committed() == (1, 400, 0, TEN_YUAN - 400)
    assert staged.unacknowledged() == 0
    assert await staged.spendable() == TEN_YUAN - 400


async def test_a_record_the_database_refuses_is_set_aside_and_the_rest_committed(staged: Staged) -> None:
    staged.redis.delete(REFUSED)
    hold = await staged.book.reserve(staged.org_id, 1_000, SCOPE, time.time())
    poison = record(f"req_{uuid.uuid4().hex}", staged.org_id, time.time()) | {"prompt_tokens": 2**63}
    await staged.charge(100)
    await staged.book.settle(hold, 500, stage=poison)  # beyond any integer column: refused
    await staged.charge(300)
    assert await staged.spendable() == TEN_YUAN - 900
    drain = staged.drain()
    assert await asyncio.to_thread(drain.read, None) == 3
    drain.stop()
    # Before, every commit of the three failed, forever: none reached the database.
    assert staged.committed() == (2, 400, 0, TEN_YUAN - 400)
    assert staged.unacknowledged() == 0 and staged.redis.xlen(STREAM) == 0
    ((_, kept),) = staged.redis.xrange(REFUSED)
    assert decode(kept).record["request_id"] == poison["request_id"] and kept[b"e"]
    assert await staged.spendable() == TEN_YUAN - 400  # its call costs nothing
    staged.redis.delete(REFUSED)


async def test_an_entry_that_cannot_be_read_is_set_aside_not_claimed_forever(staged: Staged) -> None:
    staged.redis.delete(REFUSED)
    staged.redis.xadd(STREAM, {"p": "pend-1", "m": "12,v", "r": "{not json"})
    await staged.charge(100)
    drain = staged.drain(claim_idle=0.1)
    assert await asyncio.to_thread(drain.read, None) == 2
    await asyncio.sleep(0.2)
    assert await asyncio.to_thread(drain.claim) == 0  # nothing left behind to claim again and again
    drain.stop()
    assert staged.committed() == (1, 100, 0, TEN_YUAN - 100)
    assert staged.unacknowledged() == 0 and staged.redis.xlen(STREAM) == 0
    ((_, kept),) = staged.redis.xrange(REFUSED)
    assert kept[b"r"] == b"{not json" and kept[b"e"].startswith(b"cannot be read")
    staged.redis.delete(REFUSED)


@pytest.mark.parametrize(
    ("setting", "durability", "appendonly", "expected"),
    [
        ("auto", "process", True, True),
        ("auto", "process", False, False),
        ("auto", "process", None, False),  # Redis would not say: the database, to be safe
        ("auto", "disk", True, False),  # power-loss safety is the database's flush, not Redis's
        ("on", "disk", None, True),
        ("off", "process", True, False),
    ],
)
def test_staging_is_used_only_where_redis_keeps_what_it_is_given(
    setting: Any, durability: Any, appendonly: bool | None, expected: bool
) -> None:
    assert stages(setting, durability, appendonly) is expected


def test_redis_says_whether_it_keeps_an_append_only_file(staged: Staged) -> None:
    configured = staged.redis.config_get("appendonly")["appendonly"]
    assert staged.book.keeps_appendonly() is (configured in (b"yes", "yes"))
