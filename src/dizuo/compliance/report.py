"""The regulator's monthly pack: what an operator hands the cyberspace administration or the
big-data bureau about a month of the platform, in one JSON document or one workbook.

- the models in use: calls, organizations, the deployments that served them and their filings;
- the data-risk guard: events by action and entity types found, calls it blocked;
- the evaluation grades of the models (the latest run of each suite);
- the audit trail: the month's records, its signed checkpoints and whether the chain holds;
- AIGC labels: the month's checks of labels by result and by what was checked.

Figures of calls come from the hourly rollups (exact, and constant time however busy the month);
guard events and checkpoints from their tables.
"""

from __future__ import annotations

import datetime as dt
import io
from collections import Counter, defaultdict
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from dizuo.accounts.tables import Organization
from dizuo.billing.reports import month_bounds
from dizuo.billing.sheets import add_sheet
from dizuo.billing.tables import FailedCall, usage_hourly
from dizuo.compliance.audit import verify
from dizuo.compliance.tables import LabelCheck
from dizuo.config import DeploymentConfig
from dizuo.errors import Lang
from dizuo.guard.tables import GuardEvent
from dizuo.store import Database, iso, utc
from dizuo.store.audit import AuditCheckpoint, AuditRecord

__all__ = ["monthly", "to_xlsx"]

PAGE = 5_000


def _models(
    db: Database, start: dt.datetime, end: dt.datetime, deployments: list[DeploymentConfig]
) -> list[dict[str, Any]]:
    filings = {d.name: d.filing for d in deployments}
    table = usage_hourly.c
    span = (table.hour >= utc(start), table.hour < utc(end), table.calls > 0)
    with db.session() as session:
        totals = session.execute(
            select(table.model, func.sum(table.calls), func.count(func.distinct(table.org_id)))
            .where(*span)
            .group_by(table.model)
        ).all()
        served = session.execute(
            select(table.model, table.deployment, func.sum(table.calls))
            .where(*span)
            .group_by(table.model, table.deployment)
        ).all()
    by_model: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for model, deployment, calls in served:
        filing = filings.get(deployment)
        by_model[model].append(
            {
                "deployment": deployment,
                "calls": int(calls),
                "filing": filing.model_dump() if filing is not None else None,
            }
        )
    rows = []
    for model, calls, orgs in sorted(totals, key=lambda row: (-int(row[1]), row[0])):
        used = sorted(by_model[model], key=lambda d: (-d["calls"], d["deployment"]))
        numbers = {d["filing"]["number"]: d["filing"] for d in used if d["filing"] is not None}
        rows.append(
            {
                "model": model,
                "calls": int(calls),
                "organizations": int(orgs),
                "filed": all(d["filing"] is not None for d in used),
                "filings": [numbers[number] for number in sorted(numbers)],
                "deployments": used,
            }
        )
    return rows


def _guard(db: Database, start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    by_action: Counter[str] = Counter()
    by_type: Counter[str] = Counter()
    after = 0
    while True:  # a page per short transaction, however many events the month had
        query = (
            select(GuardEvent.id, GuardEvent.action, GuardEvent.counts)
            .where(
                GuardEvent.created_at >= utc(start), GuardEvent.created_at < utc(end), GuardEvent.id > after
            )
            .order_by(GuardEvent.id)
            .limit(PAGE)
        )
        with db.session() as session:
            page = session.execute(query).all()
        for event_id, action, counts in page:
            by_action[action] += 1
            by_type.update(counts or {})
            after = event_id
        if len(page) < PAGE:
            break
    with db.session() as session:
        blocked = session.scalar(
            select(func.count()).where(
                FailedCall.code == "data_risk_blocked",
                FailedCall.created_at >= utc(start),
                FailedCall.created_at < utc(end),
            )
        )
    return {
        "events": sum(by_action.values()),
        "by_action": dict(sorted(by_action.items())),
        "by_type": dict(sorted(by_type.items(), key=lambda item: (-item[1], item[0]))),
        "blocked_calls": int(blocked or 0),
    }


def _audit(db: Database, start: dt.datetime, end: dt.datetime, key: bytes) -> dict[str, Any]:
    with db.session() as session:
        records = session.scalar(
            select(func.count()).where(AuditRecord.at >= utc(start), AuditRecord.at < utc(end))
        )
        checkpoints = [
            {"seq": c.seq, "hash": c.hash, "at": iso(c.at), "signature": c.signature}
            for c in session.scalars(
                select(AuditCheckpoint)
                .where(AuditCheckpoint.at >= utc(start), AuditCheckpoint.at < utc(end))
                .order_by(AuditCheckpoint.seq)
            )
        ]
    held, problem = verify(db, key)
    return {
        "records": int(records or 0),
        "checkpoints": checkpoints,
        "chain_holds": problem is None,
        "records_checked": held,
        "problem": None if problem is None else {"seq": problem.seq, "zh": problem.zh, "en": problem.en},
    }


def _labels(db: Database, start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    span = (LabelCheck.at >= utc(start), LabelCheck.at < utc(end))
    with db.session() as session:
        by_result = dict(
            session.execute(
                select(LabelCheck.result, func.count()).where(*span).group_by(LabelCheck.result)
            ).all()
        )
        by_source = dict(
            session.execute(
                select(LabelCheck.source, func.count()).where(*span).group_by(LabelCheck.source)
            ).all()
        )
        explicit = session.scalar(select(func.count()).where(Organization.label == "explicit"))
    return {
        "checks": sum(by_result.values()),
        "by_result": dict(sorted(by_result.items())),
        "by_source": dict(sorted(by_source.items())),
        "organizations_with_explicit_labels": int(explicit or 0),
    }


def monthly(
    db: Database,
    month: str,
    zone: ZoneInfo,
    *,
    deployments: list[DeploymentConfig],
    grades: list[dict[str, Any]],
    key: bytes,
) -> dict[str, Any]:
    """The pack for *month* (``YYYY-MM`` in *zone*): *deployments* as configured now (their filings),
    *grades* the evaluation catalog's rows, *key* the platform's signing key (to check the trail)."""
    start, end = month_bounds(month, zone)
    models = _models(db, start, end, deployments)
    with db.session() as session:
        public = session.scalar(select(func.count()).where(Organization.serves_public.is_(True)))
    used = {row["model"] for row in models}
    return {
        "month": month,
        "time_zone": zone.key,
        "period": {"start": iso(start), "end": iso(end)},
        "summary": {
            "calls": sum(row["calls"] for row in models),
            "models": len(models),
            "unfiled_models": sorted(row["model"] for row in models if not row["filed"]),
            "organizations_serving_the_public": int(public or 0),
        },
        "models": models,
        "guard": _guard(db, start, end),
        "evaluations": [
            {"model": row["model"], "grade": row["grade"], "reason": row["reason"]}
            for row in grades
            if row["model"] in used
        ],
        "audit": _audit(db, start, end, key),
        "labels": _labels(db, start, end),
    }


_WORDS: dict[str, tuple[str, str]] = {
    "summary": ("概况", "Summary"),
    "models": ("模型与备案", "Models and filings"),
    "guard": ("数据风险", "Data risk"),
    "evaluations": ("测评等级", "Evaluation grades"),
    "audit": ("审计日志检查点", "Audit checkpoints"),
    "labels": ("AIGC 标识核验", "AIGC label checks"),
    "label_checks": ("标识核验次数", "Label checks"),
    "organizations_with_explicit_labels": ("回答带显式标识的组织", "Organizations with explicit labels"),
    "month": ("月份", "Month"),
    "calls": ("调用次数", "Calls"),
    "model": ("模型", "Model"),
    "organizations": ("组织数", "Organizations"),
    "filed": ("已备案", "Filed"),
    "filings": ("备案号（备案机关）", "Filings (authority)"),
    "deployments": ("部署（调用次数）", "Deployments (calls)"),
    "unfiled_models": ("未备案的模型", "Unfiled models"),
    "organizations_serving_the_public": ("面向公众提供服务的组织", "Organizations serving the public"),
    "events": ("事件数", "Events"),
    "blocked_calls": ("拦截的调用", "Blocked calls"),
    "kind": ("类别", "Kind"),
    "name": ("名称", "Name"),
    "count": ("数量", "Count"),
    "grade": ("等级", "Grade"),
    "reason": ("依据", "Reason"),
    "seq": ("记录序号", "Record No."),
    "hash": ("哈希", "Hash"),
    "at": ("签名时间", "Signed at"),
    "signature": ("签名", "Signature"),
    "records": ("本月审计记录", "Audit records this month"),
    "chain_holds": ("审计链完整", "Audit chain holds"),
    "yes": ("是", "yes"),
    "no": ("否", "no"),
}


def to_xlsx(pack: dict[str, Any], lang: Lang = "zh") -> bytes:
    """The pack as one workbook, a sheet per part, headers in *lang*."""
    from openpyxl import Workbook

    def word(key: str) -> str:
        return _WORDS[key][0 if lang == "zh" else 1]

    def yes(value: bool) -> str:
        return word("yes") if value else word("no")

    book = Workbook()

    def sheet(key: str, header: list[str], rows: list[list[Any]], first: bool = False) -> None:
        add_sheet(book, word(key), [word(name) for name in header], rows, first)

    summary = pack["summary"]
    sheet(
        "summary",
        ["name", "count"],
        [
            [word("month"), pack["month"]],
            [word("calls"), summary["calls"]],
            [word("models"), summary["models"]],
            [word("unfiled_models"), "、".join(summary["unfiled_models"]) or "—"],
            [word("organizations_serving_the_public"), summary["organizations_serving_the_public"]],
            [word("blocked_calls"), pack["guard"]["blocked_calls"]],
            [word("records"), pack["audit"]["records"]],
            [word("chain_holds"), yes(pack["audit"]["chain_holds"])],
            [word("label_checks"), pack["labels"]["checks"]],
            [
                word("organizations_with_explicit_labels"),
                pack["labels"]["organizations_with_explicit_labels"],
            ],
        ],
        first=True,
    )
    sheet(
        "models",
        ["model", "calls", "organizations", "filed", "filings", "deployments"],
        [
            [
                row["model"],
                row["calls"],
                row["organizations"],
                yes(row["filed"]),
                "；".join(f"{f['number']}（{f['body']}）" for f in row["filings"]),
                "；".join(f"{d['deployment']}（{d['calls']}）" for d in row["deployments"]),
            ]
            for row in pack["models"]
        ],
    )
    guard = pack["guard"]
    sheet(
        "guard",
        ["kind", "name", "count"],
        [["action", name, count] for name, count in guard["by_action"].items()]
        + [["type", name, count] for name, count in guard["by_type"].items()],
    )
    sheet(
        "evaluations",
        ["model", "grade", "reason"],
        [[e["model"], e["grade"], e["reason"]] for e in pack["evaluations"]],
    )
    sheet(
        "audit",
        ["seq", "hash", "at", "signature"],
        [[c["seq"], c["hash"], c["at"], c["signature"]] for c in pack["audit"]["checkpoints"]],
    )
    labels = pack["labels"]
    sheet(
        "labels",
        ["kind", "name", "count"],
        [["result", name, count] for name, count in labels["by_result"].items()]
        + [["source", name, count] for name, count in labels["by_source"].items()],
    )
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
