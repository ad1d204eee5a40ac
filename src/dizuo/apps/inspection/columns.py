"""Which clause each column of a report measures, and in which unit it is judged."""

from __future__ import annotations

from dataclasses import dataclass

from dizuo.apps.inspection.report import Record
from dizuo.apps.inspection.standard import Limit, Rule, Standard, feature_of, parts_of, split_unit
from dizuo.errors import InvalidRequest

__all__ = ["Column", "bind"]

# Columns that identify or conclude, never measure.
_SKIP = ("序号", "件号", "样本序号", "编号", "备注", "单件结论", "结论", "判定")


@dataclass(frozen=True, slots=True)
class Column:
    index: int
    label: str  # "柱塞直径", without its unit
    unit: str | None
    rule: Rule
    limit: Limit | None  # in the column's unit; None for a pass/fail item or a model not in the table


def _rule_for(label: str, standard: Standard) -> Rule | None:
    """The clause a column measures: same quantity, and the part it names (none: any one)."""
    feature = feature_of(label)
    if feature is None:
        return None
    parts = parts_of(label)
    candidates = [r for r in standard.rules if r.feature == feature and (not parts or parts <= r.parts)]
    # An exact part match first (柱塞Ra → 4.4.1, not 4.4.2), then the narrowest rule.
    return min(candidates, key=lambda r: (r.parts != parts, len(r.parts)), default=None)


def bind(record: Record, standard: Standard, model: str | None) -> tuple[list[Column], list[Rule]]:
    """The measuring columns of *record*, and the per-model rules that have no limit for *model*.

    Raises ``report_unit_mismatch`` when a column's unit cannot be converted to its clause's.
    """
    columns: list[Column] = []
    unknown: list[Rule] = []
    for index, header in enumerate(record.header):
        label, unit = split_unit(header)
        rule = None if label in _SKIP else _rule_for(label, standard)
        if rule is None:
            continue
        limit = rule.limit_for(model)
        if limit is not None:
            converted = limit.in_unit(unit)
            if converted is None:
                raise InvalidRequest(
                    "report_unit_mismatch",
                    param="report",
                    column=header,
                    unit=unit,
                    clause=rule.clause,
                    expected=limit.unit,
                )
            limit = converted
        elif rule.by_model and rule not in unknown:
            unknown.append(rule)
        columns.append(Column(index, label, unit, rule, limit))
    return columns, unknown
