"""Reading untrusted documents in a child process with CPU-time and memory limits.

A document is the one input a tenant controls that makes the server do work out of proportion to
its size: a 1.5 KB XLSX that declares 65 million cells, a 36 KB DOCX with a cell spanning a million
columns, a PDF whose streams loop. The parsers cap what they read (:mod:`dizuo.kb.formats`), and this
module is the second wall: each document is parsed in a child process forked from a small server
process (multiprocessing's *forkserver*, which holds only the parsers), under ``RLIMIT_CPU`` and
``RLIMIT_AS``. A parse that runs past its CPU time is killed by the kernel; one that asks for more
memory gets ``MemoryError`` (or is killed); either way it is refused with 413 ``document_too_large``
naming the limit, the server's event loop never waited on it, and the child's memory goes back to
the operating system when it exits. At most ``concurrency`` documents are parsed at once; the rest
wait their turn (in a thread, never on the event loop).

Forking a child and passing the document and its blocks adds 5–14 ms a document here (bench/parsing.py).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.machinery
import multiprocessing
import resource
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from dizuo.kb.formats import DEFAULT_MAX_BYTES, DocumentError, DocumentTooLarge, parse_document
from dizuo.kb.parsing import Block

__all__ = ["DocumentReader", "IsolatedParser", "Limits", "in_process"]

# A function from (file name, contents) to blocks: what the knowledge bases and the inspection
# auditor are given, so that a test or the CLI may read in process and the server reads isolated.
DocumentReader = Callable[[str, bytes], list[Block]]

# The parsers are imported once, in the forkserver, not in every child (each child importing
# python-docx itself cost 30 ms more a document).
_PRELOAD = ["dizuo.kb.isolation", "docx", "openpyxl", "pypdf", "lxml.html"]
_start_lock = threading.Lock()


@functools.cache
def _forkserver() -> Any:
    """The forkserver context, its server preloading only this module (and the parsers)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_PRELOAD)
    return context


@contextlib.contextmanager
def _main_not_imported() -> Iterator[None]:
    """While a child starts, let multiprocessing believe ``__main__`` need not be imported in it.

    Every child otherwise imports the parent's main script first, to find functions defined there
    (none are: the child runs :func:`_child`): under the ``dizuo`` command that is the whole CLI, 0.5 s
    a document. multiprocessing skips the import when ``__main__``'s spec is named ``__main__``."""
    main = sys.modules["__main__"]
    with _start_lock:
        saved = getattr(main, "__spec__", None)
        main.__spec__ = importlib.machinery.ModuleSpec("__main__", None)
        try:
            yield
        finally:
            main.__spec__ = saved


@dataclass(frozen=True)
class Limits:
    """What one document may cost to read."""

    max_bytes: int = DEFAULT_MAX_BYTES
    cpu_seconds: int = 30
    memory_mb: int = 1024


def in_process(max_bytes: int = DEFAULT_MAX_BYTES) -> DocumentReader:
    """A reader that parses in this process (the CLI's own files; tests of the parsers)."""

    def read(name: str, data: bytes) -> list[Block]:
        return parse_document(name, data, max_bytes)

    return read


def _reached(limit: int) -> bool:
    """Whether this process's address space came within 5 % of *limit* (its peak, VmPeak)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmPeak:"):
                    return int(line.split()[1]) * 1024 >= limit * 0.95
    except OSError:
        pass
    return False


def _read(name: str, data: bytes, limits: Limits) -> tuple[Any, ...]:
    """Parse under the limits; ("ok", blocks), ("memory",) or ("error", kind, code, params)."""
    memory = limits.memory_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    used = resource.getrusage(resource.RUSAGE_SELF)
    spent = int(used.ru_utime + used.ru_stime)
    # The soft limit sends SIGXCPU (which kills); the hard limit a second later sends SIGKILL.
    resource.setrlimit(resource.RLIMIT_CPU, (spent + limits.cpu_seconds, spent + limits.cpu_seconds + 1))
    try:
        return ("ok", parse_document(name, data, limits.max_bytes))
    except DocumentTooLarge as exc:
        return ("error", "DocumentTooLarge", exc.code, dict(exc.params))
    except Exception as exc:  # noqa: BLE001 - a parser failing on hostile input must still answer 4xx
        # Out of memory shows as MemoryError, or as whatever a library makes of a failed allocation
        # (libxml2: "XMLSyntaxError: unknown error"): the address space's peak tells which it was.
        if isinstance(exc, MemoryError) or _reached(memory):
            return ("memory",)
        if isinstance(exc, DocumentError):
            return ("error", "DocumentError", exc.code, dict(exc.params))
        reason = f"{type(exc).__name__}: {exc}"[:300]
        return ("error", "DocumentError", "document_unreadable", {"name": name, "reason": reason})


def _child(conn: Connection, name: str, data: bytes, limits: Limits) -> None:
    """The child's whole life: read the document under the limits and send the answer."""
    try:
        conn.send(_read(name, data, limits))
    except MemoryError:
        conn.send(("memory",))
    finally:
        conn.close()


class IsolatedParser:
    """Parse documents in child processes under :class:`Limits`, *concurrency* at a time."""

    def __init__(self, limits: Limits = Limits(), concurrency: int = 2) -> None:
        self.limits = limits
        self._slots = threading.BoundedSemaphore(concurrency)

    @property
    def max_bytes(self) -> int:
        return self.limits.max_bytes

    def __call__(self, name: str, data: bytes) -> list[Block]:
        """Return the blocks of *name*; blocks the calling thread (run it in one, not on the loop)."""
        if len(data) > self.limits.max_bytes:  # refused before a child is started for it
            raise DocumentTooLarge.size(name, len(data), self.limits.max_bytes)
        with self._slots:
            return self._parse(name, data)

    def _parse(self, name: str, data: bytes) -> list[Block]:
        context = _forkserver()
        receiver, sender = context.Pipe(duplex=False)
        child = context.Process(target=_child, args=(sender, name, data, self.limits), daemon=True)
        with _main_not_imported():
            child.start()
        sender.close()
        # Wall-clock backstop for a child that sleeps or blocks instead of spending CPU.
        deadline = 2 * self.limits.cpu_seconds + 5
        try:
            if not receiver.poll(deadline):
                raise DocumentTooLarge.parse_time(name, self.limits.cpu_seconds)
            message = receiver.recv()
        except (EOFError, OSError):
            child.join(5)
            raise self._died(name, child.exitcode) from None
        finally:
            receiver.close()
            if child.is_alive():
                child.kill()
            child.join(5)
            child.close()
        return self._answer(name, message)

    def _died(self, name: str, exitcode: int | None) -> DocumentError:
        if exitcode in (-signal.SIGXCPU, -signal.SIGKILL):
            return DocumentTooLarge.parse_time(name, self.limits.cpu_seconds)
        return DocumentTooLarge.parse_memory(name, self.limits.memory_mb)

    def _answer(self, name: str, message: tuple[Any, ...]) -> list[Block]:
        if message[0] == "ok":
            blocks: list[Block] = message[1]
            return blocks
        if message[0] == "memory":
            raise DocumentTooLarge.parse_memory(name, self.limits.memory_mb)
        _, kind, code, params = message
        error = DocumentTooLarge if kind == "DocumentTooLarge" else DocumentError
        raise error(code, **params)
