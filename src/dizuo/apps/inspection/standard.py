"""An inspection standard, read into rules the auditor can apply in code.

The standard is read from its own text, clause by clause, never from a table of numbers kept here:

- limits from the requirement sentences of chapter 4 ("…圆度应不大于 0.0008 mm（0.8 μm）",
  "…应在 0.0015 mm ～ 0.0030 mm 范围内（含端值）", "…均应为 HRC 60 ～ 64"), and per-model
  tolerances from a table with 型号 / 公称 / 上偏差 / 下偏差 columns;
- "不得有…" requirements (外观, 磁粉检测) as pass/fail items;
- which items are inspected piece by piece and which by sample (5.1), the sample size for each lot
  size and the Ac/Re numbers (5.1.2, 6.2), the elements a report must contain (6.3), and the
  escalation threshold (7: "3 件及以上不合格时，应启动 8D").

What the auditor knows beyond the text is vocabulary only: which words name a measured quantity
(圆度, 圆柱度, 粗糙度/Ra, 硬度 …) and which name a part (柱塞, 柱塞套/套孔/内孔), so that a report's
column "套孔圆柱度/μm" meets clause 4.2.3 "柱塞套内孔圆柱度". Every number comes from the standard,
as a :class:`~decimal.Decimal` parsed from its text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Literal

from dizuo.errors import InvalidRequest
from dizuo.kb.chunking import clause_of
from dizuo.kb.parsing import Block

__all__ = [
    "FEATURES",
    "Limit",
    "Rule",
    "SamplingPlan",
    "Standard",
    "StandardUnrecognized",
    "feature_of",
    "parse_standard",
    "parts_of",
    "split_unit",
]

# Measured quantities and the words that name them, most specific first (圆柱度 before 圆度).
FEATURES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("圆柱度", ("圆柱度",)),
    ("圆度", ("圆度",)),
    ("粗糙度", ("粗糙度", "Ra")),
    ("硬度", ("硬度", "HRC")),
    ("直径", ("直径",)),
    ("间隙", ("间隙",)),
    ("密封", ("密封",)),
    ("滑动", ("滑动",)),
    ("外观", ("外观",)),
    ("磁粉", ("磁粉",)),
)
PLUNGER, SLEEVE = "柱塞", "柱塞套"
_UNIT_ALIASES = {"µm": "μm", "um": "μm", "秒": "s", "毫米": "mm", "微米": "μm"}
_SCALE = {("mm", "μm"): Decimal(1000), ("μm", "mm"): Decimal("0.001")}
NUM = r"[-+]?\d+(?:\.\d+)?"
UNIT = r"(?:mm|μm|µm|um|s|MPa|℃|HRC|%)"
_LIMIT_PATTERNS = (
    # "…应不大于 0.0008 mm（0.8 μm）" / "…应不小于 …"
    re.compile(
        rf"(?P<subj>[^应]*)应(?P<op>不大于|不超过|不小于|不低于|≤|≥)\s*(?P<a>{NUM})\s*(?P<ua>{UNIT})?"
        rf"(?:\s*[（(]\s*(?P<alt>{NUM})\s*(?P<ualt>{UNIT})\s*[)）])?"
    ),
    # "…应在 0.0015 mm ～ 0.0030 mm 范围内（含端值）" / "…均应为 HRC 60 ～ 64"
    re.compile(
        rf"(?P<subj>[^应]*)应(?:在|为|是)?\s*(?P<pre>HRC)?\s*(?P<a>{NUM})\s*(?P<ua>{UNIT})?\s*"
        rf"[～~至—–]\s*(?P<b>{NUM})\s*(?P<ub>{UNIT})?"
    ),
)
_NOTE = re.compile(
    rf"(?P<dir>短于|低于|小于|长于|高于|大于)\s*(?P<v>{NUM})\s*{UNIT}?\s*判为(?P<note>[^；;。]+)"
)
_PLAN = re.compile(r"批量\s*(\d+)\s*[～~至—–-]\s*(\d+)\s*(?:件)?\s*时[，,]?\s*样本量为\s*(\d+)")
_ACRE = re.compile(r"样本量\s*(\d+)\s*时[，,]?\s*Ac\s*=\s*(\d+)\s*[、，,；;\s]\s*Re\s*=\s*(\d+)")
_REQUIRED = re.compile(r"报告应(?:包括|包含|载明)[：:](.+?)(?:[。；;]|$)")
_ESCALATE = re.compile(r"(\d+)\s*件及以上不合格[时的]*[，,]?\s*应(?:启动|进行|开展)\s*([0-9A-Za-z]+)")
_PIECE_ITEMS = re.compile(r"^(?:\d+(?:\.\d+)*\s*)?(.+?)为逐件检验")
_SAMPLE_ITEMS = re.compile(r"^(?:\d+(?:\.\d+)*\s*)?(.+?)按.*?抽样")
_CODE = re.compile(r"^([A-Z]{1,4}(?:/[A-Z]{1,4})?\s*\d+(?:\.\d+)*(?:\s*[—–-]\s*\d{4})?)")


# What an audit cannot do without, and how to say it is missing (zh, en).
_NEEDED = {
    "limits": (
        "技术要求中的限值（如“应不大于 0.0008 mm”或型号公差表）",
        "limits in its requirements (such as “应不大于 0.0008 mm” or a table of tolerances per model)",
    ),
    "sizes": (
        "批量与样本量的对应（如“批量 91～150 时样本量为 20”）",
        "sample sizes per lot size (such as “批量 91～150 时样本量为 20”)",
    ),
    "ac_re": (
        "各样本量的 Ac/Re（如“样本量 20 时 Ac=0、Re=1”）",
        "Ac/Re per sample size (such as “样本量 20 时 Ac=0、Re=1”)",
    ),
}


class StandardUnrecognized(InvalidRequest):
    default_code = "standard_unrecognized"

    def __init__(self, name: str, missing: str, missing_en: str) -> None:
        super().__init__(param="standard", name=name, missing=missing, missing_en=missing_en)


def split_unit(label: str) -> tuple[str, str | None]:
    """``"柱塞直径/mm"`` → ``("柱塞直径", "mm")``; ``"密封时间（s）"`` → ``("密封时间", "s")``."""
    label = label.strip()
    found = re.match(r"^(.*?)\s*(?:/\s*([^/\s]+)|[（(]\s*([^（()）]+?)\s*[)）])$", label)
    if not found or not found.group(1):
        return label, None
    unit = (found.group(2) or found.group(3)).strip()
    return found.group(1).strip(), _UNIT_ALIASES.get(unit, unit)


def feature_of(text: str) -> str | None:
    """The measured quantity *text* names (``"柱塞外圆圆柱度"`` → ``"圆柱度"``), else None."""
    for feature, words in FEATURES:
        if any(word in text for word in words):
            return feature
    return None


def parts_of(text: str) -> frozenset[str]:
    """Which part *text* speaks of: the plunger, the sleeve, both, or (empty) the pair as a whole."""
    both = "柱塞与柱塞套" in text or "柱塞和柱塞套" in text
    sleeve = both or any(word in text for word in ("柱塞套", "套孔", "内孔", "套筒"))
    plunger = both or "外圆" in text or ("柱塞" in text.replace("柱塞套", ""))
    return frozenset(p for p, present in ((PLUNGER, plunger), (SLEEVE, sleeve)) if present)


@dataclass(frozen=True, slots=True)
class Limit:
    """Allowed values, ends included unless said otherwise: ``low ≤ x ≤ high`` in *unit*."""

    low: Decimal | None
    high: Decimal | None
    unit: str | None
    inclusive: bool = True

    def accepts(self, value: Decimal) -> bool:
        if self.low is not None and (value < self.low or (not self.inclusive and value == self.low)):
            return False
        return not (
            self.high is not None and (value > self.high or (not self.inclusive and value == self.high))
        )

    def side(self, value: Decimal) -> Literal["low", "high"]:
        """``"low"`` or ``"high"``: which end *value* is beyond."""
        return "low" if self.low is not None and value <= self.low else "high"

    def in_unit(self, unit: str | None) -> Limit | None:
        """This limit in *unit* (mm ↔ μm), or None when the units cannot be compared."""
        if unit == self.unit or unit is None or self.unit is None:
            return self
        scale = _SCALE.get((self.unit, unit))
        if scale is None:
            return None
        return replace(
            self,
            low=None if self.low is None else (self.low * scale).normalize(),
            high=None if self.high is None else (self.high * scale).normalize(),
            unit=unit,
        )

    def text(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        if self.low is not None and self.high is not None:
            return f"{_plain(self.low)}～{_plain(self.high)}{unit}"
        if self.high is not None:
            return f"≤ {_plain(self.high)}{unit}"
        return f"≥ {_plain(self.low)}{unit}" if self.low is not None else ""


def _plain(value: Decimal) -> str:
    return format(value, "f")


@dataclass(frozen=True, slots=True, eq=False)  # compared by identity: one object per clause
class Rule:
    """One requirement: what it measures, of which part, and what is allowed."""

    clause: str
    title: str  # the heading of its section: "几何公差", "密封性"
    subject: str  # the sentence's subject: "柱塞外圆圆度"
    feature: str | None
    parts: frozenset[str]
    limit: Limit | None = None  # None: a pass/fail ("不得有…") requirement, or per model
    by_model: dict[str, Limit] = field(default_factory=dict)
    text: str = ""  # the requirement as the standard words it
    notes: dict[str, str] = field(default_factory=dict)  # "low"/"high" → "泄漏超差"

    @property
    def qualitative(self) -> bool:
        return self.limit is None and not self.by_model

    def limit_for(self, model: str | None) -> Limit | None:
        if self.by_model:
            return self.by_model.get(model or "")
        return self.limit


@dataclass(frozen=True, slots=True)
class SamplingPlan:
    clause: str  # where the sample sizes are (5.1.2)
    sizes: tuple[tuple[int, int, int], ...]  # (lot from, lot to, sample size)
    decision_clause: str  # where Ac/Re are (6.2)
    ac_re: dict[int, tuple[int, int]]

    def sample_size(self, lot: int) -> int | None:
        return next((n for low, high, n in self.sizes if low <= lot <= high), None)


@dataclass(frozen=True, slots=True)
class Standard:
    name: str  # "Q/HJ 017—2024" or the file name
    models: tuple[str, ...]
    rules: tuple[Rule, ...]
    piece_items: tuple[str, ...]  # 5.1.1: inspected 100 %
    piece_clause: str
    sample_items: tuple[str, ...]
    sampling: SamplingPlan
    required: tuple[str, ...]  # 6.3: 报告编号, 产品型号 … 审核人签字
    required_clause: str
    verdict_clause: str  # 6.1: any item failing makes the piece nonconforming
    escalation: tuple[int, str, str] | None  # (3, "8D", "7")

    def cite(self, clause: str, lang: str = "zh") -> str:
        """``"Q/HJ 017—2024 第 4.6 条"`` (a bare chapter number is a 章), or ``"… clause 4.6"``."""
        if not clause[:1].isdigit():
            return f"{self.name} {clause}".strip()
        if lang == "en":
            return f"{self.name} {'clause' if '.' in clause else 'chapter'} {clause}"
        return f"{self.name} 第 {clause} {'条' if '.' in clause else '章'}"


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"[。；;\n]", text) if s.strip()]


def _decimal(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def _unit(text: str | None) -> str | None:
    return None if text is None else _UNIT_ALIASES.get(text, text)


def _limit_rule(sentence: str, clause: str, title: str) -> Rule | None:
    for pattern in _LIMIT_PATTERNS:
        found = pattern.search(sentence)
        if not found:
            continue
        subject = found.group("subj").strip(" ，,")
        feature = feature_of(subject) or feature_of(title)
        if feature is None:
            return None
        groups = found.groupdict()
        unit = _unit(groups.get("ua") or groups.get("ub") or groups.get("pre"))
        a = Decimal(found.group("a"))
        if groups.get("b") is not None:
            limit = Limit(a, Decimal(groups["b"]), unit, inclusive="不含端值" not in sentence)
        elif groups["op"] in ("不小于", "不低于", "≥"):
            limit = Limit(a, None, unit)
        else:
            limit = Limit(None, a, unit)
        text = sentence[found.start() :].strip()
        return Rule(clause, title, subject, feature, parts_of(subject or title), limit=limit, text=text)
    if "不得有" in sentence or "不得出现" in sentence or "不允许" in sentence:
        subject = sentence.split("应", 1)[0] if "应" in sentence else title
        feature = feature_of(title) or feature_of(sentence)
        if feature is None:
            return None
        return Rule(clause, title, title, feature, parts_of(subject), text=sentence)
    return None


def _model_table(block: Block, clause: str, title: str) -> Rule | None:
    header = [split_unit(h) for h in block.header]
    names = [name for name, _ in header]

    def column(word: str) -> int | None:
        return next((i for i, name in enumerate(names) if word in name), None)

    model, nominal, upper, lower = column("型号"), column("公称"), column("上偏差"), column("下偏差")
    feature = feature_of(title) or feature_of(" ".join(names))
    if None in (model, nominal, upper, lower) or feature is None:
        return None
    assert model is not None and nominal is not None and upper is not None and lower is not None
    unit = header[nominal][1]
    by_model: dict[str, Limit] = {}
    for row in block.rows:
        try:
            base = Decimal(row[nominal])
            by_model[row[model].strip()] = Limit(base + Decimal(row[lower]), base + Decimal(row[upper]), unit)
        except (ArithmeticError, IndexError):
            continue
    if not by_model:
        return None
    return Rule(clause, title, title, feature, parts_of(title), by_model=by_model, text=f"{title}（表）")


def _items(text: str) -> tuple[str, ...]:
    return tuple(i.strip() for i in re.split(r"[、，,]|和|及", text) if i.strip())


def _required(text: str) -> tuple[str, ...]:
    out: list[str] = []
    for item in re.split(r"[、，,]", text):
        item = item.strip()
        if not item or "实测值" in item:  # "全部检验项目的实测值与结论": the tables, checked apart
            continue
        joined = re.match(r"^(.+?)与(.+?)(签字|签名|签章)$", item)
        if joined:
            out += [joined.group(1) + joined.group(3), joined.group(2) + joined.group(3)]
        else:
            out.append(item)
    return tuple(out)


def parse_standard(blocks: list[Block], name: str) -> Standard:
    """Read the rules of the standard in *blocks* (from :func:`dizuo.kb.formats.parse_document`).

    Raises :class:`StandardUnrecognized` naming what the text lacks (limits, the sampling plan …).
    """
    code = None
    clause, title = "", ""
    rules: list[Rule] = []
    models: list[str] = []
    sizes: list[tuple[int, int, int]] = []
    ac_re: dict[int, tuple[int, int]] = {}
    plan_clause = decision_clause = piece_clause = required_clause = verdict_clause = ""
    piece_items: tuple[str, ...] = ()
    sample_items: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    escalation: tuple[int, str, str] | None = None
    for block in blocks:
        if block.kind == "heading":
            if code is None:
                found = _CODE.match(block.text.strip())
                code = found.group(1) if found else None
            number = clause_of(block.text, heading=True)
            if number:
                clause = number
                title = block.text.strip()[len(number) :].strip(" 　.、")
            continue
        if block.kind == "table":
            if rule := _model_table(block, clause, title):
                rules.append(rule)
                models += [m for m in rule.by_model if m not in models]
            continue
        for line in block.text.split("\n"):
            line = line.strip().lstrip("-*• ")
            own = clause_of(line) or clause
            body = line[len(own) :].strip() if clause_of(line) else line
            for sentence in _sentences(body):
                if (note := _NOTE.search(sentence)) and rules and rules[-1].clause == own:
                    side = "low" if note.group("dir") in ("短于", "低于", "小于") else "high"
                    rules[-1] = replace(
                        rules[-1], notes={**rules[-1].notes, side: note.group("note").strip()}
                    )
                    continue
                if not _PLAN.search(sentence) and (rule := _limit_rule(sentence, own, title)):
                    rules.append(rule)
            for low, high, n in _PLAN.findall(line):
                sizes.append((int(low), int(high), int(n)))
                plan_clause = own
                if (found := _SAMPLE_ITEMS.search(body)) and not sample_items:
                    sample_items = _items(found.group(1))
            for n, ac, re_ in _ACRE.findall(line):
                ac_re[int(n)] = (int(ac), int(re_))
                decision_clause = own
            if (found := _PIECE_ITEMS.search(body)) and not piece_items:
                piece_items, piece_clause = _items(found.group(1)), own
            if found := _REQUIRED.search(line):
                required, required_clause = _required(found.group(1)), own
            if "判为不合格" in line and "任一" in line:
                verdict_clause = own
            if found := _ESCALATE.search(line):
                escalation = (int(found.group(1)), found.group(2), own)
    present = {"limits": bool(rules), "sizes": bool(sizes), "ac_re": bool(ac_re)}
    missing = [texts for key, texts in _NEEDED.items() if not present[key]]
    if missing:
        raise StandardUnrecognized(
            name, "、".join(zh for zh, _ in missing), "; ".join(en for _, en in missing)
        )
    return Standard(
        name=code or name,
        models=tuple(models),
        rules=tuple(rules),
        piece_items=piece_items,
        piece_clause=piece_clause,
        sample_items=sample_items,
        sampling=SamplingPlan(plan_clause, tuple(sizes), decision_clause, ac_re),
        required=required,
        required_clause=required_clause,
        verdict_clause=verdict_clause or decision_clause,
        escalation=escalation,
    )
