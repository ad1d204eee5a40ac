"""The sandbox store on PostgreSQL: each load of a dataset's rows is a table of its own in a schema
the platform owns (``dizuo_sandbox``, table ``<dataset id>-v<version>``), in the platform's own
database, so that every replica reads the same rows without a shared volume.

A file is read as the DuckDB store reads it (the same formats, encodings and column types), then
copied in with ``COPY``. A query arrives in DuckDB's dialect (what the policy checked) and is
translated by sqlglot, its one table pointed at the load's table. It runs in a read-only
transaction with ``statement_timeout`` (the time limit: 400 ``sandbox_query_timeout``) and
``work_mem`` (the memory limit, per sort or hash), under a role that may read the sandbox's schema and
nothing else (``dizuo_sandbox_reader``, made on first use where the platform's database user may make
roles; where it may not, the platform's own role runs them, and the query policy is the only wall:
the log says so once).
"""

from __future__ import annotations

import logging
import re
import tempfile
import threading
from pathlib import Path
from typing import Any

from dizuo.sandbox.store import (
    Loaded,
    QueryFailed,
    QueryLimits,
    StoreError,
    TooSlow,
    file_format,
    read_table,
    sample_seconds,
)
from dizuo.store import Database

__all__ = ["READER", "SCHEMA", "PostgresStore", "pg_type"]

log = logging.getLogger(__name__)

SCHEMA = "dizuo_sandbox"
READER = "dizuo_sandbox_reader"
COPY_CHUNK = 1 << 20
_TYPES = {
    "VARCHAR": "text",
    "BOOLEAN": "boolean",
    "TINYINT": "smallint",
    "SMALLINT": "smallint",
    "INTEGER": "integer",
    "BIGINT": "bigint",
    "UTINYINT": "smallint",
    "USMALLINT": "integer",
    "UINTEGER": "bigint",
    "UBIGINT": "numeric(20)",
    "HUGEINT": "numeric(39)",
    "FLOAT": "real",
    "DOUBLE": "double precision",
    "DATE": "date",
    "TIME": "time",
    "TIMESTAMP": "timestamp",
    "TIMESTAMP WITH TIME ZONE": "timestamptz",
    "INTERVAL": "interval",
    "UUID": "uuid",
}
_DECIMAL = re.compile(r"^DECIMAL\((\d+),\s*(\d+)\)$")


def pg_type(duck: str) -> str | None:
    """PostgreSQL's type for a DuckDB column type; None: kept as text."""
    found = _TYPES.get(duck)
    if found is not None:
        return found
    decimal = _DECIMAL.match(duck)
    return f"numeric({decimal[1]},{decimal[2]})" if decimal else None


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class PostgresStore:
    """The datasets' rows as tables of the schema ``dizuo_sandbox`` in *db* (PostgreSQL)."""

    def __init__(self, db: Database, limits: QueryLimits | None = None, schema: str = SCHEMA) -> None:
        if db.is_sqlite:
            raise ValueError("the PostgreSQL sandbox store needs a PostgreSQL database")
        self.db = db
        self.limits = limits or QueryLimits()
        self.schema = schema
        self._reader: bool | None = None  # whether queries run as READER (None: not yet known)
        self._lock = threading.Lock()

    # ---- loading ---------------------------------------------------------------------------

    def load(self, table: str, source: Path, file_name: str, stem: str) -> Loaded:
        """Read *source* into a new table *stem* of the schema; its columns and row count."""
        file_format(file_name)
        import duckdb
        import psycopg

        with tempfile.TemporaryDirectory() as scratch:
            reader = duckdb.connect(config={"threads": self.limits.threads})
            try:
                columns, rows = read_table(reader, table, source, file_name, Path(scratch))
                as_text = [
                    _ident(name) if pg_type(kind) else f"CAST({_ident(name)} AS VARCHAR) AS {_ident(name)}"
                    for name, kind in columns
                ]
                csv = Path(scratch) / "rows.csv"
                reader.execute(
                    f"COPY (SELECT {', '.join(as_text)} FROM {_ident(table)}) TO ? (FORMAT csv, HEADER false)",
                    [str(csv)],
                )
            except duckdb.Error as exc:
                raise StoreError(
                    f"无法把文件读成表：{exc}", f"cannot read the file as a table: {exc}"
                ) from None
            finally:
                reader.close()
            definition = ", ".join(f"{_ident(name)} {pg_type(kind) or 'text'}" for name, kind in columns)
            target = f"{_ident(self.schema)}.{_ident(stem)}"
            connection = self.db.engine.raw_connection()
            try:
                cursor = connection.cursor()
                cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {_ident(self.schema)}")
                cursor.execute(f"DROP TABLE IF EXISTS {target}")
                cursor.execute(f"CREATE TABLE {target} ({definition})")
                driver = connection.driver_connection
                assert driver is not None
                with (
                    driver.cursor() as raw,
                    raw.copy(f"COPY {target} FROM STDIN (FORMAT csv)") as copy,
                    csv.open("rb") as file,
                ):
                    while chunk := file.read(COPY_CHUNK):
                        copy.write(chunk)
                cursor.execute(f"ANALYZE {target}")
                connection.commit()
            except psycopg.Error as exc:
                connection.rollback()
                raise StoreError(
                    f"无法把文件写入沙盒库：{exc}",
                    f"cannot write the file into the sandbox's database: {exc}",
                ) from None
            finally:
                connection.close()
        self._share(stem)
        return Loaded(stem, columns, rows)

    def _share(self, stem: str) -> None:
        """Let the reader role read the new table (where there is one)."""
        if not self._reads_as_reader():
            return
        self._execute(f"GRANT SELECT ON {_ident(self.schema)}.{_ident(stem)} TO {READER}")

    def _reads_as_reader(self) -> bool:
        """Whether queries run as the reader role: made (once per cluster) and granted the schema
        here when the platform's database user may; otherwise False, said once in the log."""
        with self._lock:
            if self._reader is None:
                self._reader = self._set_up_reader()
            return self._reader

    def _set_up_reader(self) -> bool:
        failure: Exception | None = None
        for _ in range(2):  # a second try: another replica may have made the role meanwhile
            connection = self.db.engine.raw_connection()
            try:
                cursor = connection.cursor()
                cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {_ident(self.schema)}")
                cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (READER,))
                if cursor.fetchone() is None:
                    cursor.execute(f"CREATE ROLE {READER} NOLOGIN")
                cursor.execute(f"GRANT {READER} TO CURRENT_USER")
                cursor.execute(f"GRANT USAGE ON SCHEMA {_ident(self.schema)} TO {READER}")
                cursor.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {_ident(self.schema)} TO {READER}")
                connection.commit()
                return True
            except Exception as exc:  # noqa: BLE001  (no CREATEROLE, or a race with another replica)
                connection.rollback()
                failure = exc
            finally:
                connection.close()
        log.warning(
            "sandbox queries run as the platform's own database role (%s); the query policy is their only "
            "wall. Let the role create roles, or create %s, grant it to this role and let it read the schema %s.",
            failure,
            READER,
            self.schema,
        )
        return False

    # ---- queries ---------------------------------------------------------------------------

    def translated(self, file: str, sql: str) -> str:
        """*sql* (DuckDB's dialect, one table) in PostgreSQL's, on the load's table."""
        import sqlglot
        from sqlglot import exp

        tree = sqlglot.parse_one(sql, dialect="duckdb")

        def point(node: exp.Expr) -> Any:
            if isinstance(node, exp.Table):
                if not isinstance(node.this, exp.Identifier):  # a table function: read_csv(…)
                    raise QueryFailed(
                        f"只能查询数据集本身，不能用 {node.this.sql()}",
                        f"only the dataset itself may be read, not {node.this.sql()}",
                    )
                return exp.Table(
                    this=exp.to_identifier(file, quoted=True),
                    db=exp.to_identifier(self.schema, quoted=True),
                    alias=node.args.get("alias"),
                )
            return node

        return str(tree.transform(point).sql(dialect="postgres"))

    def run(
        self, file: str, sql: str, limit: int | None = None, seconds: float | None = None
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run *sql* on the load *file* within the limits (its time limit *seconds*, default a tenant's
        query's); its column names and at most *limit* rows."""
        import psycopg

        text = self.translated(file, sql)
        as_reader = self._reads_as_reader()
        connection = self.db.engine.raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute("SET TRANSACTION READ ONLY")
            cursor.execute(f"SET LOCAL statement_timeout = {int((seconds or self.limits.seconds) * 1000)}")
            cursor.execute(f"SET LOCAL work_mem = '{max(self.limits.memory_mb // 4, 4)}MB'")
            cursor.execute("SET LOCAL search_path = pg_catalog")
            if as_reader:
                cursor.execute(f"SET LOCAL ROLE {READER}")
            try:
                cursor.execute(text)
            except psycopg.errors.QueryCanceled:
                raise TooSlow from None
            except psycopg.Error as exc:
                raise QueryFailed(f"查询执行出错：{exc}", f"the query failed: {exc}") from None
            names = [d[0] for d in cursor.description or []]
            rows = cursor.fetchmany(limit) if limit is not None else cursor.fetchall()
            return names, [tuple(row) for row in rows]
        finally:
            connection.rollback()
            connection.close()

    def sample(self, file: str, table: str, column: str, size: int) -> list[str]:
        """Up to *size* non-null values of *column*, drawn at random, as text."""
        _, rows = self.run(
            file,
            f"SELECT CAST({_ident(column)} AS VARCHAR) FROM {_ident(table)} WHERE {_ident(column)} IS NOT NULL "
            f"ORDER BY random() LIMIT {int(size)}",
            seconds=sample_seconds(self.limits),
        )
        return [str(row[0]) for row in rows]

    def export(self, file: str, table: str, columns: list[tuple[str, str]], target: Path) -> int:
        """Write *columns* (name, DuckDB type) of every row to *target* as Parquet, through CSV and
        DuckDB (the column types as registered); the rows written."""
        import duckdb

        listed = ", ".join(_ident(name) for name, _ in columns)
        with tempfile.TemporaryDirectory() as scratch:
            csv = Path(scratch) / "rows.csv"
            connection = self.db.engine.raw_connection()
            try:
                driver = connection.driver_connection
                assert driver is not None
                query = (
                    f"COPY (SELECT {listed} FROM {_ident(self.schema)}.{_ident(file)}) TO STDOUT (FORMAT csv)"
                )
                with driver.cursor() as raw, raw.copy(query) as copy, csv.open("wb") as out:
                    for chunk in copy:
                        out.write(chunk)
                connection.rollback()
            finally:
                connection.close()
            types = ", ".join(
                "'{}': '{}'".format(name.replace("'", "''"), kind if pg_type(kind) else "VARCHAR")
                for name, kind in columns
            )
            reader = duckdb.connect(config={"threads": self.limits.threads})
            try:
                reader.execute(
                    f"COPY (SELECT * FROM read_csv(?, header = false, columns = {{{types}}})) TO ? (FORMAT parquet)",
                    [str(csv), str(target)],
                )
                counted = reader.execute("SELECT count(*) FROM read_parquet(?)", [str(target)]).fetchone()
            finally:
                reader.close()
        return int(counted[0]) if counted else 0

    # ---- housekeeping ----------------------------------------------------------------------

    def drop(self, file: str) -> None:
        self._execute(f"DROP TABLE IF EXISTS {_ident(self.schema)}.{_ident(file)}")

    def _execute(self, statement: str) -> None:
        """Run one statement of the platform's own and commit it."""
        connection = self.db.engine.raw_connection()
        try:
            connection.cursor().execute(statement)
            connection.commit()
        finally:
            connection.close()

    def files(self) -> list[str]:
        connection = self.db.engine.raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY 1", (self.schema,))
            found = [str(row[0]) for row in cursor.fetchall()]
            connection.rollback()
            return found
        finally:
            connection.close()

    def forget(self, file: str) -> None:
        return None  # nothing is kept open for a table

    def close(self) -> None:
        return None
