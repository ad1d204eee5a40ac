"""Usage records spooled beside a SQLite database: durable in the file when the call returns, in the
database a moment later, exactly once, whatever fails in between (billing/spool.py).

The spool exists only for SQLite files, so these tests use one of their own whatever the suite's
database is.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import openai
import orjson
import pytest
from sqlalchemy import func, select, text

from dizuo.accounts import create_key, create_org
from dizuo.billing import WalletBook, parse_cny, spool
from dizuo.billing.journal import Charge, Journal
from dizuo.billing.service import topup
from dizuo.billing.spool import Spool, decode, encode, recover, spool_dir
from dizuo.billing.tables import LedgerEntry, UsageRecord
from dizuo.store import Database
from tests.billing.race import race
from tests.billing.records import committed, settled_charge, wait_for_records
from tests.support.servers import free_port, one_deployment_config, start_server
from tests.support.upstream import FakeUpstream

TEN_YUAN = 10_000_000


@dataclass
class Setup:
    db: Database
    journal: Journal
    book: WalletBook
    org_id: str
    directory: Path

    def spool(self, gather: float = 0.01) -> Spool:
        spooler = Spool(self.journal, self.directory, gather=gather)
        spooler.start()
        return spooler

    async def charge(self, cost: int) -> Charge:
        """A call's charge as the meter spools it: settled in memory, stamped with its answer's time."""
        return await settled_charge(self.book, self.org_id, cost, created_at=time.time())

    async def balance_in_memory(self) -> int:
        return (await self.book.state(self.org_id)).balance


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    db = Database(f"sqlite:///{tmp_path / 'dizuo.db'}")
    db.upgrade()
    name = f"spool-{uuid.uuid4().hex[:8]}"
    org = create_org(db, name)
    topup(db, name, parse_cny("10"))
    book = WalletBook()
    journal = Journal(db, book)
    journal.start()
    directory = spool_dir(db)
    assert directory == tmp_path / "dizuo.db-spool"
    yield Setup(db, journal, book, org.id, directory)
    journal.stop()
    db.dispose()


def spooled_lines(directory: Path) -> list[bytes]:
    return [line for path in sorted(directory.glob("*.spool")) for line in path.read_bytes().splitlines()]


async def until(condition: Callable[[], bool], seconds: float = 5) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_a_record_is_in_the_file_when_stage_returns_and_in_the_database_after(setup: Setup) -> None:
    spooler = setup.spool(gather=30)  # nothing is committed while the test looks at the file
    charges = [await setup.charge(cost) for cost in (1_000, 2_500, 3)]
    for charge in charges:
        spooler.stage(charge)
    lines = spooled_lines(setup.directory)
    assert [decode(line).record["request_id"] for line in lines] == [c.record["request_id"] for c in charges]
    assert committed(setup.db, setup.org_id) == (0, 0, 0, TEN_YUAN)
    # Spent in memory already: the money can not be held again while the records wait.
    assert await setup.balance_in_memory() == TEN_YUAN - 3_503
    spooler.stop()  # commits what waits, then deletes the file
    assert committed(setup.db, setup.org_id) == (3, 3_503, 0, TEN_YUAN - 3_503)
    assert list(setup.directory.iterdir()) == []
    assert setup.book.pending_balance[setup.org_id] == 0
    # The answer's moment is the record's, not the commit's.
    with setup.db.session() as session:
        stamps = sorted(session.scalars(select(UsageRecord.created_at)))
    assert [s.replace(tzinfo=None) for s in stamps] == sorted(dt_utc(c.record["created_at"]) for c in charges)


def dt_utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).replace(tzinfo=None)


async def test_committed_records_leave_the_file(setup: Setup) -> None:
    spooler = setup.spool()
    for cost in (10, 20, 30):
        spooler.stage(await setup.charge(cost))
    await until(lambda: committed(setup.db, setup.org_id)[0] == 3)
    await until(lambda: spooled_lines(setup.directory) == [])
    # The file in use stays (emptied) while the process runs.
    assert len(list(setup.directory.glob("*.spool"))) == 1
    spooler.stop()
    assert committed(setup.db, setup.org_id) == (3, 60, 0, TEN_YUAN - 60)


async def test_a_full_file_gives_way_to_a_new_one_and_is_deleted_once_committed(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spool, "SEGMENT_BYTES", 1_500)  # about three records a file
    spooler = setup.spool(gather=30)
    for cost in range(1, 13):
        spooler.stage(await setup.charge(cost))
    assert len(list(setup.directory.glob("*.spool"))) >= 3
    assert len(spooled_lines(setup.directory)) == 12
    spooler.stop()
    assert committed(setup.db, setup.org_id) == (12, 78, 0, TEN_YUAN - 78)
    assert list(setup.directory.iterdir()) == []


async def test_a_failing_commit_keeps_the_money_spent_and_is_retried(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spool, "RETRY_SECONDS", 0.05)
    with setup.db.session() as session:  # no usage record can be written while the table `away` is missing
        session.execute(
            text("CREATE TRIGGER away BEFORE INSERT ON usage_records BEGIN INSERT INTO away VALUES (1); END")
        )
    spooler = setup.spool()
    for cost in (100, 200):
        spooler.stage(await setup.charge(cost))
    await asyncio.sleep(0.3)  # several commits failed meanwhile
    assert committed(setup.db, setup.org_id) == (0, 0, 0, TEN_YUAN)
    # The calls were answered: their money is not given back while the database refuses it.
    assert await setup.balance_in_memory() == TEN_YUAN - 300
    assert len(spooled_lines(setup.directory)) == 2
    with setup.db.session() as session:
        session.execute(text("CREATE TABLE away (x INTEGER)"))
    await until(lambda: committed(setup.db, setup.org_id)[0] == 2)
    spooler.stop()
    assert committed(setup.db, setup.org_id) == (2, 300, 0, TEN_YUAN - 300)
    assert setup.book.pending_balance[setup.org_id] == 0
    assert await setup.balance_in_memory() == TEN_YUAN - 300


async def test_a_record_the_database_refuses_is_set_aside_and_the_rest_committed(setup: Setup) -> None:
    spooler = setup.spool(gather=30)
    charges = [await setup.charge(cost) for cost in (100, 200, 300)]
    charges[1].record["prompt_tokens"] = 2**63  # beyond SQLite's integers: refused with any batch
    for charge in charges:
        spooler.stage(charge)
    spooler.stop()
    assert committed(setup.db, setup.org_id) == (2, 400, 0, TEN_YUAN - 400)
    assert list(setup.directory.glob("*.spool")) == []
    (line,) = (setup.directory / spool.REFUSED).read_bytes().splitlines()
    assert decode(line).record["request_id"] == charges[1].record["request_id"]
    assert "OverflowError" in orjson.loads(line)["e"]
    # Its call costs nothing: the money is spendable again.
    assert setup.book.pending_balance[setup.org_id] == 0
    assert await setup.balance_in_memory() == TEN_YUAN - 400
    # Mended and renamed to a spool file, the next start (or admin command) commits it.
    mended = orjson.loads(line)
    mended["r"]["prompt_tokens"] = 12
    (setup.directory / "1-mended.spool").write_bytes(orjson.dumps(mended) + b"\n")
    assert recover(setup.db) == 1
    assert committed(setup.db, setup.org_id) == (3, 600, 0, TEN_YUAN - 600)


async def test_recover_sets_aside_what_the_database_refuses_and_takes_over_the_rest(setup: Setup) -> None:
    charges = [await setup.charge(cost) for cost in (7, 8, 9)]
    charges[0].record["latency_ms"] = 2**63
    setup.directory.mkdir()
    (setup.directory / "4242-dead.spool").write_bytes(b"".join(encode(c) for c in charges))
    assert recover(setup.db) == 2  # before, the error stopped every start of the server
    assert committed(setup.db, setup.org_id) == (2, 17, 0, TEN_YUAN - 17)
    assert [p.name for p in setup.directory.iterdir()] == [spool.REFUSED]
    assert recover(setup.db) == 0


async def test_recover_commits_what_a_dead_process_left_once(setup: Setup) -> None:
    charges = [await setup.charge(cost) for cost in (7, 8, 9)]
    # The first was committed before the process died (the file not yet emptied).
    setup.journal.commit([charges[0]])
    setup.directory.mkdir()
    dead = setup.directory / "4242-dead.spool"
    cut = encode(await setup.charge(1_000_000))[:40]  # a kill in the middle of a write: never answered
    dead.write_bytes(b"".join(encode(c) for c in charges) + cut)
    # A live process's file is not touched.
    live = setup.spool(gather=30)
    live.stage(await setup.charge(5))

    assert recover(setup.db) == 2
    assert committed(setup.db, setup.org_id) == (3, 24, 0, TEN_YUAN - 24)
    assert not dead.exists()
    assert len(spooled_lines(setup.directory)) == 1
    assert recover(setup.db) == 0  # nothing twice
    live.stop()
    assert committed(setup.db, setup.org_id) == (4, 29, 0, TEN_YUAN - 29)


async def test_a_file_recover_cannot_open_is_left_and_the_rest_taken_over(setup: Setup) -> None:
    setup.directory.mkdir()
    # As another user's file would be (root reads everything, so a link that loops stands in).
    (setup.directory / "1-unreadable.spool").symlink_to("1-unreadable.spool")
    (setup.directory / "2-dead.spool").write_bytes(encode(await setup.charge(11)))
    assert recover(setup.db) == 1
    assert committed(setup.db, setup.org_id) == (1, 11, 0, TEN_YUAN - 11)
    assert [p.name for p in setup.directory.iterdir()] == ["1-unreadable.spool"]


def test_spooling_is_for_sqlite_files(tmp_path: Path) -> None:
    file = Database(f"sqlite:///{tmp_path / 'x.db'}")
    memory = Database("sqlite:///:memory:")
    postgres = Database("postgresql+psycopg://u:p@127.0.0.1:1/x")
    disk = Database(f"sqlite:///{tmp_path / 'x.db'}", "disk")
    try:
        assert spool.spools("auto", file) and spool.spools("on", file) and not spool.spools("off", file)
        assert not spool.spools("auto", disk) and spool.spools("on", disk)  # on: each append flushed
        assert not spool.spools("on", memory) and not spool.spools("on", postgres)
    finally:
        for db in (file, memory, postgres, disk):
            db.dispose()


# ---- a real server ------------------------------------------------------------------------------


@pytest.fixture
def server_config(upstream: FakeUpstream, tmp_path: Path) -> Path:
    # Output-priced at ¥1000/M with max_tokens=3: every call holds and costs exactly ¥0.003.
    price = {"input": "0", "output": "1000"}
    return one_deployment_config(
        tmp_path / "dizuo.yaml", upstream.base_url, name="pricey-1", model="pricey-model", price=price
    )


async def test_500_spooled_calls_spend_a_wallet_for_100_exactly(server_config: Path, tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'served.db'}"
    db = Database(database_url)
    db.upgrade()
    org = create_org(db, "spooled")
    topup(db, "spooled", parse_cny("0.3"))
    key = create_key(db, "spooled").key
    port = free_port()
    server = start_server(server_config, tmp_path, database_url, port)  # the default: spooled
    try:
        sdk = openai.AsyncOpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0, timeout=60
        )
        statuses = await race([sdk], 500)
        await sdk.close()
        assert (statuses.count(200), statuses.count(402)) == (100, 400)
        assert list((tmp_path / "served.db-spool").glob("*.spool")), "the server does not spool"
        await wait_for_records(db, org.id, 100)
        with db.session() as session:
            rows = list(session.scalars(select(UsageRecord).where(UsageRecord.org_id == org.id)))
            charged = session.scalar(
                select(func.sum(LedgerEntry.amount)).where(
                    LedgerEntry.org_id == org.id,
                    LedgerEntry.kind == "charge",
                    LedgerEntry.account.like("revenue:%"),
                )
            )
        assert len(rows) == 100 == len({r.request_id for r in rows})
        assert charged == sum(r.cost for r in rows) == 300_000
        assert committed(db, org.id)[3] == 0
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(20)
    # A clean stop leaves no spool behind.
    assert list((tmp_path / "served.db-spool").iterdir()) == []
    db.dispose()


def test_the_spool_directory_is_private(setup: Setup) -> None:
    spooler = setup.spool()
    try:
        (path,) = setup.directory.glob("*.spool")
        assert os.stat(path).st_mode & 0o777 == 0o600  # usage records name keys and organizations
    finally:
        spooler.stop()
