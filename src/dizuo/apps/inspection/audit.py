"""The audit: a report judged against a standard, in code, with every number a Decimal.

Findings, by kind:

- ``incomplete``: a required element (6.3), a measured value or a piece is missing or unreadable;
- ``out_of_limit``: a measured value outside its clause's limit (whether the report saw it or not);
- ``verdict_mismatch``: a piece's 单件结论 disagrees with its values (6.1);
- ``count_mismatch``: the conclusion's counts disagree with the records;
- ``sample_size``: fewer samples than the plan demands for the lot size (5.1.2);
- ``batch_decision``: the reported 接收/拒收 disagrees with Ac/Re (6.2);
- ``inconsistent``: the report contradicts itself or the standard (a sample that is not a piece of
  the lot, a product model the tolerance table lacks);
- ``escalation``: what the standard demands next (7: three or more nonconforming on one item → 8D).

A report is ``valid`` when it has none of the first kinds: it is complete and its verdicts, counts
and decision are what its own numbers give. Nonconforming values a report recorded correctly, and
escalations, do not make it invalid; they are findings a quality engineer acts on.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from dizuo.apps.inspection.columns import Column, bind
from dizuo.apps.inspection.history import History
from dizuo.apps.inspection.messages import ACCEPT, DECISION_EN, DECISION_ZH, REJECT, TEXT, UNDETERMINED
from dizuo.apps.inspection.report import Record, Report
from dizuo.apps.inspection.standard import Standard, parts_of

__all__ = ["REPORT_ERRORS", "Audit", "Finding", "audit"]

REPORT_ERRORS = frozenset(
    {"incomplete", "verdict_mismatch", "count_mismatch", "sample_size", "batch_decision", "inconsistent"}
)
_DECISIONS = {"接收": ACCEPT, "拒收": REJECT, "不接收": REJECT}
_CONFORMING = re.compile(r"^(合格|正常|通过|良好|OK|无|未见|未发现)")
_MISSING = ("", "-", "—", "--", "/", "／", "N/A", "NA", "无数据")
# Words past cases use for a value that went one way; they help BM25 rank the cases.
_SIDE_WORDS = {"low": "低于 下限 偏低 偏短 偏小 超下偏差", "high": "高于 上限 超出 偏大 偏长 超上偏差"}


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str
    item: str
    clause: str
    message: str
    piece: int | None = None
    sample: int | None = None
    measured: str | None = None
    limit: str | None = None
    unit: str | None = None
    root_cause_refs: tuple[str, ...] = ()

    def public(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "item": self.item,
            "piece": self.piece,
            "sample": self.sample,
            "measured": self.measured,
            "limit": self.limit,
            "unit": self.unit,
            "clause": self.clause,
            "message": self.message,
            "root_cause_refs": list(self.root_cause_refs),
        }


@dataclass
class Audit:
    report_id: str | None
    report: str  # file name
    standard: str
    model: str | None
    batch: str | None
    lot_size: int | None
    reported_decision: str | None
    computed_decision: str | None
    pieces_inspected: int
    nonconforming_pieces: list[int]
    samples_required: int | None
    samples_inspected: int
    nonconforming_samples: list[int]
    ac_re: tuple[int, int] | None
    findings: list[Finding] = field(default_factory=list)
    history: History | None = None

    @property
    def valid(self) -> bool:
        return not any(f.kind in REPORT_ERRORS for f in self.findings)

    def public(self) -> dict[str, Any]:
        refs = sorted({ref for f in self.findings for ref in f.root_cause_refs})
        cases = self.history.by_id if self.history else {}
        return {
            "report_id": self.report_id,
            "report": self.report,
            "standard": self.standard,
            "model": self.model,
            "batch": self.batch,
            "lot_size": self.lot_size,
            "valid": self.valid,
            "batch_decision": {"reported": self.reported_decision, "computed": self.computed_decision},
            "pieces": {"inspected": self.pieces_inspected, "nonconforming": self.nonconforming_pieces},
            "samples": {
                "required": self.samples_required,
                "inspected": self.samples_inspected,
                "nonconforming": self.nonconforming_samples,
                "ac": self.ac_re[0] if self.ac_re else None,
                "re": self.ac_re[1] if self.ac_re else None,
            },
            "findings": [f.public() for f in self.findings],
            "root_causes": [cases[r].public() for r in refs if r in cases],
        }


@dataclass(frozen=True, slots=True)
class _Failure:
    column: Column
    measured: str
    side: str | None  # "low" / "high" for numbers, None for pass/fail items


@dataclass
class _Judged:
    """One record judged: its rows' numbers and which of them failed on what."""

    numbers: list[int] = field(default_factory=list)  # piece (or sample) numbers, in order
    failed: dict[int, list[_Failure]] = field(default_factory=dict)


def _number(text: str) -> int | None:
    found = re.search(r"\d+", text or "")
    return int(found.group(0)) if found else None


def _cell(row: tuple[str, ...], index: int | None) -> str:
    return row[index] if index is not None and index < len(row) else ""


def _plain(value: Decimal) -> str:
    return format(value, "f")


class _Auditor:
    def __init__(self, report: Report, standard: Standard, history: History | None, lang: str) -> None:
        self.report = report
        self.standard = standard
        self.history = history
        self.lang = lang
        self.findings: list[Finding] = []
        self.model = report.field("产品型号") or report.field("型号")
        found = re.search(r"批?判定\s*[：:为]?\s*(接收|拒收|不接收)", report.conclusion)
        self.reported = _DECISIONS[found.group(1)] if found else None  # the conclusion's 接收/拒收
        # item → piece (or −sample position) → failures: what the escalation rule counts.
        self.by_item: dict[str, dict[int, list[_Failure]]] = defaultdict(lambda: defaultdict(list))

    # ---- saying ---------------------------------------------------------------------------------

    def cite(self, clause: str) -> str:
        return self.standard.cite(clause, self.lang) if clause else self.standard.name

    def join(self, values: Any) -> str:
        return ("、" if self.lang != "en" else ", ").join(map(str, values))

    def add(
        self,
        kind: str,
        item: str,
        clause: str,
        template: str,
        params: dict[str, Any],
        *,
        topics: tuple[str, ...] = (),
        words: str = "",
        trend: tuple[str | None, str | None] = (None, None),
        **fields: Any,
    ) -> None:
        """Record a finding worded by *template*; *topics*, *words* and *trend* (quantity, side)
        find its past cases."""
        zh, en = TEXT[template]
        message = (en if self.lang == "en" else zh).format(**params)
        refs: tuple[str, ...] = ()
        if self.history is not None and topics:
            query = f"{words} {item} {self.model or ''}"
            refs = tuple(self.history.similar(topics, query, *trend))
        self.findings.append(Finding(kind, item, clause, message, root_cause_refs=refs, **fields))

    @staticmethod
    def where(piece: int | None, sample: int | None) -> dict[str, str]:
        if sample is not None:
            return {"where": f"样本 {sample}（件号 {piece}）", "where_en": f"Sample {sample} (piece {piece})"}
        return {"where": f"件号 {piece} ", "where_en": f"Piece {piece}"}

    # ---- the audit ------------------------------------------------------------------------------

    def run(self) -> Audit:
        report, standard = self.report, self.standard
        self.cited_standard()
        self.required_fields()
        lot = _number(report.field("批量") or "")
        piece_columns, unknown = bind(report.pieces, standard, self.model)
        sample_columns, unknown_too = (
            bind(report.samples, standard, self.model) if report.samples else ([], [])
        )
        for rule in unknown + [r for r in unknown_too if r not in unknown]:
            models = self.join(rule.by_model)
            params: dict[str, Any] = {
                "model": self.model or "—",
                "cite": self.cite(rule.clause),
                "models": models,
                "item": rule.title,
            }
            self.add("inconsistent", rule.title, rule.clause, "model_unknown", params)
        pieces = self.pieces(lot, piece_columns)
        samples = self.samples(set(pieces.numbers), sample_columns)
        required = standard.sampling.sample_size(lot) if lot is not None else None
        ac_re = standard.sampling.ac_re.get(required) if required is not None else None
        computed = self.decide(lot, required, ac_re, samples)
        self.escalations()
        return Audit(
            report_id=report.field("报告编号"),
            report=report.name,
            standard=standard.name,
            model=self.model,
            batch=report.field("批号"),
            lot_size=lot,
            reported_decision=self.reported,
            computed_decision=computed,
            pieces_inspected=len(pieces.numbers),
            nonconforming_pieces=sorted(pieces.failed),
            samples_required=required,
            samples_inspected=len(samples.numbers),
            nonconforming_samples=sorted(samples.failed),
            ac_re=ac_re,
            findings=self.findings,
            history=self.history,
        )

    def cited_standard(self) -> None:
        """The report's 检验依据, when it names a standard, must be the one audited against."""
        cited = self.report.field("检验依据")
        if not cited or not self.standard.name[:1].isalpha():
            return  # no basis given, or a standard known only by its file name

        def bare(text: str) -> str:
            return re.sub(r"[\s—–\-_/]", "", text).upper()

        if bare(self.standard.name) not in bare(cited):
            params = {"cited": cited, "standard": self.standard.name}
            self.add(
                "inconsistent",
                "检验依据",
                "",
                "wrong_standard",
                params,
                measured=cited,
                limit=self.standard.name,
            )

    def required_fields(self) -> None:
        clause = self.standard.required_clause
        for item in self.standard.required:
            value = self.report.field(item)
            if value is None or not value.strip():
                self.add(
                    "incomplete", item, clause, "field_missing", {"item": item, "cite": self.cite(clause)},
                    topics=("检验报告完整性", "报告完整性", item), words=f"{item} 未填写 缺失 报告要素",
                )  # fmt: skip

    def coverage(self, columns: list[Column], items: tuple[str, ...], sampled: bool) -> None:
        """Every item the standard inspects this way has its columns (one per part of a two-part rule)."""
        clause = self.standard.sampling.clause if sampled else self.standard.piece_clause
        record = ("抽样检验记录", "sampling record") if sampled else ("逐件检验记录", "per-piece record")
        bound = {(c.rule, part) for c in columns for part in parts_of(c.label) or c.rule.parts or {""}}
        for item in items:
            for rule in (r for r in self.standard.rules if item in r.title or r.title in item):
                for part in sorted(rule.parts) if len(rule.parts) > 1 else [""]:
                    if (rule, part) in bound or (not part and any(c.rule is rule for c in columns)):
                        continue
                    label = (
                        f"{part}{rule.feature}" if part else rule.subject if len(rule.subject) <= 16 else item
                    )
                    params: dict[str, Any] = {
                        "record": record[0],
                        "record_en": record[1],
                        "item": label,
                        "cite": self.cite(clause),
                    }
                    self.add("incomplete", label, clause, "column_missing", params)

    def judge(self, column: Column, cell: str, piece: int | None, sample: int | None) -> _Failure | None:
        """Judge one value; a missing, unreadable or out-of-limit one becomes a finding."""
        rule, label, cell = column.rule, column.label, cell.strip()
        where = self.where(piece, sample)
        at: dict[str, Any] = {"piece": piece, "sample": sample}
        if cell in _MISSING:
            self.add("incomplete", label, rule.clause, "value_missing", {**where, "item": label}, **at)
            return None
        topics = (rule.title, label, rule.feature or "")
        if rule.qualitative:
            if _CONFORMING.match(cell) and not cell.startswith("不"):
                return None
            params: dict[str, Any] = {
                **where,
                "item": label,
                "measured": cell,
                "cite": self.cite(rule.clause),
            }
            self.add(
                "out_of_limit", label, rule.clause, "out_of_limit_text", params,
                topics=topics, words=f"{label} {cell} {rule.text}", measured=cell, limit=rule.text, **at,
            )  # fmt: skip
            return _Failure(column, cell, None)
        try:
            value = Decimal(cell.replace(",", ""))
            if not value.is_finite():
                raise InvalidOperation
        except InvalidOperation:
            params = {**where, "item": label, "measured": cell}
            self.add("incomplete", label, rule.clause, "value_unreadable", params, measured=cell, **at)
            return None
        limit = column.limit
        if limit is None or limit.accepts(value):
            return None
        side = limit.side(value)
        note = rule.notes.get(side, "")
        params = {
            **where,
            "item": label,
            "measured": _plain(value),
            "unit": f" {column.unit}" if column.unit else "",
            "limit": limit.text(),
            "cite": self.cite(rule.clause),
            "side": "，偏低" if side == "low" else "，偏高",
            "side_en": ", too low" if side == "low" else ", too high",
            "note": (f" ({note})" if self.lang == "en" else f"（{note}）") if note else "",
        }
        self.add(
            "out_of_limit", label, rule.clause, "out_of_limit", params,
            topics=topics, words=f"{label} {_SIDE_WORDS[side]} {note}", trend=(rule.feature, side),
            measured=_plain(value), limit=limit.text(), unit=column.unit, **at,
        )  # fmt: skip
        return _Failure(column, _plain(value), side)

    def judge_row(self, columns: list[Column], row: tuple[str, ...], piece: int | None, sample: int | None,
                  key: int) -> list[_Failure]:  # fmt: skip
        """Judge every value of a row; remember the failures per item under *key*."""
        failures = [f for c in columns if (f := self.judge(c, _cell(row, c.index), piece, sample))]
        for failure in failures:
            self.by_item[failure.column.label][key].append(failure)
        return failures

    def pieces(self, lot: int | None, columns: list[Column]) -> _Judged:
        """The per-piece record: every value, every verdict, the piece count and the conclusion's."""
        record, clause = self.report.pieces, self.standard.piece_clause
        self.coverage(columns, self.standard.piece_items, sampled=False)
        key = record.column("序号", "件号", "编号")
        verdict = next((i for i, h in enumerate(record.header) if "结论" in h or "判定" in h), None)
        judged = _Judged()
        for row in record.rows:
            piece = _number(_cell(row, key))
            if piece is None:
                continue
            judged.numbers.append(piece)
            if failures := self.judge_row(columns, row, piece, None, piece):
                judged.failed[piece] = failures
            if reported := _cell(row, verdict).strip():
                self.check_verdict(piece, reported, failures)
        count = len(judged.numbers)
        if lot is not None and count < lot:
            params: dict[str, Any] = {"lot": lot, "count": count, "cite": self.cite(clause)}
            self.add("incomplete", "逐件检验记录", clause, "pieces_missing", params)
        elif lot is not None and count > lot:
            self.add("count_mismatch", "逐件检验记录", clause, "pieces_extra", {"lot": lot, "count": count})
        self.check_piece_counts(count, sorted(judged.failed))
        return judged

    def samples(self, pieces: set[int], columns: list[Column]) -> _Judged:
        """The sample record: every value, each sample's piece, the declared size."""
        record: Record | None = self.report.samples
        clause = self.standard.sampling.clause
        judged = _Judged()
        if record is None:
            if self.standard.sample_items:
                params: dict[str, Any] = {
                    "cite": self.cite(clause),
                    "items": self.join(self.standard.sample_items),
                }
                self.add("incomplete", "抽样检验记录", clause, "no_samples", params)
            return judged
        self.coverage(columns, self.standard.sample_items, sampled=True)
        number, of_piece = record.column("样本序号"), record.column("件号", "序号")
        for position, row in enumerate(record.rows, 1):
            sample = _number(_cell(row, number)) or position
            piece = _number(_cell(row, of_piece))
            judged.numbers.append(sample)
            if piece is not None and pieces and piece not in pieces:
                params = {"sample": sample, "piece": piece}
                self.add("inconsistent", "件号", clause, "sample_unknown", params, sample=sample, piece=piece)
            key = piece if piece is not None else -position
            if failures := self.judge_row(columns, row, piece, sample, key):
                judged.failed[sample] = failures
        declared = self.report.declared_sample_size
        if declared is not None and declared != len(record.rows):
            params = {"declared": declared, "count": len(record.rows)}
            self.add("count_mismatch", "样本量", clause, "sample_declared", params)
        return judged

    def check_verdict(self, piece: int, reported: str, failures: list[_Failure]) -> None:
        clause = self.standard.verdict_clause
        says_fail = "不合格" in reported
        if failures and not says_fail:
            values = [
                f"{f.column.label} {f.measured}{' ' + f.column.unit if f.column.unit and f.side else ''}"
                for f in failures
            ]
            reasons = self.join(values) + (" out of limit" if self.lang == "en" else " 超差")
            first = failures[0]
            params: dict[str, Any] = {
                "piece": piece,
                "reported": reported,
                "reasons": reasons,
                "cite": self.cite(clause),
            }
            self.add(
                "verdict_mismatch", "单件结论", clause, "verdict_pass", params,
                topics=(first.column.rule.title, first.column.label),
                words=f"{first.column.label} {_SIDE_WORDS.get(first.side or '', '')}",
                trend=(first.column.rule.feature, first.side), piece=piece, measured=reported, limit="不合格",
            )  # fmt: skip
        elif says_fail and not failures:
            params = {"piece": piece, "reported": reported}
            self.add(
                "verdict_mismatch",
                "单件结论",
                clause,
                "verdict_fail",
                params,
                piece=piece,
                measured=reported,
                limit="合格",
            )

    def check_piece_counts(self, count: int, failed: list[int]) -> None:
        found = re.search(
            r"逐件[^。\n]*?(?<!不)合格\s*(\d+)\s*件[^。\n]*?不合格\s*(\d+)\s*件", self.report.conclusion
        )
        if not found:
            return
        reported = (int(found.group(1)), int(found.group(2)))
        computed = (count - len(failed), len(failed))
        if reported != computed:
            params: dict[str, Any] = {"r_pass": reported[0], "r_fail": reported[1], "c_pass": computed[0], "c_fail": computed[1],
                      "pieces": self.join(failed) or "-"}  # fmt: skip
            measured, limit = "/".join(map(str, reported)), "/".join(map(str, computed))
            clause = self.standard.verdict_clause
            self.add(
                "count_mismatch",
                "逐件检验结论",
                clause,
                "pieces_count",
                params,
                measured=measured,
                limit=limit,
            )

    def decide(
        self, lot: int | None, required: int | None, ac_re: tuple[int, int] | None, samples: _Judged
    ) -> str | None:
        """The lot decision from Ac/Re; findings where the sample or the report's decision is wrong."""
        plan, clause = self.standard.sampling.clause, self.standard.sampling.decision_clause
        failed = sorted(samples.failed)
        found = re.search(r"样本\s*(\d+)\s*件[，,]\s*不合格\s*(\d+)\s*件", self.report.conclusion)
        if found and int(found.group(2)) != len(failed):
            params: dict[str, Any] = {
                "reported": found.group(2),
                "computed": len(failed),
                "samples": self.join(failed) or "-",
            }
            self.add("count_mismatch", "抽样检验结论", clause, "sample_count", params,
                     measured=found.group(2), limit=str(len(failed)))  # fmt: skip
        if lot is None:
            return None  # the missing 批量 is already a finding
        if required is None or ac_re is None:
            self.add("sample_size", "样本量", plan, "lot_outside", {"lot": lot, "cite": self.cite(plan)})
            return UNDETERMINED
        ac, re_ = ac_re
        count, d = len(samples.numbers), len(failed)
        short = count < required
        if short:
            params = {
                "lot": lot,
                "required": required,
                "count": count,
                "cite": self.cite(plan),
            }
            self.add(
                "sample_size", "样本量", plan, "sample_size", params, measured=str(count), limit=str(required)
            )
        # Too few samples can still reject (failures already reach Re), never accept.
        computed = REJECT if d >= re_ else UNDETERMINED if short or d > ac else ACCEPT
        reported = self.reported
        if reported is None:
            self.add("incomplete", "批判定", clause, "decision_missing", {"cite": self.cite(clause)})
        elif reported != computed:
            items = {f.column.label for fs in samples.failed.values() for f in fs}
            names = DECISION_EN if self.lang == "en" else DECISION_ZH
            extra = short and computed != REJECT
            params = {
                "reported_zh": DECISION_ZH[reported],
                "reported_en": DECISION_EN[reported], "computed_zh": DECISION_ZH[computed],
                "computed_en": DECISION_EN[computed], "cite": self.cite(clause), "n": required, "ac": ac,
                "re": re_, "d": d, "extra": f"，且样本量不足 {required}" if extra else "",
                "extra_en": f", and the sample is short of {required}" if extra else "",
            }  # fmt: skip
            self.add(
                "batch_decision", "批判定", clause, "decision", params,
                topics=tuple(items), words=" ".join(items) + " 不合格",
                measured=names[reported], limit=names[computed],
            )  # fmt: skip
        return computed

    def escalations(self) -> None:
        if self.standard.escalation is None:
            return
        threshold, action, clause = self.standard.escalation
        told = action.lower() in self.report.text.lower()
        for item, by_piece in self.by_item.items():
            if len(by_piece) < threshold:
                continue
            rule = next(iter(by_piece.values()))[0].column.rule
            sides = {f.side for failures in by_piece.values() for f in failures}
            side = next(iter(sides)) if len(sides) == 1 else None
            params: dict[str, Any] = {
                "item": item, "count": len(by_piece), "pieces": self.join(p for p in sorted(by_piece) if p > 0),
                "cite": self.cite(clause), "threshold": threshold, "action": action,
                "told": "" if told else "；报告未提及",
                "told_en": "" if told else "; the report does not mention it",
            }  # fmt: skip
            self.add(
                "escalation", item, clause, "escalation", params,
                topics=(rule.title, item, rule.feature or ""), words=f"{item} {_SIDE_WORDS.get(side or '', '')}",
                trend=(rule.feature, side), measured=str(len(by_piece)), limit=f"< {threshold}",
            )  # fmt: skip


def audit(report: Report, standard: Standard, history: History | None = None, lang: str = "zh") -> Audit:
    """Judge *report* against *standard*; link findings to cases of *history* when given."""
    return _Auditor(report, standard, history, lang).run()
