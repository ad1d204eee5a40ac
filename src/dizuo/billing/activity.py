"""What the console's overview charts: calls, errors, tokens, spend, voucher use and latency over time.

Read from the hourly rollups (``billing.rollups``), never from the records: a month of the whole
platform is a few thousand rows whatever the number of calls. Buckets are hours or days in the
platform's time zone (a UTC hour goes to the local bucket it starts in). Money stays in exact
micro-yuan until it is written as a CNY decimal string; latency percentiles are read from the
rollups' histogram.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any, Literal
from zoneinfo import ZoneInfo

from dizuo.billing.money import format_cny
from dizuo.billing.rollups import ACTIVITY_BASE, ACTIVITY_SUMS, all_scopes, hour_of, percentile, read_activity
from dizuo.store import Database, utc

__all__ = ["Bucket", "activity", "window"]

Bucket = Literal["hour", "day"]


def window(
    days: int, zone: ZoneInfo, now: dt.datetime | None = None
) -> tuple[dt.datetime, dt.datetime, Bucket]:
    """Return [since, until) covering the last *days* days up to the end of the current bucket,
    and the bucket size: hours for a day or two, days beyond."""
    bucket: Bucket = "hour" if days <= 2 else "day"
    local = (now or dt.datetime.now(dt.UTC)).astimezone(zone)
    if bucket == "hour":
        end = local.replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)
        start = end - dt.timedelta(hours=24 * days)
    else:
        end = local.replace(hour=0, minute=0, second=0, microsecond=0) + dt.timedelta(days=1)
        start = end - dt.timedelta(days=days)
    return start, end, bucket


def _floor(moment: dt.datetime, bucket: Bucket, zone: ZoneInfo) -> dt.datetime:
    local = utc(moment).astimezone(zone)
    if bucket == "hour":
        return local.replace(minute=0, second=0, microsecond=0)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def activity(
    db: Database,
    *,
    org_id: str | None,
    since: dt.datetime,
    until: dt.datetime,
    bucket: Bucket,
    zone: ZoneInfo,
) -> dict[str, Any]:
    """Return per-bucket series and totals for one organization (or all, with *org_id* None)."""
    step = dt.timedelta(hours=1) if bucket == "hour" else dt.timedelta(days=1)
    width = len(ACTIVITY_SUMS)
    hours = read_activity(db, [org_id] if org_id is not None else all_scopes(), hour_of(since), until)
    slots: dict[dt.datetime, list[int]] = defaultdict(lambda: [0] * width)
    first = _floor(since, bucket, zone)
    for hour, sums in hours.items():
        slot = slots[max(first, _floor(hour, bucket, zone))]
        for index in range(width):
            slot[index] += sums[index]
    base = len(ACTIVITY_BASE)
    labels: list[str] = []
    series: dict[str, list[Any]] = defaultdict(list)
    moment = first
    empty = [0] * width
    while moment < until:
        slot = slots.get(moment, empty)
        calls, failed, errors, prompt, completion, cost, voucher = slot[:base]
        histogram = slot[base:]
        labels.append(moment.strftime("%m-%d %H:00" if bucket == "hour" else "%Y-%m-%d"))
        series["calls"].append(calls + failed)
        series["errors"].append(errors + failed)
        series["prompt_tokens"].append(prompt)
        series["completion_tokens"].append(completion)
        series["spend"].append(format_cny(cost))
        series["voucher"].append(format_cny(voucher))
        series["latency_p50"].append(percentile(histogram, 0.5))
        series["latency_p95"].append(percentile(histogram, 0.95))
        moment += step  # wall-clock arithmetic: days stay midnight to midnight
    total = [sum(column) for column in zip(*slots.values(), strict=True)] if slots else empty
    calls, failed, errors, prompt, completion, cost, voucher = total[:base]
    totals = {
        "calls": calls + failed,
        "errors": errors + failed,
        "tokens": prompt + completion,
        "spend": format_cny(cost),
        "voucher": format_cny(voucher),
        "latency_p50": percentile(total[base:], 0.5),
    }
    return {"bucket": bucket, "labels": labels, "series": dict(series), "totals": totals}
