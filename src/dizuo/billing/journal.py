"""The journal: usage records and their ledger entries, written by one thread in group commits.

A call's answer is not completed until its record is durable (DESIGN §3.3): the gateway awaits
:meth:`Journal.record`, which resolves once the batch holding the record has committed. Batching
many calls into one transaction is what keeps this fast under load.

The same thread keeps the in-memory wallets fresh: after each batch (or every ``refresh_seconds``
when idle) it reloads the organizations whose wallet version changed (top-ups, vouchers granted or
revoked by the CLI or another replica), and it reports the money held in flight for views.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import queue
import threading
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update

from dizuo.billing import ledger
from dizuo.billing.holds import Settlement, VoucherState, WalletBook, epoch
from dizuo.billing.tables import LedgerEntry, UsageRecord, Voucher, Wallet
from dizuo.store import Database, utcnow

__all__ = ["Charge", "Journal"]

log = logging.getLogger("dizuo.billing")
RELOAD_OVERLAP = dt.timedelta(seconds=5)
MAX_BATCH = 512


_Queued = tuple["Charge", "asyncio.Future[None]", asyncio.AbstractEventLoop]


@dataclass(slots=True)
class Charge:
    """One answered call: its usage record (column values) and how it was paid."""

    record: dict[str, Any]
    settlement: Settlement
    provider: str


class Journal:
    def __init__(self, db: Database, book: WalletBook, refresh_seconds: float = 0.5) -> None:
        self.db = db
        self.book = book
        self.refresh_seconds = refresh_seconds
        self._queue: queue.SimpleQueue[_Queued | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._versions: dict[str, int] = {}
        self._seen_until: dt.datetime | None = None
        self._held_reported: dict[str, int] = {}
        # Reading the database and swapping it into memory must not interleave with a commit and
        # its pending-delta bookkeeping, or a charge would be counted twice or not at all.
        self._db_lock = threading.Lock()

    # ---- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Load every wallet, then start the writer thread."""
        self.refresh()
        self._thread = threading.Thread(target=self._run, name="dizuo-journal", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Write what is queued, then stop the writer thread."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(30)
            self._thread = None

    async def record(self, charge: Charge) -> None:
        """Queue *charge* and return once it is durable."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._queue.put((charge, future, loop))
        await future

    # ---- the writer thread ---------------------------------------------------------------

    def _run(self) -> None:
        running = True
        while running:
            batch, running = self._take()
            if batch:
                self._write(batch)
            try:
                self.refresh()
                self._report_held()
            except Exception:  # a background runner must outlive a database hiccup
                log.exception("refreshing wallets failed; keeping the ones in memory")

    def _take(self) -> tuple[list[_Queued], bool]:
        """Wait for the first queued charge, then take all that are queued (the group commit)."""
        try:
            first = self._queue.get(timeout=self.refresh_seconds)
        except queue.Empty:
            return [], True
        if first is None:
            return [], False
        batch = [first]
        while len(batch) < MAX_BATCH:
            try:
                more = self._queue.get_nowait()
            except queue.Empty:
                break
            if more is None:
                return batch, False
            batch.append(more)
        return batch, True

    def _write(self, batch: list[_Queued]) -> None:
        error: BaseException | None = None
        org_deltas: dict[str, int] = defaultdict(int)
        voucher_deltas: dict[str, int] = defaultdict(int)
        for charge, _, _ in batch:
            org_deltas[charge.record["org_id"]] -= charge.settlement.own
            for voucher_id, paid in charge.settlement.vouchers:
                voucher_deltas[voucher_id] -= paid
        with self._db_lock:
            for attempt in range(3):
                try:
                    self._commit(batch, org_deltas, voucher_deltas)
                    error = None
                    break
                except Exception as exc:  # retried, then handed to every waiting call
                    error = exc
                    log.exception("journal commit failed (attempt %d of 3)", attempt + 1)
            if error is None:
                self.book.committed(dict(org_deltas), dict(voucher_deltas))
        for _, future, loop in batch:
            loop.call_soon_threadsafe(_resolve, future, error)

    def _commit(
        self,
        batch: list[_Queued],
        org_deltas: dict[str, int],
        voucher_deltas: dict[str, int],
    ) -> None:
        now = utcnow()
        records = []
        entries = []
        for charge, _, _ in batch:
            record = {**charge.record, "created_at": now}
            records.append(record)
            org_id = record["org_id"]
            tx_id = ledger.new_tx_id()
            legs = [ledger.Leg(ledger.cash(org_id), -charge.settlement.own, org_id=org_id)]
            legs += [
                ledger.Leg(ledger.voucher(voucher_id), -paid, org_id=org_id, voucher_id=voucher_id)
                for voucher_id, paid in charge.settlement.vouchers
            ]
            legs.append(ledger.Leg(ledger.revenue(charge.provider), record["cost"], org_id=org_id))
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
                    "created_at": now,
                }
                for leg in legs
                if leg.amount != 0
            ]
        with self.db.session() as session:
            session.execute(insert(UsageRecord), records)
            if entries:
                session.execute(insert(LedgerEntry), entries)
            for org_id, delta in org_deltas.items():
                if delta:
                    session.execute(
                        update(Wallet)
                        .where(Wallet.org_id == org_id)
                        .values(balance=Wallet.balance + delta, version=Wallet.version + 1, updated_at=now)
                    )
            for voucher_id, delta in voucher_deltas.items():
                if delta:
                    session.execute(
                        update(Voucher)
                        .where(Voucher.id == voucher_id)
                        .values(remaining=Voucher.remaining + delta)
                    )

    # ---- keeping memory fresh ------------------------------------------------------------

    def refresh(self, org_id: str | None = None) -> None:
        """Reload the wallets (and vouchers) whose version changed since the last look, or *org_id*'s."""
        query = select(Wallet.org_id, Wallet.balance, Wallet.version, Wallet.updated_at)
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
                        remaining=v.remaining,
                        valid_from=epoch(v.valid_from),
                        valid_to=epoch(v.valid_to),
                        providers=frozenset(v.providers) if v.providers is not None else None,
                        regions=frozenset(v.regions) if v.regions is not None else None,
                        models=frozenset(v.models) if v.models is not None else None,
                    )
                )
            # Read balances and vouchers in one transaction, then swap them in under the book's lock.
            for row in changed:
                self.book.load(row.org_id, row.balance, vouchers.get(row.org_id, []))
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


def _resolve(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
