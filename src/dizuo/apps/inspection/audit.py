"""The audit: a report judged against a standard, in code, with every number a Decimal.

Each check states facts (``messages``: which piece, what was measured, what the standard allows),
each a finding of a :class:`~dizuo.apps.inspection.messages.Kind`; ``messages`` words them in the
reader's language. A report is ``valid`` when it has none of the kinds that say the report itself is
wrong (:data:`REPORT_ERRORS`): it is complete and its verdicts, counts and decision are what its own
numbers give. Nonconforming values a report recorded correctly, and escalations, do not make it
invalid; they are findings a quality engineer acts on.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from dizuo.apps.inspection import messages as said
from dizuo.apps.inspection.columns import Column, bind
from dizuo.apps.inspection.history import History
from dizuo.apps.inspection.messages import ACCEPT, REJECT, UNDETERMINED, Fact, Kind, Side, Where
from dizuo.apps.inspection.report import Record, Report
from dizuo.apps.inspection.standard import Standard, parts_of
from dizuo.errors import Lang

__all__ = ["REPORT_ERRORS", "Audit", "Finding", "Kind", "audit"]

REPORT_ERRORS = frozenset(
    {
        Kind.INCOMPLETE,
        Kind.VERDICT_MISMATCH,
        Kind.COUNT_MISMATCH,
        Kind.SAMPLE_SIZE,
        Kind.BATCH_DECISION,
        Kind.INCONSISTENT,
    }
)
_DECISIONS = {"接收": ACCEPT, "拒收": REJECT, "不接收": REJECT}
_MISSING = ("", "-", "—", "--", "/", "／", "N/A", "NA", "无数据")
# Words past cases use for a value that went one way; they help BM25 rank the cases.
_SIDE_WORDS = {"low": "低于 下限 偏低 偏短 偏小 超下偏差", "high": "高于 上限 超出 偏大 偏长 超上偏差"}

# What the report's text is read with.
CONFORMING = re.compile(r"^(合格|正常|通过|良好|OK|无|未见|未发现)")  # a pass/fail item that passed
NUMBER = re.compile(r"\d+")
DECISION = re.compile(r"批?判定\s*[：:为]?\s*(接收|拒收|不接收)")  # the conclusion's lot decision
PIECE_COUNTS = re.compile(r"逐件[^。\n]*?(?<!不)合格\s*(\d+)\s*件[^。\n]*?不合格\s*(\d+)\s*件")
SAMPLE_COUNTS = re.compile(r"样本\s*(\d+)\s*件[，,]\s*不合格\s*(\d+)\s*件")
SEPARATORS = re.compile(r"[\s—–\-_/]")  # ignored when a cited standard's name is compared


@dataclass(frozen=True, slots=True)
class Finding:
    kind: Kind
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
            "kind": self.kind.value,
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


@dataclass(frozen=True, slots=True)
class At:
    """Where a finding is and what it measured against what (each shown beside the message)."""

    piece: int | None = None
    sample: int | None = None
    measured: str | None = None
    limit: str | None = None
    unit: str | None = None


@dataclass(frozen=True, slots=True)
class Lookup:
    """How a finding's past cases are found: their topics, words to rank them, and the trend
    (quantity, side) of a value that went one way."""

    topics: tuple[str, ...]
    words: str
    trend: tuple[str | None, Side | None] = (None, None)


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
    side: Side | None  # for numbers; None for pass/fail items


@dataclass
class _Judged:
    """One record judged: its rows' numbers and which of them failed on what."""

    numbers: list[int] = field(default_factory=list)  # piece (or sample) numbers, in order
    failed: dict[int, list[_Failure]] = field(default_factory=dict)


def _number(text: str) -> int | None:
    found = NUMBER.search(text or "")
    return int(found.group(0)) if found else None


def _cell(row: tuple[str, ...], index: int | None) -> str:
    return row[index] if index is not None and index < len(row) else ""


def _plain(value: Decimal) -> str:
    return format(value, "f")


class _Auditor:
    def __init__(self, report: Report, standard: Standard, history: History | None, lang: Lang) -> None:
        self.report = report
        self.standard = standard
        self.history = history
        self.lang = lang
        self.findings: list[Finding] = []
        self.model = report.field("产品型号") or report.field("型号")
        found = DECISION.search(report.conclusion)
        self.reported = _DECISIONS[found.group(1)] if found else None  # the conclusion's 接收/拒收
        # item → piece (or −sample position) → failures: what the escalation rule counts.
        self.by_item: dict[str, dict[int, list[_Failure]]] = defaultdict(lambda: defaultdict(list))

    def cite(self, clause: str) -> str:
        return self.standard.cite(clause, self.lang) if clause else self.standard.name

    def add(
        self, kind: Kind, item: str, clause: str, fact: Fact, at: At = At(), lookup: Lookup | None = None
    ) -> None:
        """Record a finding: *fact* worded in the audit's language, at *at*, with the past cases
        *lookup* finds."""
        refs: tuple[str, ...] = ()
        if self.history is not None and lookup is not None and lookup.topics:
            query = f"{lookup.words} {item} {self.model or ''}"
            refs = tuple(self.history.similar(lookup.topics, query, *lookup.trend))
        self.findings.append(
            Finding(
                kind,
                item,
                clause,
                fact.said(self.lang),
                piece=at.piece,
                sample=at.sample,
                measured=at.measured,
                limit=at.limit,
                unit=at.unit,
                root_cause_refs=refs,
            )
        )

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
            fact = said.ModelUnknown(
                self.model or "—", self.cite(rule.clause), tuple(rule.by_model), rule.title
            )
            self.add(Kind.INCONSISTENT, rule.title, rule.clause, fact)
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
            return SEPARATORS.sub("", text).upper()

        if bare(self.standard.name) not in bare(cited):
            fact = said.WrongStandard(cited, self.standard.name)
            self.add(Kind.INCONSISTENT, "检验依据", "", fact, At(measured=cited, limit=self.standard.name))

    def required_fields(self) -> None:
        clause = self.standard.required_clause
        for item in self.standard.required:
            value = self.report.field(item)
            if value is None or not value.strip():
                lookup = Lookup(("检验报告完整性", "报告完整性", item), f"{item} 未填写 缺失 报告要素")
                self.add(
                    Kind.INCOMPLETE, item, clause, said.FieldMissing(item, self.cite(clause)), lookup=lookup
                )

    def coverage(self, columns: list[Column], items: tuple[str, ...], sampled: bool) -> None:
        """Every item the standard inspects this way has its columns (one per part of a two-part rule)."""
        clause = self.standard.sampling.clause if sampled else self.standard.piece_clause
        bound = {(c.rule, part) for c in columns for part in parts_of(c.label) or c.rule.parts or {""}}
        for item in items:
            for rule in (r for r in self.standard.rules if item in r.title or r.title in item):
                for part in sorted(rule.parts) if len(rule.parts) > 1 else [""]:
                    if (rule, part) in bound or (not part and any(c.rule is rule for c in columns)):
                        continue
                    label = (
                        f"{part}{rule.feature}" if part else rule.subject if len(rule.subject) <= 16 else item
                    )
                    fact = said.ColumnMissing(sampled, label, self.cite(clause))
                    self.add(Kind.INCOMPLETE, label, clause, fact)

    def judge(self, column: Column, cell: str, piece: int | None, sample: int | None) -> _Failure | None:
        """Judge one value; a missing, unreadable or out-of-limit one becomes a finding."""
        rule, label, cell = column.rule, column.label, cell.strip()
        where = Where(piece, sample)
        if cell in _MISSING:
            self.add(Kind.INCOMPLETE, label, rule.clause, said.ValueMissing(where, label), At(piece, sample))
            return None
        topics = (rule.title, label, rule.feature or "")
        if rule.qualitative:
            if CONFORMING.match(cell) and not cell.startswith("不"):
                return None
            fact: Fact = said.OutOfLimitText(where, label, cell, self.cite(rule.clause))
            at = At(piece, sample, measured=cell, limit=rule.text)
            self.add(
                Kind.OUT_OF_LIMIT, label, rule.clause, fact, at, Lookup(topics, f"{label} {cell} {rule.text}")
            )
            return _Failure(column, cell, None)
        try:
            value = Decimal(cell.replace(",", ""))
            if not value.is_finite():
                raise InvalidOperation
        except InvalidOperation:
            fact = said.ValueUnreadable(where, label, cell)
            self.add(Kind.INCOMPLETE, label, rule.clause, fact, At(piece, sample, measured=cell))
            return None
        limit = column.limit
        if limit is None or limit.accepts(value):
            return None
        side: Side = limit.side(value)
        note = rule.notes.get(side, "")
        measured = _plain(value)
        fact = said.OutOfLimit(
            where, label, measured, column.unit, limit.text(), self.cite(rule.clause), side, note
        )
        at = At(piece, sample, measured=measured, limit=limit.text(), unit=column.unit)
        lookup = Lookup(topics, f"{label} {_SIDE_WORDS[side]} {note}", (rule.feature, side))
        self.add(Kind.OUT_OF_LIMIT, label, rule.clause, fact, at, lookup)
        return _Failure(column, measured, side)

    def judge_row(
        self, columns: list[Column], row: tuple[str, ...], piece: int | None, sample: int | None, key: int
    ) -> list[_Failure]:
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
            self.add(
                Kind.INCOMPLETE, "逐件检验记录", clause, said.PiecesMissing(lot, count, self.cite(clause))
            )
        elif lot is not None and count > lot:
            self.add(Kind.COUNT_MISMATCH, "逐件检验记录", clause, said.PiecesExtra(lot, count))
        self.check_piece_counts(count, sorted(judged.failed))
        return judged

    def samples(self, pieces: set[int], columns: list[Column]) -> _Judged:
        """The sample record: every value, each sample's piece, the declared size."""
        record: Record | None = self.report.samples
        clause = self.standard.sampling.clause
        judged = _Judged()
        if record is None:
            if self.standard.sample_items:
                fact: Fact = said.NoSamples(self.cite(clause), tuple(self.standard.sample_items))
                self.add(Kind.INCOMPLETE, "抽样检验记录", clause, fact)
            return judged
        self.coverage(columns, self.standard.sample_items, sampled=True)
        number, of_piece = record.column("样本序号"), record.column("件号", "序号")
        for position, row in enumerate(record.rows, 1):
            sample = _number(_cell(row, number)) or position
            piece = _number(_cell(row, of_piece))
            judged.numbers.append(sample)
            if piece is not None and pieces and piece not in pieces:
                fact = said.SampleUnknown(sample, piece)
                self.add(Kind.INCONSISTENT, "件号", clause, fact, At(piece=piece, sample=sample))
            key = piece if piece is not None else -position
            if failures := self.judge_row(columns, row, piece, sample, key):
                judged.failed[sample] = failures
        declared = self.report.declared_sample_size
        if declared is not None and declared != len(record.rows):
            self.add(Kind.COUNT_MISMATCH, "样本量", clause, said.SampleDeclared(declared, len(record.rows)))
        return judged

    def check_verdict(self, piece: int, reported: str, failures: list[_Failure]) -> None:
        clause = self.standard.verdict_clause
        says_fail = "不合格" in reported
        if failures and not says_fail:
            values = tuple(
                f"{f.column.label} {f.measured}{' ' + f.column.unit if f.column.unit and f.side else ''}"
                for f in failures
            )
            first = failures[0]
            lookup = Lookup(
                (first.column.rule.title, first.column.label),
                f"{first.column.label} {_SIDE_WORDS.get(first.side or '', '')}",
                (first.column.rule.feature, first.side),
            )
            fact: Fact = said.VerdictPass(piece, reported, values, self.cite(clause))
            at = At(piece, measured=reported, limit="不合格")
            self.add(Kind.VERDICT_MISMATCH, "单件结论", clause, fact, at, lookup)
        elif says_fail and not failures:
            fact = said.VerdictFail(piece, reported)
            self.add(
                Kind.VERDICT_MISMATCH, "单件结论", clause, fact, At(piece, measured=reported, limit="合格")
            )

    def check_piece_counts(self, count: int, failed: list[int]) -> None:
        found = PIECE_COUNTS.search(self.report.conclusion)
        if not found:
            return
        reported = (int(found.group(1)), int(found.group(2)))
        computed = (count - len(failed), len(failed))
        if reported != computed:
            fact = said.PiecesCount(*reported, *computed, tuple(failed))
            at = At(measured="/".join(map(str, reported)), limit="/".join(map(str, computed)))
            self.add(Kind.COUNT_MISMATCH, "逐件检验结论", self.standard.verdict_clause, fact, at)

    def decide(
        self, lot: int | None, required: int | None, ac_re: tuple[int, int] | None, samples: _Judged
    ) -> str | None:
        """The lot decision from Ac/Re; findings where the sample or the report's decision is wrong."""
        plan, clause = self.standard.sampling.clause, self.standard.sampling.decision_clause
        failed = sorted(samples.failed)
        found = SAMPLE_COUNTS.search(self.report.conclusion)
        if found and int(found.group(2)) != len(failed):
            fact: Fact = said.SampleCount(found.group(2), len(failed), tuple(failed))
            at = At(measured=found.group(2), limit=str(len(failed)))
            self.add(Kind.COUNT_MISMATCH, "抽样检验结论", clause, fact, at)
        if lot is None:
            return None  # the missing 批量 is already a finding
        if required is None or ac_re is None:
            self.add(Kind.SAMPLE_SIZE, "样本量", plan, said.LotOutside(lot, self.cite(plan)))
            return UNDETERMINED
        ac, re_ = ac_re
        count, d = len(samples.numbers), len(failed)
        short = count < required
        if short:
            fact = said.SampleSize(lot, required, count, self.cite(plan))
            self.add(Kind.SAMPLE_SIZE, "样本量", plan, fact, At(measured=str(count), limit=str(required)))
        # Too few samples can still reject (failures already reach Re), never accept.
        computed = REJECT if d >= re_ else UNDETERMINED if short or d > ac else ACCEPT
        reported = self.reported
        if reported is None:
            self.add(Kind.INCOMPLETE, "批判定", clause, said.DecisionMissing(self.cite(clause)))
        elif reported != computed:
            items = {f.column.label for fs in samples.failed.values() for f in fs}
            names = said.DECISION_EN if self.lang == "en" else said.DECISION_ZH
            fact = said.Decision(
                reported, computed, self.cite(clause), required, ac, re_, d, short and computed != REJECT
            )
            at = At(measured=names[reported], limit=names[computed])
            self.add(
                Kind.BATCH_DECISION,
                "批判定",
                clause,
                fact,
                at,
                Lookup(tuple(items), " ".join(items) + " 不合格"),
            )
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
            pieces = tuple(p for p in sorted(by_piece) if p > 0)
            fact = said.Escalation(item, len(by_piece), pieces, self.cite(clause), threshold, action, told)
            lookup = Lookup(
                (rule.title, item, rule.feature or ""),
                f"{item} {_SIDE_WORDS.get(side or '', '')}",
                (rule.feature, side),
            )
            at = At(measured=str(len(by_piece)), limit=f"< {threshold}")
            self.add(Kind.ESCALATION, item, clause, fact, at, lookup)


def audit(report: Report, standard: Standard, history: History | None = None, lang: Lang = "zh") -> Audit:
    """Judge *report* against *standard*; link findings to cases of *history* when given."""
    return _Auditor(report, standard, history, lang).run()
