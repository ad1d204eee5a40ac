"""Usage records staged in Redis: the answer completes once its record is in Redis's append-only
file, and a drain thread on every replica moves the records into the database in group commits.

Why: with several replicas the gateway already settles each call in Redis (one script). Writing the
record there too, in the same script, makes it durable without a database commit on the call's
path (on PostgreSQL that commit was most of the +1 ms a metered call cost; docs/benchmarks.md).

How it stays exact:

* The settle script charges the wallet's ``pend`` and appends the record to the stream
  ``dizuo:journal`` (:data:`dizuo.billing.shared.STREAM`) in one atomic step: the money and its record are never apart. Staged pending
  charges never lapse (their expiry is +inf): until the record is in the database its money is
  counted as spent.
* Every replica reads the stream in one consumer group. A drain commits what it read (usage
  record, ledger legs, wallet and voucher changes, in one transaction), then drops those charges
  from ``pend`` while pushing the wallet's committed state (one script per organization), then
  acknowledges and deletes the entries. A crash between any two steps repeats the later ones.
* Entries a replica read and did not acknowledge (it died, or its commit failed) are claimed by a
  drain after ``CLAIM_IDLE_SECONDS``. A claimed entry may have been committed already: its usage
  record's key (the request id) says so, and it is not written twice.
* A record the database refuses for what is in it (a value beyond its column, say) would fail every
  commit of the entries read with it, forever: the entries of a refused batch are committed one by
  one, and those refused move to the stream :data:`REFUSED` with the error, for an operator, and
  leave ``pend`` (their calls cost nothing). Added back to ``dizuo:journal`` (fields ``p``, ``m``,
  ``r``) once the cause is fixed, an entry is committed like any other. An entry that cannot be
  read at all (a bug) is set aside there too; its money stays counted as spent.

Staging is used when ``DIZUO_USAGE_STAGING`` allows it (docs/billing.md): by default when the
durability is ``process`` and Redis says it keeps an append-only file.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
from typing import Any, Literal

import orjson
import redis

from dizuo.billing.holds import Committed, Settlement
from dizuo.billing.journal import Charge, Journal
from dizuo.billing.shared import STREAM, RedisBook
from dizuo.store import Durability, ordered_id
from dizuo.store.resp import blocking_client

__all__ = ["REFUSED", "Drain", "Staging", "decode", "stages"]

log = logging.getLogger("dizuo.billing")

GROUP = "journal"
REFUSED = STREAM + ":refused"  # entries whose record the database refused, with the error ("e")
CLAIM_IDLE_SECONDS = 10.0  # an entry read this long ago and not acknowledged is taken over
CLAIM_EVERY_SECONDS = 1.0
BATCH = 512
FORGET_AFTER_SECONDS = 3600.0
GATHER_SECONDS = 0.05


Staging = Literal["auto", "on", "off"]


def stages(setting: Staging, durability: Durability, appendonly: bool | None) -> bool:
    """Whether to stage usage records in Redis (``DIZUO_USAGE_STAGING``): *on* always; *off* never;
    *auto* when the durability asked is ``process`` and Redis keeps an append-only file, the same
    promise (a killed process loses nothing; a crashed host may lose its last second)."""
    if setting == "auto":
        return durability == "process" and appendonly is True
    return setting == "on"


def decode(fields: dict[bytes, bytes]) -> Charge:
    """One stream entry (written by the settle script) as the journal's :class:`Charge`."""
    record: dict[str, Any] = orjson.loads(fields[b"r"])
    paid = fields[b"m"].decode().split(",")  # own, then voucher id, part, … (the pend record)
    own = int(paid[0])
    vouchers = tuple((paid[i], int(paid[i + 1])) for i in range(1, len(paid) - 1, 2))
    cost = int(record.pop("charge"))
    voucher_total = sum(part for _, part in vouchers)
    settlement = Settlement(
        cost, own, vouchers, cost - own - voucher_total, record["org_id"], fields[b"p"].decode()
    )
    record |= {
        "cost": own + voucher_total,
        "voucher_part": voucher_total,
        "own_part": own,
        "uncollected": settlement.uncollected,
        "created_at": dt.datetime.fromtimestamp(record["created_at"], dt.UTC),
    }
    return Charge(record, settlement, record["provider"])


class Drain:
    """Moves staged usage records from Redis into the database: one thread per replica, one consumer
    of the group each. See the module's docstring."""

    def __init__(self, journal: Journal, book: RedisBook, *, claim_idle: float = CLAIM_IDLE_SECONDS) -> None:
        self.journal = journal
        self.book = book
        self.claim_idle_ms = int(claim_idle * 1000)
        self.name = f"{socket.gethostname()}-{os.getpid()}-{ordered_id()[-6:]}"
        self._redis = blocking_client(book.url)  # its own: XREADGROUP blocks it
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.join_group()
        self._thread = threading.Thread(target=self._run, name="dizuo-drain", daemon=True)
        self._thread.start()

    def join_group(self) -> None:
        """Create the stream's consumer group unless a replica did already."""
        try:
            # From the stream's start: entries staged before any drain existed are moved too.
            self._redis.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def stop(self) -> None:
        """Move what this replica has staged and read, then stop (what is left is claimed by others)."""
        if self._thread is not None:
            self._stopping.set()
            self._thread.join(30)
            self._thread = None
        self._redis.close()

    def _run(self) -> None:
        claim_due = tidy_due = 0.0
        while not self._stopping.is_set():
            try:
                if time.monotonic() >= claim_due:
                    claim_due = time.monotonic() + CLAIM_EVERY_SECONDS
                    self.claim()
                if time.monotonic() >= tidy_due:
                    tidy_due = time.monotonic() + FORGET_AFTER_SECONDS / 10
                    self.forget_gone_consumers()
                if self.read(block_ms=250):
                    # Let records gather: one commit (and its Redis round trips) for many of them
                    # costs the calls sharing this process's interpreter far less than one each.
                    self._stopping.wait(GATHER_SECONDS)
            except Exception:  # Redis or the database is away: wait, then go on
                log.exception("moving staged usage records into the database failed; retrying")
                self._stopping.wait(1.0)
        try:
            self.read(block_ms=None)
        except Exception:
            log.exception("moving staged usage records at shutdown failed; another replica will")

    def read(self, block_ms: int | None) -> int:
        """Move new entries (waiting up to *block_ms* for the first); returns how many were read."""
        reply: Any = self._redis.xreadgroup(GROUP, self.name, {STREAM: ">"}, count=BATCH, block=block_ms)
        entries = reply[0][1] if reply else []
        if entries:
            self._move(entries, claimed=False)
        return len(entries)

    def claim(self) -> int:
        """Take over and move the entries read over ``claim_idle`` ago and not acknowledged."""
        start: Any = "0-0"
        taken = 0
        while True:
            reply: Any = self._redis.xautoclaim(
                STREAM, GROUP, self.name, self.claim_idle_ms, start_id=start, count=BATCH
            )
            start, entries = reply[0], [(i, f) for i, f in reply[1] if f]
            if entries:
                taken += len(entries)
                self._move(entries, claimed=True)
            if start in (b"0-0", "0-0"):
                return taken

    def forget_gone_consumers(self) -> None:
        """Remove the group's consumers that hold nothing and were idle for an hour: every replica
        that ever started left one (its name has the process id)."""
        for consumer in self._redis.xinfo_consumers(STREAM, GROUP):
            name = consumer["name"]
            if (
                name != self.name.encode()
                and consumer["pending"] == 0
                and consumer["idle"] > FORGET_AFTER_SECONDS * 1000
            ):
                self._redis.xgroup_delconsumer(STREAM, GROUP, name)

    def _move(self, entries: list[tuple[bytes, dict[bytes, bytes]]], *, claimed: bool) -> None:
        read: list[tuple[bytes, dict[bytes, bytes], Charge]] = []
        unreadable: list[tuple[bytes, dict[bytes, bytes], str]] = []  # (entry, fields, why)
        for entry_id, fields in entries:
            try:
                read.append((entry_id, fields, decode(fields)))
            except Exception as exc:  # a bug: set aside, its money still counted as spent (in pend)
                log.exception("staged usage record %s cannot be read: set aside in %s", entry_id, REFUSED)
                unreadable.append((entry_id, fields, f"cannot be read: {exc!r}"))
        charges = [charge for _, _, charge in read]
        # A claimed entry may have been committed by a drain that died before acknowledging it.
        done_before = self.journal.existing([c.record["request_id"] for c in charges]) if claimed else set()
        fresh = [c for c in charges if c.record["request_id"] not in done_before]
        apart = self.journal.commit_apart(fresh)
        for _, done in apart.committed:
            self.book.committed_now(done)
        refused = {id(charge): error for charge, error in apart.refused}
        aside = unreadable + [
            (entry_id, fields, repr(refused[id(c)])) for entry_id, fields, c in read if id(c) in refused
        ]
        if aside:
            with self._redis.pipeline(transaction=False) as pipe:
                for _, fields, why in aside:
                    kept: dict[Any, Any] = {**fields, b"e": why.encode()}
                    pipe.xadd(REFUSED, kept)
                pipe.execute()
        for charge, error in apart.refused:
            log.error(
                "the database refuses the usage record %s (%r): set aside in the Redis stream %s",
                charge.record["request_id"],
                error,
                REFUSED,
            )
        # Seen ones (committed before) and refused ones leave pend too; the rest (the database went
        # away meanwhile) are left unacknowledged: claimed and tried again after claim_idle.
        waiting = {id(charge) for charge in apart.rest}
        settled = [c for c in charges if c.record["request_id"] in done_before or id(c) in refused]
        if settled:
            self.book.committed_now(Committed([c.settlement for c in settled], {}, {}))
        ids = [entry_id for entry_id, _, charge in read if id(charge) not in waiting]
        ids += [entry_id for entry_id, _, _ in unreadable]
        if not ids:
            return
        with self._redis.pipeline(transaction=False) as pipe:
            pipe.xack(STREAM, GROUP, *ids)
            pipe.xdel(STREAM, *ids)
            pipe.execute()
