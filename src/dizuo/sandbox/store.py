"""The sandbox store: each dataset's rows in a DuckDB file of its own under the data directory
(``sandbox/<dataset id>-v<version>.duckdb``, one table named as the dataset), written once per load
and read-only afterwards.

Queries run on a read-only connection that cannot touch any other file (``enable_external_access``
off, the setting locked), with a memory limit, a thread count and a time limit (the query is
interrupted). A new load writes a new file; readers of the old one finish on it.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import duckdb

__all__ = [
    "FORMATS",
    "Loaded",
    "QueryFailed",
    "QueryLimits",
    "SandboxStore",
    "Store",
    "StoreError",
    "TooSlow",
    "read_table",
]

FORMATS = ("csv", "xlsx", "parquet")
SNIFF_BYTES = 1 << 20


class StoreError(ValueError):
    """A file the store cannot read as a table: what is wrong, in Chinese and English."""

    def __init__(self, zh: str, en: str) -> None:
        super().__init__(en)
        self.zh, self.en = zh, en


class QueryFailed(StoreError):
    """A query that parsed and passed the policy but failed as it ran (a value that does not cast,
    a division by zero): nothing left."""


class TooSlow(Exception):
    """The query ran past its time limit and was interrupted."""


@dataclass(frozen=True)
class QueryLimits:
    seconds: float = 10.0
    memory_mb: int = 1024
    threads: int = 2
    max_rows: int = 10_000  # rows a result may carry out


@dataclass(frozen=True)
class Loaded:
    file: str  # relative to the store's root
    columns: list[tuple[str, str]]  # (name, DuckDB type), in the file's order
    rows: int


class Store(Protocol):
    """Where the datasets' rows are kept and their queries run: DuckDB files under the data
    directory (:class:`SandboxStore`), or a schema of the platform's PostgreSQL
    (:class:`dizuo.sandbox.pgstore.PostgresStore`). A *file* names one load of one dataset's rows;
    the SQL a store runs is DuckDB's dialect, naming the dataset as its table."""

    limits: QueryLimits

    def load(self, table: str, source: Path, file_name: str, stem: str) -> Loaded: ...

    def run(
        self, file: str, sql: str, limit: int | None = None, seconds: float | None = None
    ) -> tuple[list[str], list[tuple[Any, ...]]]: ...

    def sample(self, file: str, table: str, column: str, size: int) -> list[str]: ...

    def export(self, file: str, table: str, columns: list[tuple[str, str]], target: Path) -> int: ...

    def drop(self, file: str) -> None: ...

    def files(self) -> list[str]: ...

    def forget(self, file: str) -> None: ...

    def close(self) -> None: ...


# The platform's own look at a dataset being registered (a sample of each column, for identifiers it
# hides) is not a tenant's query: it is not held to a query's time limit, which an operator may set
# far below what reading a large file takes.
SAMPLE_SECONDS = 60.0


def sample_seconds(limits: QueryLimits) -> float:
    return max(limits.seconds, SAMPLE_SECONDS)


def file_format(name: str) -> str:
    suffix = Path(name).suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise StoreError(
            f"不支持的文件类型 .{suffix}：须是 CSV、XLSX 或 Parquet",
            f"unsupported file type .{suffix}: use CSV, XLSX or Parquet",
        )
    return suffix


def _utf8_csv(source: Path, scratch: Path) -> Path:
    """*source* as UTF-8: a UTF-8 file (with or without BOM) as it is, a GB18030 one (Excel's
    Chinese CSV) transcoded into *scratch*."""
    with source.open("rb") as file:
        head = file.read(SNIFF_BYTES)
    try:
        head.decode("utf-8")
        return source
    except UnicodeDecodeError as exc:
        if len(head) == SNIFF_BYTES and exc.start >= len(head) - 3:  # a character cut at the sniff's end
            return source
    target = scratch / "utf8.csv"
    try:
        with source.open(encoding="gb18030", newline="") as src, target.open("w", encoding="utf-8") as out:
            while chunk := src.read(SNIFF_BYTES):
                out.write(chunk)
    except UnicodeDecodeError:
        raise StoreError(
            "CSV 既不是 UTF-8 也不是 GB18030 编码", "the CSV is neither UTF-8 nor GB18030"
        ) from None
    return target


def _xlsx_csv(source: Path, scratch: Path) -> Path:
    """The first sheet of an XLSX workbook as a UTF-8 CSV in *scratch* (its first row: the header)."""
    from openpyxl import load_workbook

    try:
        book = load_workbook(source, read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001  (a corrupt or non-XLSX file: openpyxl raises many kinds)
        raise StoreError(f"无法读取 XLSX 文件：{exc}", f"cannot read the XLSX file: {exc}") from None
    target = scratch / "sheet.csv"
    try:
        sheet = book.worksheets[0]
        with target.open("w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out)
            for row in sheet.iter_rows(values_only=True):
                if any(value is not None for value in row):
                    writer.writerow(["" if value is None else value for value in row])
    finally:
        book.close()
    return target


def read_table(
    connection: duckdb.DuckDBPyConnection, table: str, source: Path, file_name: str, scratch: Path
) -> tuple[list[tuple[str, str]], int]:
    """Read *source* (named *file_name*: its suffix gives the format) into the table *table* of the
    DuckDB *connection*; its columns (name, DuckDB type) and row count."""
    import duckdb

    fmt = file_format(file_name)
    if fmt == "parquet":
        reader, path = "read_parquet(?)", source
    else:
        path = _xlsx_csv(source, scratch) if fmt == "xlsx" else _utf8_csv(source, scratch)
        reader = "read_csv(?, header = true, sample_size = -1)"
    try:
        connection.execute(f'CREATE TABLE "{table}" AS SELECT * FROM {reader}', [str(path)])
        described = connection.execute(f'DESCRIBE "{table}"').fetchall()
        rows = connection.execute(f'SELECT count(*) FROM "{table}"').fetchone()
    except duckdb.Error as exc:
        raise StoreError(f"无法把文件读成表：{exc}", f"cannot read the file as a table: {exc}") from None
    return [(str(c[0]), str(c[1])) for c in described], int(rows[0]) if rows else 0


_EXPORT = """
import sys, duckdb
connection = duckdb.connect(sys.argv[1], read_only=True)
connection.execute(f"COPY ({sys.argv[2]}) TO ? (FORMAT parquet)", [sys.argv[3]])
print(connection.execute("SELECT count(*) FROM read_parquet(?)", [sys.argv[3]]).fetchone()[0])
"""


class SandboxStore:
    """The DuckDB files of the sandbox's datasets under *root*."""

    def __init__(self, root: Path, limits: QueryLimits | None = None) -> None:
        self.root = root
        self.limits = limits or QueryLimits()
        self._readers: dict[str, duckdb.DuckDBPyConnection] = {}
        self._lock = threading.Lock()

    def load(self, table: str, source: Path, file_name: str, stem: str) -> Loaded:
        """Write *source* (named *file_name*: its suffix gives the format) into a new file
        ``<stem>.duckdb`` as the table *table*; its columns and row count."""
        file_format(file_name)
        self.root.mkdir(parents=True, exist_ok=True)
        target = self.root / f"{stem}.duckdb"
        partial = target.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        with tempfile.TemporaryDirectory(dir=self.root) as scratch:
            import duckdb  # on first use: 27 MB a gateway process that never uses the sandbox does without

            writer = duckdb.connect(str(partial), config={"threads": self.limits.threads})
            try:
                described, rows = read_table(writer, table, source, file_name, Path(scratch))
                writer.execute("CHECKPOINT")
            except BaseException:
                writer.close()
                partial.unlink(missing_ok=True)
                raise
            writer.close()
        os.replace(partial, target)
        return Loaded(target.name, described, rows)

    def drop(self, file: str) -> None:
        """Remove *file*: a load refused after it was written, or rows a new load replaced."""
        self.forget(file)
        (self.root / file).unlink(missing_ok=True)

    def files(self) -> list[str]:
        """The files the store holds now."""
        return sorted(path.name for path in self.root.glob("*.duckdb"))

    def export(self, file: str, table: str, columns: list[tuple[str, str]], target: Path) -> int:
        """Write *columns* (name, type) of every row to *target* as Parquet; the rows written. The
        platform's own SQL, in a process of its own: the queries' connections in this one cannot
        write files, and DuckDB opens a file with one configuration a process."""
        listed = ", ".join('"' + name.replace('"', '""') + '"' for name, _ in columns)
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                _EXPORT,
                str(self.root / file),
                f'SELECT {listed} FROM "{table}"',
                str(target),
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=max(self.limits.seconds * 30, 600),
        )
        if done.returncode != 0:
            raise StoreError(
                f"无法导出数据：{done.stderr[-500:]}", f"cannot export the data: {done.stderr[-500:]}"
            )
        return int(done.stdout.strip() or 0)

    def sample(self, file: str, table: str, column: str, size: int) -> list[str]:
        """Up to *size* non-null values of *column*, drawn at random, as text."""
        name = column.replace('"', '""')
        _, rows = self.run(
            file,
            f'SELECT CAST("{name}" AS VARCHAR) FROM "{table}" WHERE "{name}" IS NOT NULL USING SAMPLE {size} ROWS',
            seconds=sample_seconds(self.limits),
        )
        return [str(row[0]) for row in rows]

    def reader(self, file: str) -> duckdb.DuckDBPyConnection:
        """A cursor on *file*'s read-only database (one database a file, shared by threads)."""
        import duckdb

        with self._lock:
            connection = self._readers.get(file)
            if connection is None:
                connection = duckdb.connect(
                    str(self.root / file),
                    read_only=True,
                    config={
                        "enable_external_access": False,
                        "memory_limit": f"{self.limits.memory_mb}MB",
                        "threads": self.limits.threads,
                    },
                )
                connection.execute("SET enable_progress_bar = false")
                connection.execute("SET lock_configuration = true")
                self._readers[file] = connection
            return connection.cursor()  # with its settings, locked

    def run(
        self, file: str, sql: str, limit: int | None = None, seconds: float | None = None
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run *sql* on *file* within the time limit (*seconds*, default a tenant's query's); its
        column names and at most *limit* rows."""
        with self.cursor(file, seconds) as cursor:
            result = cursor.execute(sql)
            names = [d[0] for d in result.description or []]
            rows = result.fetchmany(limit) if limit is not None else result.fetchall()
            return names, rows

    @contextmanager
    def cursor(self, file: str, seconds: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor whose statements are interrupted past the time limit (*seconds*, default a tenant's
        query's: :class:`TooSlow`)."""
        import duckdb

        cursor = self.reader(file)
        fired = threading.Event()

        def stop() -> None:
            fired.set()
            cursor.interrupt()

        timer = threading.Timer(seconds or self.limits.seconds, stop)
        timer.daemon = True
        timer.start()
        try:
            yield cursor
        except duckdb.InterruptException:
            raise TooSlow from None
        except duckdb.Error as exc:
            if fired.is_set():
                raise TooSlow from None
            raise QueryFailed(f"查询执行出错：{exc}", f"the query failed: {exc}") from None
        finally:
            timer.cancel()
            cursor.close()

    def forget(self, file: str) -> None:
        """Close the reader of a file no longer current (a dataset loaded anew)."""
        with self._lock:
            connection = self._readers.pop(file, None)
        if connection is not None:
            connection.close()

    def close(self) -> None:
        with self._lock:
            readers, self._readers = list(self._readers.values()), {}
        for connection in readers:
            connection.close()
