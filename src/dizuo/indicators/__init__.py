"""The monitoring indicators (监测指标) of a month, for the program office: organizations registered
and active, the share of organizations using agents against the region's targets, and calls,
tokens, spend, voucher money and compute hours by industry, district and size.

Definitions (docs/indicators.md quotes them):

- **registered**: organizations created before the month's end.
- **active**: organizations with at least one charged call of a model, an agent's model call, a batch
  line or a compute job in the month (a usage record), or a call of an agent.
- **agent_adoption**: organizations that called at least one agent in the month, of the registered;
  ``active_agents``, the agents called in the month.
- **calls**, **tokens**: the month's charged model calls (compute jobs apart) and their prompt and
  completion tokens; **spend**: everything charged (calls and compute), CNY; **voucher_paid**: the
  part vouchers paid.
- **voucher_programs**: each program's vouchers' money spent in the month, the organizations whose
  vouchers of it paid, their own money spent in the month (charged less what vouchers paid), and
  the leverage, own money per voucher yuan.
- **compute_hours**, **accelerator_hours**: of the compute jobs that ended in the month, the hours
  each ran (from its charged start to its end), and those hours times the accelerators it asked for.

Sums come from the hourly rollups written with every usage record (a month is a few thousand rows
whatever the number of calls); a month is whole days of the platform's time zone.

A closed month's document is kept as a **snapshot** (taken by the server's housekeeping soon after
the month ends, or on demand): read later, a month shows what it was when it closed, even after
organizations changed their industry, district or size and scenarios moved on; ``live`` computes it
again from the records. The **series** of months (registered, active, the share using agents against
the year's target, calls, spend) reads the snapshots where they exist.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from dizuo.accounts.tables import Organization
from dizuo.agents.tables import AgentStep
from dizuo.billing.money import format_cny
from dizuo.billing.reports import month_bounds
from dizuo.billing.sheets import add_sheet
from dizuo.billing.tables import Voucher, usage_hourly, voucher_hourly
from dizuo.compute.jobs import PROVIDER as COMPUTE
from dizuo.compute.tables import ComputeJob
from dizuo.days import PLATFORM_ZONE
from dizuo.errors import InvalidRequest, Lang, catalogue
from dizuo.indicators.tables import IndicatorSnapshot
from dizuo.scenarios.milestones import late_open
from dizuo.scenarios.service import LISTED, Scenarios
from dizuo.scenarios.tables import ScenarioMove
from dizuo.store import Database, iso, utc, utcnow

__all__ = ["AGENT_TARGETS", "MAX_SERIES", "monthly", "series", "snapshot", "take_due", "to_xlsx"]

# The messages of the indicators' errors.
MESSAGES = catalogue(
    {
        "indicators_month_open": (
            "{month} 还没有结束，不能留存快照；月份结束后平台会自动留存。",
            "{month} is not over yet and cannot be kept as a snapshot; the platform keeps it once it ends.",
        ),
    }
)

# The region's targets for the share of organizations using agents (智能体普及率), by year.
AGENT_TARGETS = {"2026": 0.7, "2027": 0.8}
GROUPS = (("by_industry", "industry"), ("by_district", "district"), ("by_size", "size"))
MAX_SERIES = 36  # months one series may span
FIGURES = ("registered", "active", "agent_using", "calls", "tokens", "spend", "voucher_paid", "compute_hours", "accelerator_hours")  # fmt: skip


def monthly(db: Database, month: str, zone: ZoneInfo = PLATFORM_ZONE, live: bool = False) -> dict[str, Any]:
    """The indicators of *month* (``YYYY-MM`` in *zone*) as one JSON document: its snapshot when
    one was taken (``snapshot``: when and by whom) unless *live*; otherwise computed now
    (``snapshot``: null)."""
    month_bounds(month, zone)  # 400 for a month that is not YYYY-MM
    if not live:
        with db.session() as session:
            kept = session.get(IndicatorSnapshot, month)
            if kept is not None:
                return _kept(kept)
    return {**_computed(db, month, zone), "snapshot": None}


def snapshot(
    db: Database, month: str, zone: ZoneInfo = PLATFORM_ZONE, by: str = "platform", replace: bool = False
) -> dict[str, Any]:
    """Keep the indicators of the closed *month* as they are now; the kept document. A month not
    over yet is refused (400 ``indicators_month_open``); one kept already is left as it was unless
    *replace*."""
    _, end = month_bounds(month, zone)
    if end > utcnow():
        raise InvalidRequest("indicators_month_open", month=month)
    with db.session() as session:
        kept = session.get(IndicatorSnapshot, month)
        if kept is not None and not replace:
            return _kept(kept)
    document = _computed(db, month, zone)
    try:
        with db.session() as session:
            kept = session.get(IndicatorSnapshot, month)
            if kept is None:
                kept = IndicatorSnapshot(month=month)
                session.add(kept)
            kept.document, kept.taken_by, kept.taken_at = document, by, utcnow()
            session.flush()
            return _kept(kept)
    except IntegrityError:  # another replica kept it at the same moment: theirs stands
        with db.session() as session:
            found = session.get(IndicatorSnapshot, month)
            assert found is not None
            return _kept(found)


def take_due(db: Database, zone: ZoneInfo = PLATFORM_ZONE, now: dt.datetime | None = None) -> str | None:
    """Keep the month before *now*'s if it has no snapshot yet (the server's housekeeping calls
    this); the month kept, or None."""
    first = (now or dt.datetime.now(zone)).astimezone(zone).date().replace(day=1)
    month = (first - dt.timedelta(days=1)).strftime("%Y-%m")
    with db.session() as session:
        if session.get(IndicatorSnapshot, month) is not None:
            return None
    snapshot(db, month, zone, by="housekeeping")
    return month


def series(db: Database, first: str, last: str, zone: ZoneInfo = PLATFORM_ZONE) -> list[dict[str, Any]]:
    """The months from *first* to *last*: each one's organizations, the share using agents against
    the year's target, calls and spend, from its snapshot where one was kept (computed otherwise).
    At most 36 months; a month after this one is left out."""
    month_bounds(first, zone)
    month_bounds(last, zone)
    months = []
    day = dt.date.fromisoformat(f"{first}-01")
    current = dt.datetime.now(zone).strftime("%Y-%m")
    while day.strftime("%Y-%m") <= min(last, current):
        months.append(day.strftime("%Y-%m"))
        day = (day + dt.timedelta(days=32)).replace(day=1)
    if len(months) > MAX_SERIES:
        raise InvalidRequest(
            "invalid_param",
            param="from",
            reason_zh=f"一次最多 {MAX_SERIES} 个月",
            reason_en=f"{MAX_SERIES} months at most",
        )
    with db.session() as session:
        kept = {
            row.month: _kept(row)
            for row in session.scalars(select(IndicatorSnapshot).where(IndicatorSnapshot.month.in_(months)))
        }
    points = []
    for month in months:  # a month not kept: its organizations and usage only, computed now
        document = kept.get(month) or {**_computed(db, month, zone, whole=False), "snapshot": None}
        agents, usage = document["agent_adoption"], document["usage"]
        points.append(
            {
                "month": month,
                "registered": document["organizations"]["registered"],
                "active": document["organizations"]["active"],
                "agent_using": agents["using"],
                "agent_share": agents["share"],
                "target": agents["target"],
                "calls": usage["calls"],
                "spend": usage["spend"],
                "voucher_paid": usage["voucher_paid"],
                "snapshot": document["snapshot"] is not None,
            }
        )
    return points


def _kept(row: IndicatorSnapshot) -> dict[str, Any]:
    return {**row.document, "snapshot": {"taken_at": iso(row.taken_at), "taken_by": row.taken_by}}


def _computed(db: Database, month: str, zone: ZoneInfo, whole: bool = True) -> dict[str, Any]:
    """The indicators of *month* computed from the records now (not *whole*: its organizations, agent
    adoption, usage and groups, without the scenarios and the voucher programs)."""
    start, end = month_bounds(month, zone)
    per_org: dict[str, dict[str, float]] = defaultdict(lambda: dict.fromkeys(FIGURES, 0.0))
    table = usage_hourly.c
    with db.session() as session:
        orgs = session.execute(
            select(Organization.id, Organization.industry, Organization.district, Organization.size).where(
                Organization.created_at < end
            )
        ).all()
        sums = session.execute(
            select(
                table.org_id,
                table.provider,
                func.sum(table.calls),
                func.sum(table.prompt_tokens + table.completion_tokens),
                func.sum(table.cost),
                func.sum(table.voucher_part),
            )
            .where(table.hour >= start, table.hour < end)
            .group_by(table.org_id, table.provider)
        ).all()
        agent_users = set(
            session.scalars(
                select(AgentStep.org_id)
                .where(AgentStep.created_at >= start, AgentStep.created_at < end)
                .distinct()
            )
        )
        active_agents = int(
            session.scalar(
                select(func.count(func.distinct(AgentStep.agent_id))).where(
                    AgentStep.created_at >= start, AgentStep.created_at < end
                )
            )
            or 0
        )
        jobs = session.execute(
            select(ComputeJob.org_id, ComputeJob.started_at, ComputeJob.ended_at, ComputeJob.spec).where(
                ComputeJob.ended_at >= start,
                ComputeJob.ended_at < end,
                ComputeJob.started_at.is_not(None),
            )
        ).all()
    for org_id, provider, calls, tokens, cost, voucher in sums:
        figures = per_org[org_id]
        if provider != COMPUTE:
            figures["calls"] += int(calls or 0)
            figures["tokens"] += int(tokens or 0)
        figures["spend"] += int(cost or 0)
        figures["voucher_paid"] += int(voucher or 0)
        figures["active"] = 1
    for org_id in agent_users:
        per_org[org_id]["agent_using"] = 1
        per_org[org_id]["active"] = 1
    for org_id, started, ended, spec in jobs:
        hours = (utc(ended) - utc(started)).total_seconds() / 3600
        per_org[org_id]["compute_hours"] += hours
        per_org[org_id]["accelerator_hours"] += hours * float((spec or {}).get("accelerators") or 0)
    registered = {row[0] for row in orgs}
    for row in orgs:
        per_org[row[0]]["registered"] = 1

    def total(ids: set[str]) -> dict[str, Any]:
        summed = dict.fromkeys(FIGURES, 0.0)
        for org_id in ids:
            for name in FIGURES:
                summed[name] += per_org[org_id][name]
        return _shown(summed)

    groups: dict[str, list[dict[str, Any]]] = {}
    for column, (key, _) in enumerate(GROUPS, start=1):  # the columns after the id: industry, district, size
        members: dict[str, set[str]] = defaultdict(set)
        for row in orgs:
            members[row[column] or ""].add(row[0])
        groups[key] = [{"name": name, **total(ids)} for name, ids in sorted(members.items())]
    everything = total(registered)
    using = int(everything["agent_using"])
    document: dict[str, Any] = {
        "month": month,
        "from": start.isoformat(),
        "until": end.isoformat(),
        "organizations": {"registered": len(registered), "active": int(everything["active"])},
        "agent_adoption": {
            "using": using,
            "organizations": len(registered),
            "share": round(using / len(registered), 6) if registered else 0.0,
            "active_agents": active_agents,
            "target": AGENT_TARGETS.get(month[:4]),
        },
        "usage": {name: everything[name] for name in FIGURES[3:]},
        **groups,
    }
    if not whole:
        return document
    return {
        **document,
        # Scenarios by stage and by list as they are now (a snapshot keeps them as the month closed).
        "scenarios": Scenarios(db).counts(),
        "scenarios_by_list": Scenarios(db).counts_by_list(),
        "scenario_progress": _progress(db, start, end, zone),
        "voucher_programs": _programs(db, start, end, per_org),
    }


def _programs(
    db: Database, start: dt.datetime, end: dt.datetime, per_org: dict[str, dict[str, float]]
) -> list[dict[str, Any]]:
    """Each voucher program's money spent in the month and what it drew: the organizations whose
    vouchers of it paid for something, their own money spent in the month (everything they were
    charged, less what any voucher paid), and the leverage: own money per voucher yuan (带动比)."""
    table = voucher_hourly.c
    with db.session() as session:
        paid = session.execute(
            select(Voucher.issuer, Voucher.program, Voucher.org_id, func.sum(table.paid))
            .join(Voucher, Voucher.id == table.voucher_id)
            .where(table.hour >= start, table.hour < end)
            .group_by(Voucher.issuer, Voucher.program, Voucher.org_id)
        ).all()
    programs: dict[tuple[str, str], dict[str, Any]] = {}
    for issuer, program, org_id, amount in paid:
        entry = programs.setdefault((issuer, program), {"orgs": set(), "paid": 0})
        entry["paid"] += int(amount or 0)
        if amount:
            entry["orgs"].add(org_id)
    out = []
    for (issuer, program), entry in sorted(programs.items()):
        own = sum(
            int(per_org[o]["spend"] - per_org[o]["voucher_paid"]) for o in entry["orgs"] if o in per_org
        )
        out.append(
            {
                "issuer": issuer,
                "program": program,
                "organizations": len(entry["orgs"]),
                "voucher_paid": format_cny(entry["paid"]),
                "own_spent": format_cny(own),
                "leverage": round(own / entry["paid"], 4) if entry["paid"] else None,
            }
        )
    return out


def _progress(db: Database, start: dt.datetime, end: dt.datetime, zone: ZoneInfo) -> dict[str, Any]:
    """Milestones late at the month's end (today, for the month under way), and the days from
    publication to award of the scenarios taken in the month."""
    on = min(end.astimezone(zone).date(), dt.datetime.now(zone).date())
    with db.session() as session:
        late = late_open(session, on)
        taken = session.execute(
            select(ScenarioMove.scenario_id, ScenarioMove.created_at).where(
                ScenarioMove.to_status == "taken",
                ScenarioMove.created_at >= start,
                ScenarioMove.created_at < end,
            )
        ).all()
        published: dict[str, list[dt.datetime]] = defaultdict(list)
        for scenario_id, at in session.execute(
            select(ScenarioMove.scenario_id, ScenarioMove.created_at).where(
                ScenarioMove.to_status == "published",
                ScenarioMove.scenario_id.in_([row[0] for row in taken]),
            )
        ):
            published[scenario_id].append(utc(at))
    days = []
    for scenario_id, at in taken:
        before = [moment for moment in published[scenario_id] if moment <= utc(at)]
        if before:
            days.append((utc(at) - max(before)).total_seconds() / 86400)
    return {
        "milestones_late": late,
        "publication_to_award_days": {
            "awarded": len(days),
            "median": round(statistics.median(days), 2) if days else None,
            "mean": round(statistics.fmean(days), 2) if days else None,
        },
    }


def _shown(summed: dict[str, float]) -> dict[str, Any]:
    """Counts as integers, money as CNY strings, hours to the second."""
    shown: dict[str, Any] = {}
    for name, value in summed.items():
        if name in ("spend", "voucher_paid"):
            shown[name] = format_cny(int(value))
        elif name.endswith("hours"):
            shown[name] = round(value, 4)
        else:
            shown[name] = int(value)
    return shown


WORDS: dict[str, tuple[str, str]] = {
    "summary": ("总览", "Summary"),
    "by_industry": ("按行业", "By industry"),
    "by_district": ("按区县", "By district"),
    "by_size": ("按规模", "By size"),
    "indicator": ("指标", "Indicator"),
    "value": ("数值", "Value"),
    "month": ("月份", "Month"),
    "name": ("分组", "Group"),
    "unset": ("（未填）", "(not given)"),
    "registered": ("注册组织", "Organizations registered"),
    "active": ("活跃组织", "Active organizations"),
    "agent_using": ("使用智能体的组织", "Organizations using agents"),
    "agent_share": ("智能体普及率", "Share using agents"),
    "agent_target": ("年度目标", "The year's target"),
    "active_agents": ("活跃智能体", "Active agents"),
    "calls": ("调用次数", "Calls"),
    "tokens": ("tokens", "Tokens"),
    "spend": ("花费（元）", "Spend (CNY)"),
    "voucher_paid": ("算力券支付（元）", "Paid by vouchers (CNY)"),
    "compute_hours": ("算力作业时长（小时）", "Compute job hours"),
    "accelerator_hours": ("加速卡时", "Accelerator hours"),
    "scenarios": ("场景清单", "Scenarios"),
    "voucher_programs": ("算力券", "Vouchers"),
    "scenarios_by_list": ("场景清单批次", "Scenario lists"),
    "list": ("清单批次", "List"),
    "published": ("已发布", "Published"),
    "taken": ("已揭榜", "Taken"),
    "in_construction": ("建设中", "In construction"),
    "accepted": ("已验收", "Accepted"),
    "benchmark": ("标杆", "Benchmark"),
    "closed": ("已关闭", "Closed"),
    "total": ("合计", "Total"),
    "issuer": ("发放方", "Issuer"),
    "program": ("项目", "Program"),
    "organizations": ("用券组织", "Organizations using it"),
    "own_spent": ("自有资金花费（元）", "Own money spent (CNY)"),
    "leverage": ("带动比（自有/券）", "Leverage (own per voucher yuan)"),
    "stage": ("阶段或指标", "Stage or figure"),
    "count": ("数量", "Count"),
    "milestones_late": ("逾期里程碑", "Milestones late"),
    "awarded": ("本月揭榜的场景", "Scenarios awarded in the month"),
    "award_days_median": ("发布到揭榜天数（中位数）", "Days from publication to award (median)"),
    "award_days_mean": ("发布到揭榜天数（平均）", "Days from publication to award (mean)"),
}


def to_xlsx(document: dict[str, Any], lang: Lang = "zh") -> bytes:
    """The indicators as one workbook: a summary sheet and a sheet per grouping, headers in *lang*;
    money as numbers of yuan, shares as percentages."""
    import io
    from decimal import Decimal

    from openpyxl import Workbook

    def word(key: str) -> str:
        return WORDS[key][0 if lang == "zh" else 1]

    book = Workbook()

    def sheet(title: str, header: list[str], rows: list[list[Any]], first: bool = False) -> Any:
        return add_sheet(book, word(title), [word(name) for name in header], rows, first)

    orgs, agents, usage = document["organizations"], document["agent_adoption"], document["usage"]
    money = ("spend", "voucher_paid")
    formats = {"agent_share": "0.0%", "agent_target": "0%", **dict.fromkeys(money, "#,##0.00####")}
    entries = [
        ("month", document["month"]),
        ("registered", orgs["registered"]),
        ("active", orgs["active"]),
        ("agent_using", agents["using"]),
        ("agent_share", agents["share"]),
        ("agent_target", agents["target"] if agents["target"] is not None else "—"),
        ("active_agents", agents["active_agents"]),
        *((name, Decimal(usage[name]) if name in money else usage[name]) for name in FIGURES[3:]),
    ]
    summary = sheet(
        "summary", ["indicator", "value"], [[word(key), value] for key, value in entries], first=True
    )
    for row, (key, _) in enumerate(entries, start=2):
        if key in formats:
            summary.cell(row=row, column=2).number_format = formats[key]
    for key, _ in GROUPS:
        rows = [
            [row["name"] or word("unset"), *(Decimal(row[n]) if n in money else row[n] for n in FIGURES)]
            for row in document[key]
        ]
        page = sheet(key, ["name", *FIGURES], rows)
        for column, name in enumerate(FIGURES, start=2):
            if name in formats:
                for (cell,) in page.iter_rows(min_row=2, min_col=column, max_col=column):
                    cell.number_format = formats[name]
    progress = document["scenario_progress"]
    awards = progress["publication_to_award_days"]
    stages = [[stage, count] for stage, count in document["scenarios"].items()]
    sheet("scenarios", ["stage", "count"], [
        *stages,
        [word("milestones_late"), progress["milestones_late"]],
        [word("awarded"), awards["awarded"]],
        [word("award_days_median"), awards["median"] if awards["median"] is not None else "—"],
        [word("award_days_mean"), awards["mean"] if awards["mean"] is not None else "—"],
    ])  # fmt: skip
    listed = document.get("scenarios_by_list", [])  # (a snapshot kept before lists were counted: none)
    sheet("scenarios_by_list", ["list", *LISTED, "total"], [[row["list"], *(row[stage] for stage in LISTED), row["total"]] for row in listed])  # fmt: skip
    vouchers = sheet("voucher_programs", ["issuer", "program", "organizations", "voucher_paid", "own_spent", "leverage"], [
        [v["issuer"], v["program"], v["organizations"], Decimal(v["voucher_paid"]), Decimal(v["own_spent"]), v["leverage"] if v["leverage"] is not None else "—"]
        for v in document["voucher_programs"]
    ])  # fmt: skip
    for column in (4, 5):
        for (cell,) in vouchers.iter_rows(min_row=2, min_col=column, max_col=column):
            cell.number_format = formats["spend"]
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
