"""Writing batch lines' answers in group commits: one writer thread, one transaction for every
answer that arrived while the previous one committed.

The gateway writes a line's answer before the line's usage record, and waits until it is durable.
Each in a transaction of its own, the answers of a batch's concurrent lines queued for SQLite's one
writer one after another (measured: a batch at 0.15× the throughput of the same calls sent directly);
grouped, a burst of lines costs one commit. Each call learns whether its answer was the one written:
a line answered meanwhile by a call at another replica keeps that first answer.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from typing import Any

from sqlalchemy import bindparam, select, tuple_, update
from sqlalchemy.exc import OperationalError

from dizuo.batches.tables import BatchLine
from dizuo.store import Database, utcnow

__all__ = ["AnswerWriter"]

log = logging.getLogger("dizuo.batches")
MAX_GROUP = 512
GATHER = 0.001  # seconds the writer waits after the first answer of a group for others to join it
TRIES = 3  # writes of a group when the database is busy past its timeout (another writer held it)

_Item = tuple[dict[str, Any], "asyncio.Future[bool]", asyncio.AbstractEventLoop]

_UPDATE = (
    update(BatchLine)
    .where(
        BatchLine.batch_id == bindparam("b_batch"),
        BatchLine.line == bindparam("b_line"),
        BatchLine.status_code.is_(None),
    )
    .values(
        status_code=bindparam("b_status"),
        body=bindparam("b_body"),
        request_id=bindparam("b_request"),
        answered_at=bindparam("b_at"),
    )
)


class AnswerWriter:
    """Writes ``(batch, line) → answer`` unless the line has one, in group commits."""

    def __init__(self, db: Database, lock: threading.Lock | None = None) -> None:
        self.db = db
        self.lock = lock or threading.Lock()  # the journal's: one writer at a time, in process
        self._queue: queue.Queue[_Item | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    async def write(self, batch_id: str, line: int, status: int, body: bytes, request_id: str | None) -> bool:
        """Return once the answer is committed: True, or False when the line had one already."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[bool] = loop.create_future()
        row = self.row(batch_id, line, status, body, request_id)
        self._start()
        self._queue.put((row, done, loop))
        return await done

    @staticmethod
    def row(batch_id: str, line: int, status: int, body: bytes, request_id: str | None) -> dict[str, Any]:
        """A line's answer as the writer takes it."""
        return {
            "b_batch": batch_id,
            "b_line": line,
            "b_status": status,
            "b_body": body,
            "b_request": request_id,
        }

    def write_now(self, rows: list[dict[str, Any]]) -> list[bool]:
        """Write *rows* (made by :meth:`row`) in one transaction on this thread, beside the writer's:
        which of them were written."""
        return self._write(rows)

    def _start(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="dizuo-batch-answers", daemon=True)
                self._thread.start()

    def close(self) -> None:
        """Stop the writer once what is queued is written."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            # Let the lines in flight join this group. Woken at each first answer, the writer took the
            # interpreter from the event loop for groups of one or two and woke the loop for each:
            # 1 ms here took a batch of 10,000 lines from 0.78x to 0.84x the direct calls'
            # throughput (4 ms: 0.69x, the lines then wait on the writer).
            time.sleep(GATHER)
            group = [first]
            stop = False
            while len(group) < MAX_GROUP:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                group.append(item)
            rows = [row for row, _, _ in group]
            written: list[bool] = []
            error: BaseException | None = None
            try:
                written = self._write(rows)
            except Exception as exc:  # each waiting call gets the error: its usage is not written
                log.exception("writing %d batch answers failed", len(group))
                error = exc
            by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[bool], bool]]] = {}
            for n, (_, future, loop) in enumerate(group):
                by_loop.setdefault(loop, []).append((future, bool(written) and written[n]))
            for loop, futures in by_loop.items():  # one wake-up of each loop for the whole group
                loop.call_soon_threadsafe(_resolve, futures, error)
            if stop:
                return

    def _write(self, rows: list[dict[str, Any]]) -> list[bool]:
        """One transaction for *rows*; which of them were written (a line with an answer keeps it)."""
        for attempt in range(TRIES):
            try:
                with self.lock:
                    return self._transaction(rows)
            except OperationalError:
                if attempt == TRIES - 1:
                    raise
                log.warning("the database was busy writing batch answers; trying again")
                time.sleep(0.2 * (attempt + 1))
        raise AssertionError("unreachable")

    def _transaction(self, rows: list[dict[str, Any]]) -> list[bool]:
        """Write *rows* in one transaction (the caller holds the lock), answered at one moment."""
        at = utcnow()
        with self.db.engine.begin() as connection:
            changed = connection.execute(_UPDATE, [{**row, "b_at": at} for row in rows]).rowcount
            if changed == len(rows):
                return [True] * len(rows)
            # Some lines had answers: those whose stored request is this row's were written.
            keys = [(row["b_batch"], row["b_line"]) for row in rows]
            stored = dict(
                ((batch, line), request)
                for batch, line, request in connection.execute(
                    select(BatchLine.batch_id, BatchLine.line, BatchLine.request_id).where(
                        tuple_(BatchLine.batch_id, BatchLine.line).in_(keys)
                    )
                )
            )
            return [stored.get(key) == row["b_request"] for key, row in zip(keys, rows, strict=True)]


def _resolve(futures: list[tuple[asyncio.Future[bool], bool]], error: BaseException | None) -> None:
    for future, written in futures:
        if future.done():
            continue
        if error is None:
            future.set_result(written)
        else:
            future.set_exception(error)
