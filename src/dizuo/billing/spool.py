"""Usage records spooled to a local file: with one replica on SQLite (no Redis), a call's answer
completes once its record is appended to a file beside the database, and a thread moves the records
into the database in group commits.

Why: a lone call committed its record in place, a WAL write of about ten pages and three statements
on the call's path (~0.2 ms here, most of what metering added; docs/benchmarks.md). One append to a
file is a few microseconds, and it is as durable as SQLite's commit with ``synchronous=NORMAL``: the
kernel has the bytes, so a killed dizuo loses nothing, and a crash of the host may lose the last
second (the promise of ``DIZUO_DURABILITY=process``; with ``disk`` each append is flushed).

How it stays exact:

* The call's charge is applied to the in-memory wallet as a pending change before the append, and
  stays pending until its commit lands: spent money is never spendable again. A commit that fails is
  retried; a spooled charge is never given back (its call was answered).
* Each process appends to files of its own, each locked (``flock``) for as long as the process uses
  it. A file grows to :data:`SEGMENT_BYTES`, then the next one starts; a file whose every record is
  committed is deleted (the one in use is emptied).
* A process that starts, and every ``dizuo admin`` command, first takes over the files no live
  process holds (:func:`recover`): it commits the records whose request id has no usage record yet,
  then deletes the file. A crash between the commit and the deletion repeats nothing.
* A record is one ``write``; a line that a kill cut short belongs to a call that was never answered,
  and is skipped.
* A record the database refuses for what is in it (a value beyond its column, say) would stop every
  record behind it, and the start of every process: the records of a refused batch are committed
  one by one, and those refused are set aside in :data:`REFUSED` (their money given back), with the
  error, for an operator. Renamed to end in ``.spool`` once the cause is fixed, the file is taken
  over and committed like any other.

Spooling is chosen by ``DIZUO_USAGE_STAGING`` (:func:`spools`).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
from pathlib import Path
from typing import Any

import orjson

from dizuo.billing.holds import Settlement, WalletBook
from dizuo.billing.journal import MAX_BATCH, Charge, Journal
from dizuo.billing.staging import Staging
from dizuo.store import Database, ordered_id
from dizuo.store.writer import GroupWriter

__all__ = ["REFUSED", "Spool", "recover", "spool_dir", "spools"]

log = logging.getLogger("dizuo.billing")

GATHER_SECONDS = 0.05  # records gather this long before their commit
RETRY_SECONDS = 1.0
SEGMENT_BYTES = 8 << 20
SUFFIX = ".spool"
REFUSED = "refused.jsonl"  # records the database refused, beside the spool files


def spool_dir(db: Database) -> Path | None:
    """Where the spool files of a SQLite database live: a folder beside its file (``dizuo.db-spool``),
    so that they persist exactly as the database does. None for other databases and in-memory ones."""
    if not db.is_sqlite:
        return None
    path = db.engine.url.database
    if not path or path == ":memory:":
        return None
    return Path(path + "-spool")


def spools(setting: Staging, db: Database) -> bool:
    """Whether a process without Redis spools its usage records (``DIZUO_USAGE_STAGING``): *auto* when
    the database is a SQLite file and the durability asked is ``process``; *on* for a SQLite file
    whatever the durability (with ``disk`` each append is flushed to disk); *off* never."""
    if spool_dir(db) is None or setting == "off":
        return False
    return setting == "on" or db.durability == "process"


def encode(charge: Charge, error: BaseException | None = None) -> bytes:
    """One spool line: the usage record (its ``created_at`` in epoch seconds), how it was paid, and
    the provider its revenue goes to (and, set aside, why the database refused it)."""
    paid = charge.settlement
    settlement = [paid.cost, paid.own, paid.vouchers, paid.uncollected, paid.id]
    line: dict[str, Any] = {"r": charge.record, "s": settlement, "p": charge.provider}
    if error is not None:
        line["e"] = repr(error)
    return orjson.dumps(line, default=None if error is None else repr) + b"\n"


def set_aside(directory: Path, refused: list[tuple[Charge, BaseException]]) -> None:
    """Append the charges the database refused to :data:`REFUSED` in *directory* (spool lines, each
    with its error). Raises OSError when the file cannot be written."""
    path = directory / REFUSED
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        view = memoryview(b"".join(encode(charge, error) for charge, error in refused))
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    for charge, error in refused:
        log.error(
            "the database refuses the usage record %s (%r): set aside in %s",
            charge.record.get("request_id"),
            error,
            path,
        )


def decode(line: bytes) -> Charge:
    data = orjson.loads(line)
    record: dict[str, Any] = data["r"]
    cost, own, vouchers, uncollected, settlement_id = data["s"]
    paid = tuple((str(voucher_id), int(part)) for voucher_id, part in vouchers)
    settlement = Settlement(int(cost), int(own), paid, int(uncollected), record["org_id"], settlement_id)
    return Charge(record, settlement, data["p"])


class _Segment:
    """One spool file this process appends to (and holds locked)."""

    __slots__ = ("fd", "outstanding", "path", "size")

    def __init__(self, directory: Path) -> None:
        self.path = directory / f"{os.getpid()}-{ordered_id()}{SUFFIX}"
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.size = 0
        self.outstanding = 0  # records appended and not committed yet

    def delete(self) -> None:
        """Unlink, then close (and so unlock): no other process takes over a file being deleted."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self.fd)


_Queued = tuple[Charge, _Segment]


class Spool:
    """Appends usage records on the event loop; one thread commits them. See the module's docstring."""

    def __init__(self, journal: Journal, directory: Path, *, gather: float = GATHER_SECONDS) -> None:
        self.journal = journal
        self.directory = directory
        self._flush = journal.db.durability == "disk"
        self._lock = threading.Lock()  # appends and deletions of spool files
        self._segment: _Segment | None = None
        self._closed: list[_Segment] = []  # full ones with records still to commit
        # The committing thread. Records gather first: one commit for many costs the calls sharing
        # this process's interpreter far less than one commit each.
        self._writer: GroupWriter[_Queued] = GroupWriter(
            "spool", self._sink, most=MAX_BATCH, gather=gather, retry=RETRY_SECONDS, abandon=self._left
        )

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._segment = _Segment(self.directory)
        self._writer.start()

    def stop(self) -> None:
        """Commit what is spooled, then delete the files (those a failing database left stay, for the
        next start to commit)."""
        self._writer.stop()
        with self._lock:
            for segment in [*self._closed, *([self._segment] if self._segment else [])]:
                if segment.outstanding == 0:
                    segment.delete()
                else:
                    os.close(segment.fd)
            self._closed = []
            self._segment = None

    def stage(self, charge: Charge) -> None:
        """Append *charge*'s record (durable when this returns) and queue its commit. Raises OSError
        (the file then unchanged) when it cannot be written."""
        line = encode(charge)
        with self._lock:
            segment = self._segment
            if segment is None:
                raise OSError("the spool is not running")
            if segment.size >= SEGMENT_BYTES:
                segment = self._next()
            try:
                view = memoryview(line)
                while view:
                    view = view[os.write(segment.fd, view) :]
                if self._flush:
                    os.fdatasync(segment.fd)
            except OSError:
                # A partial line would spoil the next: cut the file back to where it was.
                with contextlib.suppress(OSError):
                    os.ftruncate(segment.fd, segment.size)
                raise
            segment.size += len(line)
            segment.outstanding += 1
        self._writer.put((charge, segment))

    def _next(self) -> _Segment:
        """Start a new file (under the lock); the full one is deleted once its records are committed."""
        assert self._segment is not None
        segment = _Segment(self.directory)
        self._closed.append(self._segment)
        self._segment = segment
        return segment

    # ---- the committing thread -----------------------------------------------------------

    def _sink(self, part: list[_Queued]) -> list[_Queued]:
        """Commit *part*; what is left (the database failing) is tried again."""
        apart = self.journal.commit_apart([charge for charge, _ in part])
        done = {id(charge) for charges, _ in apart.committed for charge in charges}
        error = apart.error
        if apart.refused:
            try:
                set_aside(self.directory, apart.refused)
            except OSError as exc:  # they stay spent and spooled, and are tried again
                error = error or exc
            else:
                self.journal.forget([charge for charge, _ in apart.refused], apart.refused[0][1])
                done |= {id(charge) for charge, _ in apart.refused}
        self._committed([queued for queued in part if id(queued[0]) in done])
        if error is None:
            return []
        log.error("committing spooled usage records failed (%s); retrying", error)
        return [queued for queued in part if id(queued[0]) not in done]

    def _left(self, waiting: list[_Queued]) -> None:
        log.error("%d spooled usage records stay in %s until the next start", len(waiting), self.directory)

    def _committed(self, part: list[_Queued]) -> None:
        with self._lock:
            for _, segment in part:
                segment.outstanding -= 1
            for segment in {id(s): s for _, s in part}.values():
                if segment.outstanding:
                    continue
                if segment is self._segment:
                    if segment.size:  # every record in it is committed: empty it
                        os.ftruncate(segment.fd, 0)
                        segment.size = 0
                elif segment in self._closed:
                    self._closed.remove(segment)
                    segment.delete()


def recover(db: Database) -> int:
    """Commit the records of spool files that no live process holds (a process was killed, or stopped
    while the database failed), then delete the files. Returns how many records were committed."""
    directory = spool_dir(db)
    if directory is None or not directory.is_dir():
        return 0
    journal: Journal | None = None
    total = 0
    try:
        for path in sorted(directory.glob(f"*{SUFFIX}")):
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue  # taken over and deleted meanwhile
            except OSError as exc:  # another user's file (the server's): that user's processes commit it
                log.warning("cannot take over spooled usage records in %s: %s", path, exc)
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live process's
                if os.fstat(fd).st_nlink == 0:
                    continue  # deleted by whoever held it before us
                charges = _read(fd, path)
                if charges:
                    journal = journal or Journal(db, WalletBook())
                    total += _commit_new(journal, charges, directory)
                path.unlink()
                log.warning("took over %d spooled usage records from %s", len(charges), path.name)
            finally:
                os.close(fd)
    finally:
        if journal is not None:
            journal.stop()
    return total


def _read(fd: int, path: Path) -> list[Charge]:
    with os.fdopen(os.dup(fd), "rb") as file:
        data = file.read()
    charges = []
    for number, line in enumerate(data.splitlines(), 1):
        try:
            charges.append(decode(line))
        except (ValueError, KeyError, TypeError):  # a line cut short by a kill: never answered
            log.warning("skipping unreadable line %d of %s (%d bytes)", number, path.name, len(line))
    return charges


def _commit_new(journal: Journal, charges: list[Charge], directory: Path) -> int:
    """Commit those of *charges* that have no usage record yet (in parts), setting aside those the
    database refuses; how many were committed."""
    committed = 0
    for start in range(0, len(charges), MAX_BATCH):
        part = charges[start : start + MAX_BATCH]
        done_before = journal.existing([charge.record["request_id"] for charge in part])
        fresh = [charge for charge in part if charge.record["request_id"] not in done_before]
        apart = journal.commit_apart(fresh)
        if apart.refused:
            set_aside(directory, apart.refused)
        if apart.error is not None:
            raise apart.error
        committed += sum(len(landed) for landed, _ in apart.committed)
    return committed
