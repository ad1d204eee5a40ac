"""Dates people type, as whole days in the platform's time zone.

``--valid-to 2026-12-31`` in the CLI, ``"valid_to": "2026-12-31"`` in the admin API and the console's
date field all mean the same moment: the end of 31 December in ``DIZUO_TIMEZONE`` (Asia/Shanghai by
default), never UTC midnight eight hours later. A moment written with its time (ISO 8601) is taken as
written, in UTC when it names no offset. Moments are returned in UTC: SQLite keeps a timestamp's
wall-clock digits and drops its offset, so a Shanghai midnight stored as is would read back eight
hours late.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

__all__ = ["DATE_ONLY", "PLATFORM_ZONE", "day_moment", "parse_moment"]

DATE_ONLY = 10  # len("YYYY-MM-DD")
PLATFORM_ZONE = ZoneInfo("Asia/Shanghai")  # DIZUO_TIMEZONE's default


def day_moment(day: dt.date, zone: ZoneInfo, *, end_of_day: bool = False) -> dt.datetime:
    """The start of *day* in *zone* (with *end_of_day*, the start of the next day: the end of the
    period through *day*), in UTC."""
    start = day + dt.timedelta(days=1) if end_of_day else day
    return dt.datetime.combine(start, dt.time(), tzinfo=zone).astimezone(dt.UTC)


def parse_moment(text: str, zone: ZoneInfo, *, end_of_day: bool = False) -> dt.datetime:
    """``YYYY-MM-DD`` as a whole day in *zone* (its start, or with *end_of_day* its end), or an ISO
    8601 moment as written (UTC when it names no offset); in UTC. Raises ValueError."""
    text = text.strip()
    if len(text) == DATE_ONLY:
        return day_moment(dt.date.fromisoformat(text), zone, end_of_day=end_of_day)
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)
