"""Engines, sessions and schema migration for SQLite (embedded) and PostgreSQL (production)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import DateTime, MetaData, create_engine, event, exc, text
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import PoolProxiedConnection

__all__ = ["Base", "Database", "Durability", "stamper", "utcnow"]

MIGRATIONS = Path(__file__).parent / "migrations"
# The newest migration: revisions are numbered as their files are (0001_…, 0002_…).
HEAD = max(path.name[:4] for path in (MIGRATIONS / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def utc(moment: dt.datetime) -> dt.datetime:
    """Return *moment* in UTC (a naive one is taken as UTC already).

    Every timestamp must reach the database in UTC: SQLite keeps a value's wall-clock digits and
    drops its offset, so 00:00 in Shanghai stored as is would read back as 00:00 UTC."""
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def iso(moment: dt.datetime) -> str:
    """*moment* as ISO 8601 in UTC, always with its offset (``…+00:00``): what every API and CLI
    prints, whichever database the moment was read from (SQLite returns naive values)."""
    return utc(moment).isoformat()


def utcnow() -> dt.datetime:
    """Return the current time in UTC, timezone-aware."""
    return dt.datetime.now(dt.UTC)


def stamper(dialect: Dialect) -> Callable[[dt.datetime], Any]:
    """How *dialect*'s driver takes a timestamp, for writers that hand it parameters themselves (the
    journal, the rollups): the dialect's own processor of ``DateTime(timezone=True)`` (SQLite: the text
    SQLAlchemy writes everywhere else; the generic type has none, and sqlite3's default adapter would
    add "+00:00" and is deprecated), or the datetime itself."""
    process = DateTime(timezone=True).dialect_impl(dialect).bind_processor(dialect)
    if process is None:
        return lambda moment: moment
    if dialect.name == "sqlite" and process(_PROBE) == _sqlite_text(_PROBE):
        return _sqlite_text  # the same text at half the cost: a group commit writes one a record
    return process


_PROBE = dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC)


def _sqlite_text(moment: dt.datetime) -> str:
    """*moment*'s wall-clock digits as SQLAlchemy's SQLite ``DATETIME`` writes them by default
    (``2026-01-02 03:04:05.000006``: microseconds always, the offset dropped)."""
    return moment.isoformat(" ", "microseconds")[:26]


Durability = Literal["process", "disk"]


def _sqlite_pragmas(durability: Durability) -> Callable[[Any, Any], None]:
    def connected(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # WAL lets readers run beside the one writer; several workers share the file.
        cursor.execute("PRAGMA journal_mode=WAL")
        # In WAL mode NORMAL writes each commit to the log (a killed process loses nothing) and
        # syncs it at checkpoints; FULL syncs every commit (power-loss safe, slower).
        cursor.execute(f"PRAGMA synchronous={'FULL' if durability == 'disk' else 'NORMAL'}")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return connected


class Database:
    """One engine and its session factory.

    *durability* ("process" or "disk", the ``durability`` setting) decides when the journal's commits
    return: see :meth:`writer_connection`.
    """

    def __init__(self, url: str, durability: Durability = "process") -> None:
        self.url = url
        self.durability = durability
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            path = url.removeprefix("sqlite:///")
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            # Enough connections kept for every thread that reads or writes at once (the journal's,
            # the spool's, the batch answers', the event loop's pool): one made past the pool is opened,
            # set up (WAL, pragmas) and closed for each use.
            in_memory = url == "sqlite://" or ":memory:" in url  # one connection, shared
            pooled = {} if in_memory else {"pool_size": 16, "max_overflow": 16}
            self.engine: Engine = create_engine(url, connect_args={"check_same_thread": False}, **pooled)
            event.listen(self.engine, "connect", _sqlite_pragmas(durability))
        else:
            self.engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def writer_connection(self) -> PoolProxiedConnection:
        """A driver connection for a writer that commits on the hot path (the journal).

        With durability "process", PostgreSQL's commit on it returns once the commit is in the server's
        log, before the flush to disk (``synchronous_commit = off``: a crash of dizuo loses nothing,
        a crash of the database server may lose its last few hundred milliseconds, never half a
        transaction). SQLite's WAL with ``synchronous=NORMAL`` behaves the same way on every connection.
        """
        connection = self.engine.raw_connection()
        if not self.is_sqlite:
            cursor = connection.cursor()
            mode = "on" if self.durability == "disk" else "off"
            cursor.execute(f"SET synchronous_commit TO {mode}")
            cursor.close()
            connection.commit()
        return connection

    @contextmanager
    def session(self) -> Iterator[Session]:
        """Open a session that commits on success and rolls back on error."""
        with self._sessions() as session, session.begin():
            yield session

    def upgrade(self) -> None:
        """Bring the schema to the newest migration (idempotent). A schema at the newest already is
        seen with one query, without loading Alembic (11 MB, and its scripts) into the process."""
        if self.revision() == HEAD:
            return
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def revision(self) -> str | None:
        """The schema's migration (None: none yet)."""
        with self.engine.connect() as connection:
            try:
                return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
            except (exc.OperationalError, exc.ProgrammingError):  # no such table: a new database
                return None

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
