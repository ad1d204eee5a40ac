"""What every ``dizuo`` command shares: failing clearly, the database, parsing options."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn
from zoneinfo import ZoneInfo

import click
from pydantic import ValidationError

from dizuo.days import parse_moment
from dizuo.errors import DizuoError, Lang
from dizuo.settings import Settings
from dizuo.store import Database

__all__ = [
    "LANG",
    "Lang",
    "database",
    "emit",
    "fail",
    "parse_date",
    "parse_period",
    "platform_zone",
    "reported",
    "split",
]

LANG = click.option(
    "--lang",
    type=click.Choice(["zh", "en"]),
    default="zh",
    show_default=True,
    help="Language of the CSV and Excel headers (JSON keeps its keys).",
)


def emit(data: bytes, out: Path | None) -> None:
    """Write a command's file to *out* (and name it on stderr), or to standard output."""
    if out is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        out.write_bytes(data)
        click.echo(str(out), err=True)


def fail(message: str) -> NoReturn:
    """Print *message* on stderr (Chinese and English) and exit with status 2."""
    click.echo(f"错误 / error: {message}", err=True)
    sys.exit(2)


@contextmanager
def reported() -> Iterator[None]:
    """Turn dizuo's errors and bad values into a clear message and exit status 2; nothing is written."""
    try:
        yield
    except DizuoError as exc:
        fail(f"{exc.message('zh')} / {exc.message('en')}")
    except ValidationError as exc:  # the DIZUO_* settings, say: one line per problem, named as set
        fail("\n".join(_problem(exc.title, error) for error in exc.errors()))
    except ValueError as exc:
        fail(str(exc))


def _problem(model: str, error: Any) -> str:
    where = ".".join(map(str, error["loc"]))
    if model == "Settings":
        where = f"DIZUO_{where.upper()}"
    return f"{where}: {error['msg']}"


@contextmanager
def database() -> Iterator[Database]:
    """Open the platform's database (migrated; the ``default`` organization present; the usage records
    a killed server left in its spool committed)."""
    from dizuo.accounts.service import ensure_default_org
    from dizuo.billing.spool import recover

    db = Database(Settings().resolved_database_url)
    try:
        db.upgrade()
        ensure_default_org(db, with_key=False)
        recover(db)
        yield db
    finally:
        db.dispose()


def split(value: str | None) -> list[str] | None:
    """Split a comma-separated option into a list (None when absent)."""
    return [item.strip() for item in value.split(",") if item.strip()] if value else None


def parse_period(since: str | None, until: str | None) -> tuple[dt.datetime | None, dt.datetime | None]:
    """``--since`` and ``--until`` (a date alone: through that day); a period that ends before it
    starts is refused, not answered with nothing."""
    start = parse_date(since, "--since")
    end = parse_date(until, "--until", end_of_day=True)
    if start is not None and end is not None and end <= start:
        fail(
            f"--since {since} 晚于 --until {until}，时间段为空 / --since {since} is not before --until {until}"
        )
    return start, end


def platform_zone() -> ZoneInfo:
    """The platform's time zone (DIZUO_TIMEZONE)."""
    with reported():
        return ZoneInfo(Settings().timezone)


def parse_date(value: str | None, option: str, end_of_day: bool = False) -> dt.datetime | None:
    """Parse YYYY-MM-DD (a whole day in the platform's time zone, DIZUO_TIMEZONE) or ISO 8601 (UTC
    unless it says otherwise); a date alone with *end_of_day* means the end of that day."""
    if value is None:
        return None
    zone = platform_zone()
    try:
        return parse_moment(value, zone, end_of_day=end_of_day)
    except ValueError:
        fail(f"{option} {value!r} 不是日期 / is not a date (YYYY-MM-DD)")
