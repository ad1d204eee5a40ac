"""One background thread that writes what calls queue, in groups: the shape every writer of the data
plane shares (the usage journal, the spool of usage records, the guard's events and failed calls).

Calls :meth:`GroupWriter.put` and return at once; the thread waits for the first item, lets more
gather for *gather* seconds (one commit for many costs the calls sharing the interpreter far less
than one each), takes everything queued, and hands it to the writer's *sink* in groups of at most
*most*. What the sink could not write comes back to be tried again after *retry* seconds.
:meth:`GroupWriter.stop` writes what is queued, then stops; what still cannot be written then goes
to *abandon*. A *tick* runs every *every* seconds between groups (the journal's wallet refresh).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["GroupWriter"]

log = logging.getLogger("dizuo.store")
T = TypeVar("T")


class _Stop:
    """The marker :meth:`GroupWriter.stop` queues after the last item."""


_STOP = _Stop()


class GroupWriter(Generic[T]):
    """A thread that writes queued items in groups through *sink*, which returns what it could not
    write (an empty list: all of it)."""

    def __init__(
        self,
        name: str,
        sink: Callable[[list[T]], list[T]],
        *,
        most: int,
        gather: float = 0.0,
        retry: float = 1.0,
        every: float | None = None,
        tick: Callable[[], None] | None = None,
        abandon: Callable[[list[T]], None] | None = None,
    ) -> None:
        self.name = name
        self.sink = sink
        self.most = most
        self.gather = gather
        self.retry = retry
        self.every = every
        self.tick = tick
        self.abandon = abandon
        self._queue: queue.SimpleQueue[T | _Stop] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()  # cuts a gathering or a retry's wait short

    @property
    def running(self) -> bool:
        return self._thread is not None

    def empty(self) -> bool:
        """Whether nothing is queued (the thread may still be writing a group)."""
        return self._queue.empty()

    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name=f"dizuo-{self.name}", daemon=True)
        self._thread.start()

    def put(self, item: T) -> None:
        """Queue *item* (returns at once)."""
        self._queue.put(item)

    def stop(self, timeout: float = 30) -> None:
        """Write what is queued, then stop the thread."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._stopping.set()
        self._thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        waiting: list[T] = []  # taken from the queue, not written yet
        stopping = False
        due = time.monotonic() + self.every if self.every is not None else None
        while True:
            if not waiting and not stopping:
                timeout = None if due is None else max(0.0, due - time.monotonic())
                try:
                    first = self._queue.get(timeout=timeout)
                except queue.Empty:
                    first = None
                if isinstance(first, _Stop):
                    stopping = True
                elif first is not None:
                    waiting.append(first)
                    if self.gather > 0:
                        self._stopping.wait(self.gather)
            stopping = self._take(waiting) or stopping
            if waiting and not self._write(waiting):
                if stopping:
                    if self.abandon is not None:
                        self.abandon(waiting)
                    return
                self._stopping.wait(self.retry)
            if due is not None and time.monotonic() >= due:
                due = time.monotonic() + (self.every or 0.0)
                self._tick()
            if stopping and not waiting:
                return

    def _take(self, waiting: list[T]) -> bool:
        """Move what is queued into *waiting*; True once the stop marker is seen."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return False
            if isinstance(item, _Stop):
                return True
            waiting.append(item)

    def _write(self, waiting: list[T]) -> bool:
        """Write *waiting* in groups; True when none is left, else what is left stays in it."""
        while waiting:
            group = waiting[: self.most]
            try:
                rest = self.sink(group)
            except Exception:  # a bug in a sink: its group is tried again, not lost
                log.exception("the %s writer failed; retrying", self.name)
                rest = group
            waiting[: len(group)] = rest
            if rest:
                return False
        return True

    def _tick(self) -> None:
        if self.tick is None:
            return
        try:
            self.tick()
        except Exception:  # a background runner must outlive a database hiccup
            log.exception("the %s writer's periodic work failed", self.name)
