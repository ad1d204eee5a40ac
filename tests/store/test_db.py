"""How the database layer hands timestamps to drivers directly."""

from __future__ import annotations

import datetime as dt
import random

from sqlalchemy import DateTime
from sqlalchemy.dialects import sqlite

from dizuo.store import stamper


def test_the_journal_writes_sqlite_timestamps_exactly_as_sqlalchemy_does() -> None:
    # The journal and the rollups hand the driver text they make themselves: rows they write must
    # sort and compare with rows the ORM writes, digit for digit.
    dialect = sqlite.dialect()
    orm = DateTime(timezone=True).dialect_impl(dialect).bind_processor(dialect)
    stamp = stamper(dialect)
    generator = random.Random(7)
    moments = [
        dt.datetime(1, 1, 1, tzinfo=dt.UTC),
        dt.datetime(999, 12, 31, 23, 59, 59, 999_999),
        dt.datetime(2026, 12, 6, 9, 0, tzinfo=dt.UTC),
        dt.datetime(2026, 12, 6, 17, 30, 0, 1, tzinfo=dt.timezone(dt.timedelta(hours=8))),
    ]
    moments += [dt.datetime.fromtimestamp(generator.uniform(0, 4e9), dt.UTC) for _ in range(2000)]
    assert orm is not None
    for moment in moments:
        assert stamp(moment) == orm(moment), moment
