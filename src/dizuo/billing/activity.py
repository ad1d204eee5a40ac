"""What the console's overview charts: calls, errors, tokens, spend, voucher use and latency over time.

Buckets are hours or days in the platform's time zone. Money stays in exact micro-yuan until it is
written as a CNY decimal string; charts read those strings as numbers, nothing here is a float sum.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import select

from dizuo.billing.money import format_cny
from dizuo.billing.tables import FailedCall, UsageRecord
from dizuo.store import Database, utc

__all__ = ["Bucket", "activity", "window"]

Bucket = Literal["hour", "day"]
# Usage statuses that mean the answer did not reach the client whole.
CUT = ("upstream_cut", "client_gone", "blocked")


@dataclass
class _Slot:
    calls: int = 0
    errors: int = 0
    prompt: int = 0
    completion: int = 0
    cost: int = 0
    voucher: int = 0
    latencies: list[int] = field(default_factory=list)


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


def _percentile(values: list[int], share: float) -> int | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


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
    slots: dict[dt.datetime, _Slot] = defaultdict(_Slot)
    start, end = utc(since), utc(until)
    usage = select(
        UsageRecord.created_at,
        UsageRecord.prompt_tokens,
        UsageRecord.completion_tokens,
        UsageRecord.cost,
        UsageRecord.voucher_part,
        UsageRecord.latency_ms,
        UsageRecord.status,
    ).where(UsageRecord.created_at >= start, UsageRecord.created_at < end)
    failed = select(FailedCall.created_at).where(FailedCall.created_at >= start, FailedCall.created_at < end)
    if org_id is not None:
        usage = usage.where(UsageRecord.org_id == org_id)
        failed = failed.where(FailedCall.org_id == org_id)
    with db.session() as session:
        for created, prompt, completion, cost, voucher, latency, status in session.execute(usage):
            slot = slots[_floor(created, bucket, zone)]
            slot.calls += 1
            slot.errors += status in CUT
            slot.prompt += prompt
            slot.completion += completion
            slot.cost += cost
            slot.voucher += voucher
            slot.latencies.append(latency)
        for (created,) in session.execute(failed):
            slot = slots[_floor(created, bucket, zone)]
            slot.calls += 1
            slot.errors += 1
    labels: list[str] = []
    series: dict[str, list[Any]] = defaultdict(list)
    moment = _floor(since, bucket, zone)
    while moment < until:
        slot = slots.get(moment, _Slot())
        labels.append(moment.strftime("%m-%d %H:00" if bucket == "hour" else "%Y-%m-%d"))
        series["calls"].append(slot.calls)
        series["errors"].append(slot.errors)
        series["prompt_tokens"].append(slot.prompt)
        series["completion_tokens"].append(slot.completion)
        series["spend"].append(format_cny(slot.cost))
        series["voucher"].append(format_cny(slot.voucher))
        series["latency_p50"].append(_percentile(slot.latencies, 0.5))
        series["latency_p95"].append(_percentile(slot.latencies, 0.95))
        moment += step  # wall-clock arithmetic: days stay midnight to midnight
    everything = list(slots.values())
    latencies = [value for slot in everything for value in slot.latencies]
    totals = {
        "calls": sum(s.calls for s in everything),
        "errors": sum(s.errors for s in everything),
        "tokens": sum(s.prompt + s.completion for s in everything),
        "spend": format_cny(sum(s.cost for s in everything)),
        "voucher": format_cny(sum(s.voucher for s in everything)),
        "latency_p50": _percentile(latencies, 0.5),
    }
    return {"bucket": bucket, "labels": labels, "series": dict(series), "totals": totals}
