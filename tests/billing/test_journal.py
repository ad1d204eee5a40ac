"""The journal's two ways to durability: a lone call commits in place, calls that meet are grouped.

Either way the call returns only once its record, its balanced ledger legs and the wallet's change
are committed, and a lone call that finds the writer busy waits its turn instead of interleaving.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import threading
import time
import uuid
from decimal import Decimal

import pytest
from sqlalchemy import func, select, text

from dizuo.accounts.tables import Organization
from dizuo.billing import WalletBook, parse_cny
from dizuo.billing.journal import Charge, Journal, refuses
from dizuo.billing.service import VoucherTerms, issue_voucher, revoke_voucher
from dizuo.billing.tables import LedgerEntry, Voucher
from dizuo.store import Database, Durability
from tests.billing.records import SCOPE, committed, settled_charge, usage_record


async def charge(journal: Journal, org_id: str, cost: int) -> Charge:
    return await settled_charge(journal.book, org_id, cost)


async def test_a_lone_call_is_durable_when_record_returns(journal: tuple[Journal, Database, str]) -> None:
    j, db, org_id = journal
    for cost in (1_000, 2_500, 3):
        await j.record(await charge(j, org_id, cost), alone=True)
    assert committed(db, org_id) == (3, 3_503, 0, 10_000_000 - 3_503)


async def test_lone_and_grouped_calls_mix_without_loss(journal: tuple[Journal, Database, str]) -> None:
    j, db, org_id = journal
    charges = [await charge(j, org_id, 100 + i) for i in range(40)]
    # Half claim to be alone while the others queue: whichever path each takes, all land exactly once.
    await asyncio.gather(*(j.record(c, alone=i % 2 == 0) for i, c in enumerate(charges)))
    total = sum(100 + i for i in range(40))
    assert committed(db, org_id) == (40, total, 0, 10_000_000 - total)


async def test_a_group_larger_than_one_insert_lands_whole(journal: tuple[Journal, Database, str]) -> None:
    j, db, org_id = journal
    # SQLite writes a group's rows as multi-row INSERTs of ROWS_PER_INSERT rows each: 300 calls
    # (600 ledger legs) take several statements, and every row must land with its own values.
    charges = [await charge(j, org_id, 1 + i) for i in range(300)]
    _, error = j.commit(charges)
    assert error is None
    total = sum(1 + i for i in range(300))
    assert committed(db, org_id) == (300, total, 0, 10_000_000 - total)
    with db.session() as session:
        costs = dict(
            session.execute(
                text("SELECT request_id, cost FROM usage_records WHERE org_id = :o"), {"o": org_id}
            ).all()
        )
    assert costs == {c.record["request_id"]: c.record["cost"] for c in charges}


async def test_groups_of_any_size_reuse_a_few_statements(journal: tuple[Journal, Database, str]) -> None:
    j, db, org_id = journal
    if not db.is_sqlite:
        pytest.skip("PostgreSQL's groups go in by COPY")
    # The driver keeps every statement it prepared: a statement for each group size (1 to 300 rows)
    # held about 40 MB in a busy server. Groups of every size land exactly, through a few statements.
    j.commit([await charge(j, org_id, 1)])  # the journal's connection is open
    assert j._connection is not None
    sizes: set[int] = set()  # rows in each INSERT of usage records (the trace shows values bound)
    j._connection.dbapi_connection.set_trace_callback(  # type: ignore[union-attr]
        lambda sql: sizes.add(sql.count("), (") + 1) if sql.startswith("INSERT INTO usage_records") else None
    )
    total = 1
    for size in range(1, 301, 7):
        charges = [await charge(j, org_id, 1) for _ in range(size)]
        assert j.commit(charges)[1] is None
        total += size
    j._connection.dbapi_connection.set_trace_callback(None)  # type: ignore[union-attr]
    assert committed(db, org_id) == (total, total, 0, 10_000_000 - total)
    assert sizes <= {1, 2, 4, 8, 16, 32, 64, 128, 256}  # a statement text for each, reused
    assert len(sizes) > 5


async def test_a_record_the_database_refuses_fails_only_its_own_call(
    journal: tuple[Journal, Database, str],
) -> None:
    _, db, org_id = journal
    book = WalletBook()
    grouped = Journal(db, book)  # its writer starts once the calls are queued: they make one group
    grouped.refresh()
    charges = [await settled_charge(book, org_id, cost) for cost in (100, 200, 300)]
    charges[1].record["prompt_tokens"] = 2**63  # beyond any integer column
    calls = [asyncio.create_task(grouped.record(c)) for c in charges]
    await asyncio.sleep(0.05)
    grouped.start()
    try:
        outcomes = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 10)
    finally:
        grouped.stop()
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], Exception) and refuses(outcomes[1])
    assert committed(db, org_id) == (2, 400, 0, 10_000_000 - 400)
    # The failed call costs nothing; the others' money is spent, once.
    assert book.pending_balance[org_id] == 0
    assert (await book.state(org_id)).balance == 10_000_000 - 400


async def test_a_lone_call_waits_for_a_busy_writer(journal: tuple[Journal, Database, str]) -> None:
    j, db, org_id = journal
    lone = await charge(j, org_id, 700)
    released = threading.Event()

    def busy_writer() -> None:
        # What the writer thread holds while it commits a batch or reloads wallets.
        with j._db_lock:
            released.wait(5)

    writer = threading.Thread(target=busy_writer)
    writer.start()
    while not j._db_lock.locked():
        await asyncio.sleep(0.001)
    task = asyncio.create_task(j.record(lone, alone=True))
    await asyncio.sleep(0.2)
    # It neither committed beside the writer nor gave up: it is queued behind it.
    assert not task.done()
    assert committed(db, org_id)[0] == 0
    released.set()
    await asyncio.wait_for(task, 5)
    writer.join(5)
    assert committed(db, org_id) == (1, 700, 0, 10_000_000 - 700)


async def test_the_journal_writes_times_as_every_other_writer_does(
    journal: tuple[Journal, Database, str],
) -> None:
    j, db, org_id = journal
    await j.record(await charge(j, org_id, 5), alone=True)
    await asyncio.gather(j.record(await charge(j, org_id, 6)), j.record(await charge(j, org_id, 7)))
    with db.session() as session:
        rows = session.execute(
            text("SELECT kind, created_at FROM ledger_entries WHERE org_id = :org"), {"org": org_id}
        ).all()
    # The top-up leg was written through the ORM, the charge legs by the journal's own statements:
    # stored alike, they compare and sort as times in statements' month ranges.
    assert sorted({kind for kind, _ in rows}) == ["charge", "topup"]
    if db.is_sqlite:
        assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", stamp) for _, stamp in rows), rows
    else:
        assert all(stamp.tzinfo is not None for _, stamp in rows)


@pytest.mark.parametrize(("durability", "sqlite", "postgres"), [("process", 1, "off"), ("disk", 2, "on")])
def test_the_journal_commits_as_durably_as_configured(
    database_url: str, durability: Durability, sqlite: int, postgres: str
) -> None:
    db = Database(database_url, durability)
    try:
        connection = db.writer_connection()
        cursor = connection.cursor()
        if db.is_sqlite:  # 1 = NORMAL (the WAL written at commit, synced at checkpoints), 2 = FULL
            cursor.execute("PRAGMA synchronous")
            assert cursor.fetchone()[0] == sqlite
        else:
            cursor.execute("SHOW synchronous_commit")
            assert cursor.fetchone()[0] == postgres
            # Admin writes (top-ups, vouchers) keep waiting for the flush whatever the setting.
            with db.session() as session:
                assert session.execute(text("SHOW synchronous_commit")).scalar() == "on"
        connection.close()
    finally:
        db.dispose()


async def test_a_voucher_revoked_before_its_charge_is_committed_never_pays_more_than_it_had(
    journal: tuple[Journal, Database, str],
) -> None:
    j, db, org_id = journal
    with db.session() as session:
        org = session.get(Organization, org_id)
        assert org is not None
        name = org.name
    now = dt.datetime.now(dt.UTC)
    terms = VoucherTerms("大数据局", "试点", parse_cny("1"), Decimal("1"), now, now + dt.timedelta(days=30))
    voucher = issue_voucher(db, name, terms)
    j.refresh()
    # A call settled against the voucher (it pays all of ¥0.60) ...
    hold = await j.book.reserve(org_id, parse_cny("0.6"), SCOPE, time.time())
    settlement = await j.book.settle(hold, parse_cny("0.6"))
    assert settlement.vouchers == ((voucher.id, parse_cny("0.6")),)
    money = {"cost": 600_000, "voucher_part": 600_000, "own_part": 0, "uncollected": 0}
    charge = Charge(usage_record(f"req_{uuid.uuid4().hex}", org_id, **money), settlement, "openai-compatible")
    # ... is revoked before that charge is committed: the issuer is given the whole ¥1 back.
    assert revoke_voucher(db, voucher.id) == parse_cny("1")
    await j.record(charge, alone=True)
    with db.session() as session:
        remaining = session.get(Voucher, voucher.id).remaining  # type: ignore[union-attr]
        by_account = dict(
            session.execute(
                select(LedgerEntry.account, func.sum(LedgerEntry.amount)).group_by(LedgerEntry.account)
            ).all()
        )
        every_leg = session.scalar(select(func.sum(LedgerEntry.amount)))
    # The voucher paid the ¥0.60 it had when the call was settled, and no more: it ends at zero, not
    # at -¥0.60, and what the revocation gave the issuer is corrected to the ¥0.40 left unspent.
    assert remaining == 0 and by_account[f"voucher:{voucher.id}"] == 0
    assert by_account["issuer:大数据局"] == -parse_cny("0.6")
    assert every_leg == 0
    assert committed(db, org_id)[3] == 10_000_000  # the organization's own balance paid nothing
