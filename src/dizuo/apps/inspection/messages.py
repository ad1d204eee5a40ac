"""What the auditor finds, as facts, and how each fact is said in Chinese and English.

The checks in ``audit`` state facts (:class:`Fact` subclasses: which piece, what was measured, what
the standard allows); this module alone words them. A fact's fields are values, never phrases of one
language: the wording picks the language's words (偏低 / too low, the lists' separators, the
decision's name).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, ClassVar, Literal

from dizuo.errors import Lang

__all__ = [
    "ACCEPT",
    "DECISION_EN",
    "DECISION_ZH",
    "REJECT",
    "UNDETERMINED",
    "ColumnMissing",
    "Decision",
    "DecisionMissing",
    "Escalation",
    "Fact",
    "FieldMissing",
    "Kind",
    "LotOutside",
    "ModelUnknown",
    "NoSamples",
    "OutOfLimit",
    "OutOfLimitText",
    "PiecesCount",
    "PiecesExtra",
    "PiecesMissing",
    "SampleCount",
    "SampleDeclared",
    "SampleSize",
    "SampleUnknown",
    "Side",
    "ValueMissing",
    "ValueUnreadable",
    "VerdictFail",
    "VerdictPass",
    "Where",
    "WrongStandard",
    "joined",
]

ACCEPT, REJECT, UNDETERMINED = "accept", "reject", "undetermined"
DECISION_ZH = {ACCEPT: "接收", REJECT: "拒收", UNDETERMINED: "不可判定", None: "未写明"}
DECISION_EN = {ACCEPT: "accept", REJECT: "reject", UNDETERMINED: "undetermined", None: "not stated"}

Side = Literal["low", "high"]


class Kind(StrEnum):
    """What a finding says of the report."""

    INCOMPLETE = (
        "incomplete"  # a required element (6.3), a measured value or a piece is missing or unreadable
    )
    OUT_OF_LIMIT = "out_of_limit"  # a measured value outside its clause's limit (seen by the report or not)
    VERDICT_MISMATCH = "verdict_mismatch"  # a piece's 单件结论 disagrees with its values (6.1)
    COUNT_MISMATCH = "count_mismatch"  # the conclusion's counts disagree with the records
    SAMPLE_SIZE = "sample_size"  # fewer samples than the plan demands for the lot size (5.1.2)
    BATCH_DECISION = "batch_decision"  # the reported 接收/拒收 disagrees with Ac/Re (6.2)
    INCONSISTENT = "inconsistent"  # the report contradicts itself or the standard
    ESCALATION = "escalation"  # what the standard demands next (7: three or more → 8D)


def joined(values: Any, lang: Lang) -> str:
    """A list as the language writes one: 1、2、3 or 1, 2, 3."""
    return ("、" if lang == "zh" else ", ").join(map(str, values))


@dataclass(frozen=True, slots=True)
class Where:
    """A piece of the lot, or a sample (and the piece it is)."""

    piece: int | None
    sample: int | None = None

    def said(self, lang: Lang) -> str:
        if self.sample is not None:
            return (
                f"样本 {self.sample}（件号 {self.piece}）"
                if lang == "zh"
                else f"Sample {self.sample} (piece {self.piece})"
            )
        return f"件号 {self.piece} " if lang == "zh" else f"Piece {self.piece}"


@dataclass(frozen=True, slots=True)
class Fact:
    """Something the audit found; its class says which statement it is, its fields what it is about."""

    TEXT: ClassVar[tuple[str, str]]  # the statement in Chinese and in English

    def params(self, lang: Lang) -> dict[str, Any]:
        """The values the statement names, as *lang* writes them."""
        values = asdict(self)
        for name, value in values.items():
            if isinstance(value, Where) or name == "where":
                values[name] = getattr(self, name).said(lang)
            elif isinstance(value, tuple | list):
                values[name] = joined(value, lang) or "-"
        return values

    def said(self, lang: Lang) -> str:
        zh, en = self.TEXT
        return (zh if lang == "zh" else en).format(**self.params(lang))


@dataclass(frozen=True, slots=True)
class FieldMissing(Fact):
    TEXT = (
        "报告缺少“{item}”（{cite}）。缺少任一要素的报告视为无效，应退回补全。",
        "The report lacks '{item}' ({cite}); a report missing any element is invalid and goes back for completion.",
    )
    item: str
    cite: str


@dataclass(frozen=True, slots=True)
class ColumnMissing(Fact):
    TEXT = (
        "{record}缺少“{item}”的实测值（{cite}）。",
        "The {record} has no measured values for '{item}' ({cite}).",
    )
    sampled: bool  # the sampling record, or the per-piece one
    item: str
    cite: str

    def params(self, lang: Lang) -> dict[str, Any]:
        records = (
            ("抽样检验记录", "sampling record") if self.sampled else ("逐件检验记录", "per-piece record")
        )
        return {"record": records[0] if lang == "zh" else records[1], "item": self.item, "cite": self.cite}


@dataclass(frozen=True, slots=True)
class ValueMissing(Fact):
    TEXT = ("{where}的“{item}”没有实测值。", "{where} has no value for '{item}'.")
    where: Where
    item: str


@dataclass(frozen=True, slots=True)
class ValueUnreadable(Fact):
    TEXT = (
        "{where}的“{item}”实测值“{measured}”无法识别为数值。",
        "{where}: the value '{measured}' for '{item}' is not a number.",
    )
    where: Where
    item: str
    measured: str


@dataclass(frozen=True, slots=True)
class PiecesMissing(Fact):
    TEXT = (
        "批量 {lot} 件，逐件检验记录只有 {count} 件（{cite} 规定逐件检验）。",
        "The lot is {lot} pieces but the per-piece record has {count} ({cite}: every piece is inspected).",
    )
    lot: int
    count: int
    cite: str


@dataclass(frozen=True, slots=True)
class PiecesExtra(Fact):
    TEXT = (
        "逐件检验记录有 {count} 件，多于批量 {lot} 件。",
        "The per-piece record has {count} pieces, more than the lot of {lot}.",
    )
    lot: int
    count: int


@dataclass(frozen=True, slots=True)
class OutOfLimit(Fact):
    TEXT = (
        "{where}{item} {measured}{unit} 超出 {cite} 要求 {limit}{side}{note}。",
        "{where}: {item} {measured}{unit} is outside {cite}: {limit}{side}{note}.",
    )
    where: Where
    item: str
    measured: str
    unit: str | None
    limit: str
    cite: str
    side: Side
    note: str  # the standard's note on this side (the cause it names), or ""

    def params(self, lang: Lang) -> dict[str, Any]:
        zh = lang == "zh"
        return {
            "where": self.where.said(lang),
            "item": self.item,
            "measured": self.measured,
            "unit": f" {self.unit}" if self.unit else "",
            "limit": self.limit,
            "cite": self.cite,
            "side": ("，偏低" if self.side == "low" else "，偏高")
            if zh
            else (", too low" if self.side == "low" else ", too high"),
            "note": (f"（{self.note}）" if zh else f" ({self.note})") if self.note else "",
        }


@dataclass(frozen=True, slots=True)
class OutOfLimitText(Fact):
    TEXT = (
        "{where}{item}为“{measured}”，不符合 {cite} 要求。",
        "{where}: {item} is '{measured}', which {cite} does not allow.",
    )
    where: Where
    item: str
    measured: str
    cite: str


@dataclass(frozen=True, slots=True)
class VerdictPass(Fact):
    TEXT = (
        "件号 {piece} 报告判为“{reported}”，但{reasons}，按 {cite} 应判为不合格品。",
        "Piece {piece} is reported '{reported}', but {reasons}; by {cite} it is nonconforming.",
    )
    piece: int
    reported: str
    failed: tuple[str, ...]  # each failed value, as "item value unit"
    cite: str

    def params(self, lang: Lang) -> dict[str, Any]:
        reasons = joined(self.failed, lang) + (" 超差" if lang == "zh" else " out of limit")
        return {"piece": self.piece, "reported": self.reported, "reasons": reasons, "cite": self.cite}


@dataclass(frozen=True, slots=True)
class VerdictFail(Fact):
    TEXT = (
        "件号 {piece} 报告判为“{reported}”，但各项实测值均在要求之内。",
        "Piece {piece} is reported '{reported}', but every value is within its limit.",
    )
    piece: int
    reported: str


@dataclass(frozen=True, slots=True)
class PiecesCount(Fact):
    TEXT = (
        "结论写逐件检验合格 {r_pass} 件、不合格 {r_fail} 件；按实测值应为合格 {c_pass} 件、不合格 {c_fail} 件（件号 {pieces}）。",
        "The conclusion says {r_pass} pieces conforming and {r_fail} nonconforming; the values give {c_pass} and {c_fail} (pieces {pieces}).",
    )
    r_pass: int
    r_fail: int
    c_pass: int
    c_fail: int
    pieces: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class SampleCount(Fact):
    TEXT = (
        "结论写样本不合格 {reported} 件，抽样记录中不合格 {computed} 件（样本序号 {samples}）。",
        "The conclusion says {reported} nonconforming in the sample; the record has {computed} (samples {samples}).",
    )
    reported: str
    computed: int
    samples: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class SampleDeclared(Fact):
    TEXT = (
        "抽样记录标明样本量 {declared}，实有 {count} 行。",
        "The sampling record says a sample of {declared} but has {count} rows.",
    )
    declared: int
    count: int


@dataclass(frozen=True, slots=True)
class SampleSize(Fact):
    TEXT = (
        "批量 {lot} 件应抽样 {required} 件（{cite}），报告只抽了 {count} 件。",
        "A lot of {lot} needs a sample of {required} ({cite}); the report sampled {count}.",
    )
    lot: int
    required: int
    count: int
    cite: str


@dataclass(frozen=True, slots=True)
class LotOutside(Fact):
    TEXT = (
        "批量 {lot} 件不在 {cite} 抽样方案的批量范围内，无法确定样本量。",
        "A lot of {lot} is outside the lot sizes of {cite}; the sample size cannot be set.",
    )
    lot: int
    cite: str


@dataclass(frozen=True, slots=True)
class NoSamples(Fact):
    TEXT = (
        "报告没有抽样检验记录（{cite} 规定{items}按抽样检验）。",
        "The report has no sampling record ({cite}: {items} are inspected by sample).",
    )
    cite: str
    items: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Decision(Fact):
    TEXT = (
        "报告批判定“{reported}”，按 {cite} 应为“{computed}”：样本量 {n} 时 Ac={ac}、Re={re}，样本不合格 {d} 件{extra}。",
        "The report decides '{reported}'; by {cite} it should be '{computed}': for a sample of {n}, Ac={ac} and Re={re}, with {d} nonconforming{extra}.",
    )
    reported: str
    computed: str
    cite: str
    n: int
    ac: int
    re: int
    d: int
    short: bool  # the sample is short of n as well

    def params(self, lang: Lang) -> dict[str, Any]:
        names = DECISION_ZH if lang == "zh" else DECISION_EN
        extra = (
            (f"，且样本量不足 {self.n}" if lang == "zh" else f", and the sample is short of {self.n}")
            if self.short
            else ""
        )
        values = {name: getattr(self, name) for name in ("cite", "n", "ac", "re", "d")}
        return values | {"reported": names[self.reported], "computed": names[self.computed], "extra": extra}


@dataclass(frozen=True, slots=True)
class DecisionMissing(Fact):
    TEXT = (
        "报告没有写明批判定（接收/拒收）（{cite}）。",
        "The report states no lot decision (accept/reject) ({cite}).",
    )
    cite: str


@dataclass(frozen=True, slots=True)
class SampleUnknown(Fact):
    TEXT = (
        "样本序号 {sample} 的件号 {piece} 不在本批逐件检验记录中。",
        "Sample {sample} names piece {piece}, which is not in this lot's per-piece record.",
    )
    sample: int
    piece: int


@dataclass(frozen=True, slots=True)
class WrongStandard(Fact):
    TEXT = (
        "报告的检验依据为“{cited}”，与审核所用标准 {standard} 不一致。",
        "The report cites '{cited}' as its standard, not {standard}, the one it was audited against.",
    )
    cited: str
    standard: str


@dataclass(frozen=True, slots=True)
class ModelUnknown(Fact):
    TEXT = (
        "产品型号 {model} 不在 {cite} 的型号表中（{models}），{item}无法判定。",
        "The model {model} is not in the table of {cite} ({models}); {item} cannot be judged.",
    )
    model: str
    cite: str
    models: tuple[str, ...]
    item: str


@dataclass(frozen=True, slots=True)
class Escalation(Fact):
    TEXT = (
        "本批“{item}”有 {count} 件不合格（件号 {pieces}），达到 {cite}“{threshold} 件及以上”的规定，应启动 {action} 质量问题分析{told}。",
        "{count} pieces fail '{item}' in this lot (pieces {pieces}); {cite} requires the {action} analysis once {threshold} or more fail{told}.",
    )
    item: str
    count: int
    pieces: tuple[int, ...]
    cite: str
    threshold: int
    action: str
    told: bool  # the report mentions the action already

    def params(self, lang: Lang) -> dict[str, Any]:
        told = "" if self.told else ("；报告未提及" if lang == "zh" else "; the report does not mention it")
        values = {name: getattr(self, name) for name in ("item", "count", "cite", "threshold", "action")}
        return values | {"pieces": joined(self.pieces, lang), "told": told}
