"""The voucher issuer's monthly report with compute apart from model calls: what its vouchers paid
for compute jobs per organization, program, pool, region and accelerator type, with the
accelerator-hours those jobs ran, beside the model calls' lines of :func:`billing.reports.voucher_report`.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from dizuo.accounts.tables import Organization
from dizuo.billing import ledger
from dizuo.billing.reports import issuer_line, month_bounds, voucher_report
from dizuo.billing.tables import LedgerEntry, Voucher
from dizuo.compute.jobs import PROVIDER
from dizuo.compute.tables import ComputeJob
from dizuo.days import PLATFORM_ZONE
from dizuo.store import Database, utc

__all__ = ["issuer_report"]


def issuer_report(
    db: Database, issuer: str, month: str, zone: ZoneInfo = PLATFORM_ZONE
) -> list[dict[str, Any]]:
    """Every line of an issuer's month: model calls (``kind`` ``model``, per provider and region) and
    compute jobs (``kind`` ``compute``, per pool, region and accelerator type, with
    ``accelerator_hours``), each with what its vouchers paid."""
    lines = [
        {**row, "kind": "model", "pool": None, "accelerator": None, "accelerator_hours": None}
        for row in voucher_report(db, issuer, month, zone)
        if row["provider"] != PROVIDER
    ]
    return lines + _compute_lines(db, issuer, month, zone)


def _compute_lines(db: Database, issuer: str, month: str, zone: ZoneInfo) -> list[dict[str, Any]]:
    start, end = month_bounds(month, zone)
    with db.session() as session:
        vouchers = {v.id: v for v in session.scalars(select(Voucher).where(Voucher.issuer == issuer))}
        if not vouchers:
            return []
        accounts = [ledger.voucher(voucher_id) for voucher_id in vouchers]
        paid = session.execute(
            select(LedgerEntry.voucher_id, LedgerEntry.amount, ComputeJob)
            .join(ComputeJob, ComputeJob.id == LedgerEntry.request_id)
            .where(
                LedgerEntry.account.in_(accounts),
                LedgerEntry.kind == "charge",
                LedgerEntry.created_at >= start,
                LedgerEntry.created_at < end,
            )
        ).all()
        totals: dict[tuple[str, str, str, str, str], list[Any]] = defaultdict(lambda: [0, 0, Decimal(0)])
        for voucher_id, amount, job in paid:
            voucher = vouchers[str(voucher_id)]
            key = (voucher.org_id, voucher.program, job.pool or "", job.region or "", job.accelerator or "")
            line = totals[key]
            line[0] -= int(amount)  # a voucher account's charge legs are negative
            line[1] += 1
            line[2] += _accelerator_hours(job)
        names = {
            o.id: o
            for o in session.scalars(select(Organization).where(Organization.id.in_({k[0] for k in totals})))
        }
    return [
        {
            **issuer_line(issuer, month, names.get(org_id), org_id, program, PROVIDER, region, jobs, amount),
            "kind": "compute",
            "pool": pool,
            "accelerator": accelerator or None,
            "accelerator_hours": str(hours.quantize(Decimal("0.0001"))),
        }
        for (org_id, program, pool, region, accelerator), (amount, jobs, hours) in sorted(totals.items())
    ]


def _accelerator_hours(job: ComputeJob) -> Decimal:
    """The accelerator-hours *job* was charged for: its accelerators × the whole seconds it ran
    (charged per second, rounded up) in hours."""
    if job.started_at is None or job.ended_at is None:
        return Decimal(0)
    seconds = math.ceil((utc(job.ended_at) - utc(job.started_at)) / dt.timedelta(seconds=1))
    return Decimal(int((job.spec or {}).get("request", {}).get("accelerators", 0))) * seconds / 3600
