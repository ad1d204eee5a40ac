"""The journal: usage records and their ledger entries, written by one thread in group commits.

A call's answer is not completed until its record is durable (DESIGN §3.3): the gateway awaits
:meth:`Journal.record`, which resolves once the batch holding the record has committed. Batching
many calls into one transaction is what keeps this fast under load. A call that is alone (no other
call in flight in this process, nothing queued, the writer between batches) commits on its own
thread instead: with nothing to group it with, the hand-off to the writer and back would only add
latency. Both paths use the writer's one connection under one lock, so they never interleave.

The same thread keeps the in-memory wallets fresh: after each batch (or every ``refresh_seconds``
when idle) it reloads the organizations whose wallet version changed (top-ups, vouchers granted or
revoked by the CLI or another replica), and it reports the money held in flight for views.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import orjson
from sqlalchemy import (
    JSON,
    BigInteger,
    ColumnElement,
    String,
    Text,
    Update,
    bindparam,
    func,
    insert,
    literal_column,
    null,
    select,
    text,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

from dizuo.billing import ledger, rollups
from dizuo.billing.holds import Book, Committed, Settlement, Snapshot, VoucherState, epoch
from dizuo.billing.tables import LedgerEntry, UsageRecord, Voucher, Wallet
from dizuo.store import Database, stamper, utcnow
from dizuo.store.batches import row_groups
from dizuo.store.writer import GroupWriter

__all__ = ["Apart", "Charge", "Journal", "refuses"]

log = logging.getLogger("dizuo.billing")
RELOAD_OVERLAP = dt.timedelta(seconds=5)
MAX_BATCH = 512


_Queued = tuple["Charge", "asyncio.Future[None]", asyncio.AbstractEventLoop]


class _Statement:
    """One compiled statement, and how rows of column values become the driver's parameters."""

    __slots__ = ("_insert", "convert", "order", "sql")

    def __init__(
        self, statement: ClauseElement, dialect: Dialect, column_keys: list[str] | None = None
    ) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect, column_keys=column_keys))
        self.sql: str = compiled.string
        # Each value converted by its type's bind processor for the dialect (JSON, booleans, as
        # SQLAlchemy would convert them); timestamps come converted already (one per batch:
        # _Compiled.stamp).
        self.convert: dict[str, Callable[[Any], Any]] = {}
        for name, bind in compiled.binds.items():
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None and name not in STAMPED:
                self.convert[name] = _json_text(processor) if isinstance(bind.type, JSON) else processor
        # The parameters' order, for a positional paramstyle (SQLite's qmark); None for named ones.
        self.order: list[str] | None = compiled.positiontup
        # A qmark INSERT's row of marks, to write many rows as one statement (SQLite: one step).
        head, marks, rest = self.sql.partition(" VALUES ")
        self._insert = (
            (head + marks, rest) if marks and self.order is not None and rest.endswith(")") else None
        )

    def rows(self, params: list[dict[str, Any]]) -> tuple[str, list[Any]]:
        """The SQL and *params* in the driver's style (positional or named). Converts *params* in place."""
        if self.convert:
            for row in params:
                for name, convert in self.convert.items():
                    row[name] = convert(row[name])
        if self.order is None:
            return self.sql, params
        order = self.order
        return self.sql, [tuple([row[name] for name in order]) for row in params]

    def execute(self, cursor: Any, params: list[dict[str, Any]]) -> None:
        """Run the statement for each of *params*. Several rows of an INSERT go as multi-row
        statements (:func:`row_groups`: of at most :data:`ROWS_PER_INSERT` rows, a few sizes, each
        prepared once): SQLite's driver releases and takes back the interpreter's lock for every
        step, and each take-back may wait for the event loop; one step for many rows avoids that (and
        is faster anyway)."""
        sql, rows = self.rows(params)
        if self._insert is None or len(rows) < 2:
            cursor.executemany(sql, rows)
            return
        head, group = self._insert
        for start, size in row_groups(len(rows), ROWS_PER_INSERT):
            part = rows[start : start + size]
            cursor.execute(self._many(head, group, size), [value for row in part for value in row])

    @staticmethod
    @functools.cache
    def _many(head: str, group: str, size: int) -> str:
        return head + ", ".join([group] * size)


ROWS_PER_INSERT = 256


def _json_text(process: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A JSON column's values written by orjson (a tenth of the standard library's cost: a record's
    call attempts are written with each), the same JSON in fewer spaces; *process*, SQLAlchemy's
    own, for what orjson does not write (None as JSON null, integers beyond 64 bits)."""

    def convert(value: Any) -> Any:
        if value is None:
            return process(value)
        try:
            return orjson.dumps(value).decode()
        except TypeError:
            return process(value)

    return convert


# The journal's parameters that hold the batch's timestamp.
STAMPED = frozenset({"created_at", "now"})


def _text(constant: str) -> ColumnElement[str]:
    """A constant string written into the SQL (the compiled statements take no other parameters)."""
    assert "'" not in constant
    return literal_column(f"'{constant}'", String)


class _Compiled:
    """The journal's four statements, compiled once for the database's dialect."""

    def __init__(self, dialect: Dialect) -> None:
        usage_columns = [c.name for c in UsageRecord.__table__.columns]
        ledger_columns = [c.name for c in LedgerEntry.__table__.columns if c.name != "id"]
        voucher = Voucher.__table__.c
        self.usage = _Statement(insert(UsageRecord), dialect, usage_columns)
        self.ledger = _Statement(insert(LedgerEntry), dialect, ledger_columns)
        # PostgreSQL: a group's rows go in by COPY (docs/benchmarks.md: a quarter of the CPU per row).
        self.usage_columns = tuple(usage_columns)
        self.ledger_columns = tuple(ledger_columns)
        self.copy_usage = f"COPY usage_records ({', '.join(usage_columns)}) FROM STDIN"
        self.copy_ledger = f"COPY ledger_entries ({', '.join(ledger_columns)}) FROM STDIN"
        self.wallet = _Statement(_wallet_change(), dialect)
        self.voucher = _Statement(
            update(Voucher)
            .where(voucher.id == bindparam("vid"))
            .values(remaining=voucher.remaining + bindparam("delta")),
            dialect,
        )
        # A voucher revoked after a call was settled against it and before that charge was committed:
        # the revocation gave its issuer the database's remaining, which did not yet count the charge,
        # so the voucher would end below zero. The charge was paid while the voucher was valid; what
        # the revocation gave back is corrected (issuer -x, voucher +x) and the voucher ends at zero.
        # No-ops (a primary-key lookup each) for every voucher that is not revoked and overdrawn.
        overdrawn = (
            (voucher.id == bindparam("vid"))
            & (voucher.remaining < literal_column("0"))
            & voucher.revoked_at.is_not(None)
        )
        legs = LedgerEntry.__table__.c
        kind = _text("voucher_revoke")
        refunded = [
            legs.tx_id,
            legs.kind,
            legs.account,
            legs.amount,
            legs.org_id,
            legs.voucher_id,
            legs.created_at,
        ]

        def leg(account: ColumnElement[str], amount: ColumnElement[int], voucher_id: Any) -> _Statement:
            columns = select(
                bindparam("tx"), kind, account, amount, voucher.org_id, voucher_id, bindparam("now")
            )
            return _Statement(insert(LedgerEntry).from_select(refunded, columns.where(overdrawn)), dialect)

        self.revoked_issuer = leg(_text(ledger.issuer("")) + voucher.issuer, voucher.remaining, null())
        self.revoked_voucher = leg(_text(ledger.voucher("")) + voucher.id, -voucher.remaining, voucher.id)
        self.revoked_zero = _Statement(
            update(Voucher).where(overdrawn).values(remaining=literal_column("0")), dialect
        )
        # *moment* as the driver takes it for every timestamp column the journal writes.
        self.stamp = stamper(dialect)
        self.dialect = dialect
        self._one: str | None = None

    def one_charge(self) -> str:
        """PostgreSQL: one charge's usage record, ledger legs, rollups and wallet change as one
        statement (data-modifying CTEs), compiled once."""
        if self._one is None:
            self._one = _one_charge(self.dialect)
        return self._one


def _wallet_change() -> Update:
    """A charged wallet: its balance moves by ``delta`` and its version by one."""
    wallet = Wallet.__table__.c
    return (
        update(Wallet)
        .where(wallet.org_id == bindparam("org"))
        .values(
            balance=wallet.balance + bindparam("delta"),
            version=wallet.version + literal_column("1"),
            updated_at=bindparam("now"),
        )
    )


def _one_charge(dialect: Dialect) -> str:
    """:meth:`_Compiled.one_charge`'s statement. Its parameters: the usage record's columns prefixed
    ``u_``; the legs as two arrays, ``accounts`` and ``amounts``, with ``tx``, ``org``, ``request``
    and ``now``; the rollups' rows (``h0_…``: the usage row, ``a0_…``, ``a1_…``: the two activity
    rows); the wallet's ``delta``."""
    usage = insert(UsageRecord).values(
        {c.name: bindparam(f"u_{c.name}") for c in UsageRecord.__table__.columns}
    )
    legs = LedgerEntry.__table__.c
    paid = (
        func.unnest(
            sql_cast(bindparam("accounts"), postgresql.ARRAY(Text)),
            sql_cast(bindparam("amounts"), postgresql.ARRAY(BigInteger)),
        )
        .table_valued("account", "amount")
        .render_derived("x")
    )
    leg = {
        legs.tx_id: bindparam("tx"),
        legs.kind: _text("charge"),
        legs.account: paid.c.account,
        legs.amount: paid.c.amount,
        legs.org_id: bindparam("org"),
        legs.voucher_id: null(),
        legs.request_id: bindparam("request"),
        legs.note: null(),
        legs.created_at: bindparam("now"),
    }
    ledger_legs = insert(LedgerEntry).from_select(list(leg), select(*leg.values()))
    # The rollups' upserts, as the batch path writes them (rollups.upsert_sql), with named marks.
    hourly = rollups.upsert_sql(rollups.usage_hourly, 1, lambda row, column: f":h{row}_{column}")
    activity = rollups.upsert_sql(rollups.activity_hourly, 2, lambda row, column: f":a{row}_{column}")
    statement = _wallet_change().add_cte(
        usage.cte("u"),
        ledger_legs.cte("l"),
        text(hourly).columns().cte("h"),
        text(activity).columns().cte("a"),
    )
    return str(statement.compile(dialect=dialect))


@dataclass(slots=True)
class Charge:
    """One answered call: its usage record (column values) and how it was paid."""

    record: dict[str, Any]
    settlement: Settlement
    provider: str


# The errors of a commit that say the database refuses what it was given, not that it is away: a
# value beyond its column (DataError), a key it has already (IntegrityError), a value the driver cannot
# send (OverflowError for an integer beyond SQLite's, ValueError for a NUL in PostgreSQL text). Named as
# the DB-API names them, for sqlite3 and psycopg alike. Anything else (the database away or busy, a
# statement it does not know) is tried again, whole, later.
_REFUSALS = frozenset({"DataError", "IntegrityError"})


def refuses(error: BaseException) -> bool:
    """Whether *error* (from a commit) says the database will never take the rows it was given."""
    if isinstance(error, OverflowError | ValueError | TypeError):
        return True
    return any(kind.__name__ in _REFUSALS for kind in type(error).__mro__)


@dataclass(slots=True)
class Apart:
    """What :meth:`Journal.commit_apart` made of a batch."""

    committed: list[tuple[list[Charge], Committed]]  # each commit that landed, with its charges
    refused: list[tuple[Charge, BaseException]]  # charges the database refused, each on its own
    rest: list[Charge]  # not committed: the database was away (error says why); try again later
    error: BaseException | None


class _Telling:
    """How the journal tells its book what a commit did. Two ways, chosen once by the book:
    :class:`_InProcess` and :class:`_Shared`."""

    def __init__(self, book: Book, lock: threading.Lock) -> None:
        self.book = book
        self.lock = lock  # the journal's: held through each commit

    def tell(self, done: Committed, error: BaseException | None) -> None:
        try:
            if error is None:
                self.book.committed(done)
            else:
                self.book.failed(done)
        except Exception:  # the shared book is unreachable: its pending charges lapse on their own
            log.exception("telling the wallet book about a commit failed")

    def with_commit(self, done: Committed, error: BaseException | None, keep_failed: bool) -> None:
        """Within the commit, under the lock: *keep_failed*, a failed commit's calls were answered
        and their money stays spent."""

    def calls_failed(self, done: Committed, error: BaseException) -> None:
        """A failed commit of calls not yet answered: they fail, and cost nothing."""

    def answered(self, done: Committed, error: BaseException | None) -> None:
        """After the commit's calls were answered."""

    def forget(self, done: Committed, error: BaseException) -> None:
        """Charges the database refused, set aside: their calls cost nothing."""

    def snapshots(self, cursor: Any, org_ids: list[str]) -> dict[str, Snapshot]:
        """The charged wallets as the commit leaves them, for a book that keeps its own copy (none
        read for one that does not)."""
        return {}


class _InProcess(_Telling):
    """The book in this process (:class:`WalletBook`): its pending deltas change under the journal's
    lock, with the commit, or a refresh reading the database between them would count a charge
    twice or not at all."""

    def with_commit(self, done: Committed, error: BaseException | None, keep_failed: bool) -> None:
        if error is None or not keep_failed:
            self.tell(done, error)

    def calls_failed(self, done: Committed, error: BaseException) -> None:
        with self.lock:
            self.tell(done, error)

    def forget(self, done: Committed, error: BaseException) -> None:
        with self.lock:
            self.tell(done, error)


class _Shared(_Telling):
    """The book in Redis, shared by the replicas (:class:`RedisBook`): told after the calls are
    answered (until then it counts their charges as pending, which only makes less money spendable
    for a moment, never more), with each charged wallet's state read in the commit. Refused charges
    are told by the drain, with their stream entries."""

    def __init__(self, book: Book, lock: threading.Lock, mark: str) -> None:
        super().__init__(book, lock)
        self.mark = mark  # the driver's placeholder

    def answered(self, done: Committed, error: BaseException | None) -> None:
        self.tell(done, error)

    def snapshots(self, cursor: Any, org_ids: list[str]) -> dict[str, Snapshot]:
        """Read the charged wallets as this transaction leaves them (it holds their row locks, so no
        other journal changes them before it commits), or after a lone charge's commit: that state
        includes the charge (and perhaps later ones, with the version that names them), which is all
        the shared book needs."""
        marks = ", ".join([self.mark] * len(org_ids))
        # One statement, one round trip: each wallet with its live vouchers (or one row of NULLs).
        cursor.execute(
            "SELECT w.org_id, w.version, w.balance - w.standing, v.id, v.remaining - v.standing FROM wallets w"
            " LEFT JOIN vouchers v ON v.org_id = w.org_id AND v.revoked_at IS NULL"
            f" WHERE w.org_id IN ({marks})",
            org_ids,
        )
        wallets: dict[str, tuple[int, int]] = {}
        vouchers: dict[str, dict[str, int]] = defaultdict(dict)
        for org_id, version, balance, voucher_id, remaining in cursor.fetchall():
            wallets[org_id] = (int(version), int(balance))
            if voucher_id is not None:
                vouchers[org_id][voucher_id] = int(remaining)
        return {
            org_id: Snapshot(version, balance, vouchers.get(org_id, {}))
            for org_id, (version, balance) in wallets.items()
        }


class Journal:
    def __init__(self, db: Database, book: Book, refresh_seconds: float = 0.5) -> None:
        self.db = db
        self.book = book
        self.refresh_seconds = refresh_seconds
        # The writer thread: group commits of the queued charges, the wallets refreshed between them.
        self._writer: GroupWriter[_Queued] = GroupWriter(
            "journal", self._sink, most=MAX_BATCH, every=refresh_seconds, tick=self._refresh_tick
        )
        self._versions: dict[str, int] = {}
        self._seen_until: dt.datetime | None = None
        self._held_reported: dict[str, int] = {}
        # Reading the database and swapping it into memory must not interleave with a commit and
        # its pending-delta bookkeeping, or a charge would be counted twice or not at all.
        self._db_lock = threading.Lock()
        self._telling = (
            _Shared(book, self._db_lock, "?" if db.engine.dialect.paramstyle == "qmark" else "%s")
            if book.wants_snapshots
            else _InProcess(book, self._db_lock)
        )
        self._sql: _Compiled | None = None
        self._connection: PoolProxiedConnection | None = None

    @property
    def writer_lock(self) -> threading.Lock:
        """The lock this process's writers of the database take (SQLite has one writer: taking
        turns in process is faster than its busy handler's sleeps), held through each commit."""
        return self._db_lock

    # ---- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Load every wallet, then start the writer thread."""
        self.refresh()
        self._writer.start()

    def stop(self) -> None:
        """Write what is queued, then stop the writer thread."""
        self._writer.stop()
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    async def record(self, charge: Charge, *, alone: bool = False) -> None:
        """Queue *charge* and return once it is durable.

        *alone* says no other call is in flight: then, if the writer is idle, the charge is committed
        right here (blocking the event loop for one commit, which holds up no other call)."""
        if alone and self._writer.running and self._writer.empty() and self._db_lock.acquire(False):
            try:
                done, error = self._apply([charge])
            finally:
                self._db_lock.release()
            self._telling.answered(done, error)
            if error is not None:
                raise error
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._writer.put((charge, future, loop))
        await future

    def commit(
        self, charges: list[Charge], *, keep_failed: bool = False
    ) -> tuple[Committed, BaseException | None]:
        """Commit *charges* now, on this thread (the writer's, or that of a drain or spool of staged
        records). Returns what was committed and the error, if the commit failed; a shared book is not
        told. *keep_failed*: the charges' calls were answered already, so a failed commit leaves their
        money spent in the in-process book (to be committed again), instead of giving it back."""
        if not charges:
            return Committed([], {}, {}), None
        with self._db_lock:
            return self._apply(charges, keep_failed)

    def commit_apart(self, charges: list[Charge]) -> Apart:
        """:meth:`commit` *charges* (keeping failed ones spent); when the database refuses the batch
        for what is in it (:func:`refuses`), commit each charge on its own, so that a record it will
        never take does not hold back the others forever. Refused charges are the caller's to set
        aside, and then to :meth:`forget`."""
        done, error = self.commit(charges, keep_failed=True)
        if error is None:
            return Apart([(charges, done)], [], [], None)
        if not refuses(error):
            return Apart([], [], charges, error)
        if len(charges) == 1:  # already tried on its own
            return Apart([], [(charges[0], error)], [], None)
        apart = Apart([], [], [], None)
        for index, charge in enumerate(charges):
            with self._db_lock:
                done, error = self._apply([charge], keep_failed=True)
            if error is None:
                apart.committed.append(([charge], done))
            elif refuses(error):
                apart.refused.append((charge, error))
            else:
                apart.rest, apart.error = charges[index:], error
                break
        return apart

    def forget(self, charges: list[Charge], error: BaseException) -> None:
        """Give back the money of *charges* the database refused, once they are set aside: their
        calls cost nothing, as when a commit fails. Only the in-process book; a shared book is told
        by the drain, with the charges' stream entries."""
        if charges:
            self._telling.forget(_batch(charges), error)

    def existing(self, request_ids: list[str]) -> set[str]:
        """Which of *request_ids* have a usage record already."""
        if not request_ids:
            return set()
        with self.db.session() as session:
            query = select(UsageRecord.request_id).where(UsageRecord.request_id.in_(request_ids))
            return set(session.scalars(query))

    # ---- the writer thread ---------------------------------------------------------------

    def _sink(self, batch: list[_Queued]) -> list[_Queued]:
        self._write(batch)
        # Hand the interpreter to the event loop now: otherwise it waits for this thread's switch
        # interval (5 ms) before it can answer the calls just made durable.
        time.sleep(0)
        return []  # every call is answered, its charge committed or failed

    def _refresh_tick(self) -> None:
        try:
            self.refresh()
            self._report_held()
        except Exception:  # a background runner must outlive a database hiccup
            log.exception("refreshing wallets failed; keeping the ones in memory")

    def _write(self, batch: list[_Queued]) -> None:
        done, error = self.commit([charge for charge, _, _ in batch], keep_failed=True)
        if error is not None and refuses(error) and len(batch) > 1:
            # One record the database will not take fails only its own call: the rest, one by one.
            for queued in batch:
                self._write([queued])
            return
        if error is not None:
            self._telling.calls_failed(done, error)  # as commit() without keep_failed
        for _, future, loop in batch:
            loop.call_soon_threadsafe(_resolve, future, error)
        self._telling.answered(done, error)

    def _apply(
        self, charges: list[Charge], keep_failed: bool = False
    ) -> tuple[Committed, BaseException | None]:
        """Commit *charges* in one transaction (retried twice, unless the database refuses what it
        was given); the caller holds ``_db_lock``."""
        error: BaseException | None = None
        done = _batch(charges)
        for attempt in range(3):
            try:
                self._commit(charges, done)
                error = None
                break
            except Exception as exc:  # retried, then handed to every waiting call
                error = exc
                if refuses(exc):
                    log.error("the database refuses a journal commit of %d records: %r", len(charges), exc)
                    break
                log.exception("journal commit failed (attempt %d of 3)", attempt + 1)
        if error is None:
            # Our own charge bumped each wallet's version by one: expect it, so the next refresh
            # reloads only wallets that someone else changed.
            for org_id in done.org_deltas:
                if org_id in self._versions:
                    self._versions[org_id] += 1
        self._telling.with_commit(done, error, keep_failed)
        return done, error

    def _commit(self, charges: list[Charge], done: Committed) -> None:
        if self._sql is None:
            self._sql = _Compiled(self.db.engine.dialect)
        sql = self._sql
        moment = utcnow()
        now = sql.stamp(moment)
        records = []
        entries = []
        sums = rollups.Sums()
        for charge in charges:
            # A staged record keeps the moment its call was answered (a datetime from Redis, epoch
            # seconds from a spool); its legs share it, so that a period's statement and its usage agree.
            created = charge.record.get("created_at")
            if created is None:
                created, stamp = moment, now
            else:
                if not isinstance(created, dt.datetime):
                    created = dt.datetime.fromtimestamp(created, dt.UTC)
                stamp = sql.stamp(created)
            record = {**charge.record, "created_at": stamp}
            records.append(record)
            settlement = charge.settlement
            sums.charge(rollups.hour_of(created), record, settlement.vouchers)
            org_id = record["org_id"]
            tx_id = ledger.new_tx_id()
            legs = ledger.charge_legs(
                org_id, settlement.own, settlement.vouchers, charge.provider, record["cost"]
            )
            entries += [
                {
                    "tx_id": tx_id,
                    "kind": "charge",
                    "account": leg.account,
                    "amount": leg.amount,
                    "org_id": leg.org_id,
                    "voucher_id": leg.voucher_id,
                    "request_id": record["request_id"],
                    "note": None,
                    "created_at": stamp,
                }
                for leg in legs
                if leg.amount != 0
            ]
        # Every charged wallet's version moves (even when vouchers paid it all), so that a version names
        # one state of the wallet and its vouchers. Rows go in id order: replicas committing at once
        # lock them in the same order and cannot deadlock.
        wallet_deltas = [{"org": o, "delta": d, "now": now} for o, d in sorted(done.org_deltas.items())]
        voucher_rows = [{"vid": v, "delta": d} for v, d in sorted(done.voucher_deltas.items()) if d]
        # The driver's own cursor with statements compiled once: at one call per commit, SQLAlchemy's
        # per-statement work cost several times the write itself (docs/benchmarks.md).
        if self._connection is None:
            # The journal owns one driver connection for its whole life (used under _db_lock, by the
            # writer or by a lone call): no pool checkout per batch.
            self._connection = self.db.writer_connection()
        connection = self._connection
        try:
            if self.db.is_sqlite:
                self._execute(connection, sql, records, entries, wallet_deltas, voucher_rows, sums, done)
            elif len(records) == 1 and len(wallet_deltas) == 1 and not voucher_rows:
                self._execute_one(connection, sql, records[0], entries, wallet_deltas[0], sums, done)
            elif len(records) > 1:
                self._copy(connection, sql, records, entries, wallet_deltas, voucher_rows, sums, done)
            else:
                # PostgreSQL: the statements and the commit go in one pipeline, one round trip in all.
                with connection.dbapi_connection.pipeline():  # type: ignore[union-attr]
                    self._execute(connection, sql, records, entries, wallet_deltas, voucher_rows, sums, done)
        except BaseException:
            # A broken connection is dropped; the retry opens a new one.
            with contextlib.suppress(Exception):
                connection.rollback()
            connection.invalidate()
            self._connection = None
            raise

    def _execute(
        self,
        connection: PoolProxiedConnection,
        sql: _Compiled,
        records: list[dict[str, Any]],
        entries: list[dict[str, Any]],
        wallet_deltas: list[dict[str, Any]],
        voucher_rows: list[dict[str, Any]],
        sums: rollups.Sums,
        done: Committed,
    ) -> None:
        cursor = connection.cursor()
        sql.usage.execute(cursor, records)
        if entries:
            sql.ledger.execute(cursor, entries)
        self._finish(connection, cursor, sql, wallet_deltas, voucher_rows, sums, done)

    def _copy(
        self,
        connection: PoolProxiedConnection,
        sql: _Compiled,
        records: list[dict[str, Any]],
        entries: list[dict[str, Any]],
        wallet_deltas: list[dict[str, Any]],
        voucher_rows: list[dict[str, Any]],
        sums: rollups.Sums,
        done: Committed,
    ) -> None:
        """PostgreSQL, a group of charges: the usage records and ledger legs by COPY, then the wallet and
        voucher changes, in one transaction. In pipeline mode each row was a statement of its own, and
        the driver's Python work for it (~93 µs a charge, on the thread that shares the interpreter
        with the event loop) cost more than the database's; COPY formats the rows in C (~39 µs)."""
        usage = [tuple(row[name] for name in sql.usage_columns) for row in sql.usage.rows(records)[1]]
        legs = [tuple(row[name] for name in sql.ledger_columns) for row in sql.ledger.rows(entries)[1]]
        cursor = connection.cursor()
        with cursor.copy(sql.copy_usage) as copy:
            for row in usage:
                copy.write_row(row)
        if legs:
            with cursor.copy(sql.copy_ledger) as copy:
                for row in legs:
                    copy.write_row(row)
        self._finish(connection, cursor, sql, wallet_deltas, voucher_rows, sums, done)

    def _finish(
        self,
        connection: PoolProxiedConnection,
        cursor: Any,
        sql: _Compiled,
        wallet_deltas: list[dict[str, Any]],
        voucher_rows: list[dict[str, Any]],
        sums: rollups.Sums,
        done: Committed,
    ) -> None:
        """After a group's rows: the wallet and voucher changes, the rollups' sums, the snapshots a
        shared book wants, and the commit. The rollups come last: their rows are the ones other
        writers share (a platform share, an hour of a busy key), so they are held the shortest."""
        if wallet_deltas:
            sql.wallet.execute(cursor, wallet_deltas)
        if voucher_rows:
            sql.voucher.execute(cursor, voucher_rows)
            now = wallet_deltas[0]["now"] if wallet_deltas else sql.stamp(utcnow())
            fixes = [{"vid": row["vid"], "tx": ledger.new_tx_id(), "now": now} for row in voucher_rows]
            sql.revoked_issuer.execute(cursor, fixes)
            sql.revoked_voucher.execute(cursor, fixes)
            sql.revoked_zero.execute(cursor, [{"vid": row["vid"]} for row in voucher_rows])
        rollups.upsert(cursor, self.db.engine.dialect.paramstyle, sums, sql.stamp)
        done.snapshots = self._telling.snapshots(cursor, list(done.org_deltas))
        cursor.close()
        connection.commit()

    def _execute_one(
        self,
        connection: PoolProxiedConnection,
        sql: _Compiled,
        record: dict[str, Any],
        entries: list[dict[str, Any]],
        wallet: dict[str, Any],
        sums: rollups.Sums,
        done: Committed,
    ) -> None:
        """PostgreSQL, one charge that moves no voucher (a lone call, mostly): the usage record, its
        ledger legs and the wallet's change in one statement, committed by itself. One round trip,
        where the transaction's statements and commit took several (0.40 -> 0.24 ms here). Only the
        wallet's row is locked, so it cannot deadlock with a batch of another replica."""
        dbapi = connection.dbapi_connection
        assert dbapi is not None
        usage = sql.usage.rows([record])[1][0]
        params = {f"u_{name}": value for name, value in usage.items()}
        params |= {
            "tx": entries[0]["tx_id"] if entries else "",
            "org": wallet["org"],
            "request": record["request_id"],
            "now": wallet["now"],
            "accounts": [entry["account"] for entry in entries],
            "amounts": [entry["amount"] for entry in entries],
            "delta": wallet["delta"],
        }
        # One usage row and two activity rows (the organization's, this process's share).
        for prefix, table, rows in (
            ("h", rollups.USAGE_KEYS + rollups.USAGE_SUMS, sums.usage_rows(sql.stamp)),
            ("a", rollups.ACTIVITY_KEYS + rollups.ACTIVITY_SUMS, sums.activity_rows(sql.stamp)),
        ):
            for index, row in enumerate(rows):
                params |= {
                    f"{prefix}{index}_{column}": value for column, value in zip(table, row, strict=True)
                }
        dbapi.autocommit = True
        try:
            cursor = connection.cursor()
            cursor.execute(sql.one_charge(), params)
            done.snapshots = self._telling.snapshots(cursor, [wallet["org"]])  # after the commit
            cursor.close()
        finally:
            dbapi.autocommit = False

    # ---- keeping memory fresh ------------------------------------------------------------

    def refresh(self, org_id: str | None = None) -> None:
        """Reload the wallets (and vouchers) whose version changed since the last look, or *org_id*'s."""
        # What calls may spend: the balance less what compute jobs hold durably (and so for vouchers).
        spendable = (Wallet.balance - Wallet.standing).label("balance")
        query = select(Wallet.org_id, spendable, Wallet.version, Wallet.updated_at)
        if org_id is not None:
            query = query.where(Wallet.org_id == org_id)
        elif self._seen_until is not None:
            query = query.where(Wallet.updated_at >= self._seen_until - RELOAD_OVERLAP)
        with self._db_lock, self.db.session() as session:
            changed = [
                row
                for row in session.execute(query)
                if org_id is not None or self._versions.get(row.org_id) != row.version
            ]
            if not changed:
                return
            ids = [row.org_id for row in changed]
            vouchers: dict[str, list[VoucherState]] = defaultdict(list)
            for v in session.scalars(
                select(Voucher).where(Voucher.org_id.in_(ids), Voucher.revoked_at.is_(None))
            ):
                vouchers[v.org_id].append(
                    VoucherState(
                        id=v.id,
                        copay=v.copay,
                        remaining=v.remaining - v.standing,
                        valid_from=epoch(v.valid_from),
                        valid_to=epoch(v.valid_to),
                        providers=frozenset(v.providers) if v.providers is not None else None,
                        regions=frozenset(v.regions) if v.regions is not None else None,
                        models=frozenset(v.models) if v.models is not None else None,
                        pools=frozenset(v.pools) if v.pools is not None else None,
                        accelerators=frozenset(v.accelerators) if v.accelerators is not None else None,
                    )
                )
            # Read balances and vouchers in one transaction, then swap them in under the book's lock.
            for row in changed:
                self.book.load(row.org_id, row.version, row.balance, vouchers.get(row.org_id, []))
                self._versions[row.org_id] = row.version
                updated = row.updated_at if row.updated_at.tzinfo else row.updated_at.replace(tzinfo=dt.UTC)
                if self._seen_until is None or updated > self._seen_until:
                    self._seen_until = updated
        if self._seen_until is None:
            self._seen_until = utcnow()

    def _report_held(self) -> None:
        held = self.book.held_by_org()
        changed = {org: amount for org, amount in held.items() if self._held_reported.get(org) != amount}
        if not changed:
            return
        with self.db.session() as session:
            for org_id, amount in changed.items():
                session.execute(update(Wallet).where(Wallet.org_id == org_id).values(held=amount))
        self._held_reported.update(changed)


def _batch(charges: list[Charge]) -> Committed:
    """*charges* as one commit's changes: each organization's own balance and each voucher."""
    org_deltas: dict[str, int] = defaultdict(int)
    voucher_deltas: dict[str, int] = defaultdict(int)
    for charge in charges:
        org_deltas[charge.record["org_id"]] -= charge.settlement.own
        for voucher_id, paid in charge.settlement.vouchers:
            voucher_deltas[voucher_id] -= paid
    return Committed([charge.settlement for charge in charges], dict(org_deltas), dict(voucher_deltas))


def _resolve(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
