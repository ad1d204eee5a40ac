"""Disclosure control: what of an aggregate query's answer may leave the sandbox.

Three rules withhold a group (a result row); withheld rows are left out and counted in
``suppressed``, with a note saying why:

1. **Small groups** — a group of fewer than k rows, or an aggregated column with fewer than k
   values in it.
2. **Filters that single people out** — for each part of the WHERE (its ANDed conditions), the rows
   that part alone removes from the group: fewer than k (but some) means the query is the rest of
   the group minus a handful of people, and its difference from the same query without that part
   would describe them (``… AND NOT (出生日期 = '1990-01-02' AND 性别 = '女')``).
3. **Differences with earlier answers** — against the grant's earlier released aggregates (the
   latest :data:`HISTORY`), per group of the keys both share: fewer than k rows (but some) in one
   filter and not the other means the two answers differ by a handful of people
   (``出生日期 > '1990-01-01'`` then ``> '1990-01-02'``).

Under a privacy budget (ε), each released count and sum also gets noise from OpenDP's Laplace
mechanism (discrete for integers), ε split evenly over the query's noisy columns; a sum's column is
clamped to the bounds its owner registered, which bound one person's effect on it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from dizuo.sandbox.policy import Column, Plan, Refused, checks_sql, condition_sql, history_sql
from dizuo.sandbox.store import Store

__all__ = [
    "HISTORY",
    "Verdict",
    "add_noise",
    "filter_check",
    "history_check",
    "noise_note",
    "private_outputs",
]

HISTORY = 200  # earlier released aggregates a new one is compared with
INTEGERS = (
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
)
REASONS = {
    "small": ("{n} 组少于 {k} 行，已隐去", "{n} groups of fewer than {k} rows withheld"),
    "filter": (
        "{n} 组的筛选条件只排除了不足 {k} 行（会单独描述少数人），已隐去",
        "{n} groups withheld: a condition of the WHERE removes fewer than {k} rows from them (it would single out a few people)",
    ),
    "history": (
        "{n} 组与此前放行的结果只差不足 {k} 行（差分会描述少数人），已隐去",
        "{n} groups withheld: they differ from an earlier released answer by fewer than {k} rows (the difference would describe a few people)",
    ),
}


@dataclass
class Verdict:
    """Which result rows are withheld, and why."""

    keys: list[tuple[Any, ...]]  # each result row's group key
    withheld: dict[int, str] = field(default_factory=dict)  # row index -> reason

    @classmethod
    def of(cls, plan: Plan, rows: list[tuple[Any, ...]], k: int) -> Verdict:
        start = plan.visible
        width = len(plan.group_by)
        verdict = cls([tuple(row[start : start + width]) for row in rows])
        for index, row in enumerate(rows):
            size = row[start + width]
            counted = row[start + width + 1 :]
            if size < k or any(0 < c < k for c in counted):
                verdict.withheld[index] = "small"
        return verdict

    def withhold(self, index: int, reason: str) -> None:
        self.withheld.setdefault(index, reason)

    @property
    def count(self) -> int:
        return len(self.withheld)

    def released(self, plan: Plan, rows: list[tuple[Any, ...]]) -> list[list[Any]]:
        return [list(row[: plan.visible]) for i, row in enumerate(rows) if i not in self.withheld]

    def notes(self, k: int) -> list[dict[str, str]]:
        counts = Counter(self.withheld.values())
        return [
            {"zh": REASONS[reason][0].format(n=n, k=k), "en": REASONS[reason][1].format(n=n, k=k)}
            for reason, n in sorted(counts.items())
        ]


def filter_check(store: Store, file: str, table: str, plan: Plan, k: int, verdict: Verdict) -> None:
    """Rule 2: withhold the groups where one part of the WHERE removes between 1 and k-1 rows."""
    sql = checks_sql(table, plan)
    if sql is None:
        return
    width = len(plan.group_by)
    _, rows = store.run(file, sql)
    risky = set()
    for row in rows:
        kept = row[width]
        if any(0 < without - kept < k for without in row[width + 1 :]):
            risky.add(tuple(row[:width]))
    for index, key in enumerate(verdict.keys):
        if key in risky:
            verdict.withhold(index, "filter")


def history_check(
    store: Store,
    file: str,
    table: str,
    plan: Plan,
    k: int,
    verdict: Verdict,
    earlier: list[tuple[str, list[str]]],
) -> None:
    """Rule 3: withhold the groups that differ from an earlier released answer by 1 to k-1 rows."""
    now = condition_sql(plan.where)
    by_keys: dict[tuple[str, ...], list[str]] = {}
    for old, old_keys in earlier:
        if old == now:
            continue
        shared = tuple(key for key in plan.group_by if key in old_keys)
        listed = by_keys.setdefault(shared, [])
        if old not in listed:
            listed.append(old)
    for shared, olds in by_keys.items():
        _, rows = store.run(file, history_sql(table, list(shared), now, olds))
        width = len(shared)
        risky = {tuple(row[:width]) for row in rows if any(0 < c < k for c in row[width:])}
        if not risky:
            continue
        positions = [plan.group_by.index(key) for key in shared]
        for index, key in enumerate(verdict.keys):
            if tuple(key[p] for p in positions) in risky:
                verdict.withhold(index, "history")


def private_outputs(plan: Plan, columns: dict[str, Column]) -> None:
    """Refuse, under a privacy budget, a query with a column noise cannot protect: each output must
    be a group key, ``count(*)``/``count(col)`` or ``sum`` of a column with registered bounds."""
    if plan.kind != "aggregate":
        raise Refused("sandbox_query_refused", "有隐私预算的授权只放行聚合结果", "a grant with a privacy budget releases aggregates only")  # fmt: skip
    noisy = {a.position: a for a in plan.aggregates}
    for position in range(plan.visible):
        if position in plan.key_positions:
            continue
        aggregate = noisy.get(position)
        if aggregate is not None and aggregate.function == "count" and not aggregate.distinct:
            continue
        if aggregate is not None and aggregate.function == "sum" and columns[aggregate.column or ""].bounds:
            continue
        raise Refused(
            "sandbox_query_refused",
            f"有隐私预算时每一列须是分组列、count 或（登记了上下界的列的）sum：第 {position + 1} 列不是（平均数请用 sum/count 自己算）",
            f"under a privacy budget each output must be a group column, a count or a sum (of a column with registered bounds): output {position + 1} is not (an average is sum / count)",
        )


@cache
def _mechanism(integer: bool, scale: float) -> Any:
    import opendp.prelude as dp

    dp.enable_features("contrib")
    kind = int if integer else float
    return dp.m.make_laplace(dp.atom_domain(T=kind, nan=False), dp.absolute_distance(T=kind), scale=scale)


def add_noise(
    plan: Plan, rows: list[list[Any]], epsilon: float, columns: dict[str, Column]
) -> list[list[Any]]:
    """Each count and sum of *rows* with Laplace noise, *epsilon* split over the noisy outputs."""
    if not plan.aggregates:
        return rows
    share = epsilon / len(plan.aggregates)
    for aggregate in plan.aggregates:
        if aggregate.function == "count":
            integer, sensitivity = True, 1.0
        else:
            column = columns[aggregate.column or ""]
            low, high = column.bounds or (0.0, 0.0)
            integer = column.type.startswith(INTEGERS)
            sensitivity = max(abs(low), abs(high))
        noise = _mechanism(integer, sensitivity / share)
        for row in rows:
            value = row[aggregate.position]
            if value is None:
                continue
            noisy = noise(int(value)) if integer else noise(float(value))
            row[aggregate.position] = max(noisy, 0) if aggregate.function == "count" else noisy
    return rows


def noise_note(epsilon: float) -> dict[str, str]:
    return {
        "zh": f"计数和求和加了差分隐私噪声（本次 ε={epsilon:g}）",
        "en": f"counts and sums carry differential-privacy noise (this query spent ε={epsilon:g})",
    }
