"""An audit for people: a self-contained HTML page a quality engineer reads, and a terminal summary.

The page has no script, no external style and no CDN: it opens from a mail attachment on a
workshop PC with no internet. Text from the report is autoescaped.
"""

from __future__ import annotations

import functools
from collections import Counter
from typing import TYPE_CHECKING, Any

from dizuo.apps.inspection.messages import DECISION_EN, DECISION_ZH, Kind

if TYPE_CHECKING:
    from jinja2 import Environment

__all__ = ["KINDS", "render_html", "render_text", "summary"]

KINDS: dict[str, tuple[str, str, str]] = {  # kind → (zh, en, group)
    Kind.INCOMPLETE: ("要素缺失", "incomplete", "error"),
    Kind.VERDICT_MISMATCH: ("单件结论错误", "wrong piece verdict", "error"),
    Kind.COUNT_MISMATCH: ("数量不符", "count mismatch", "error"),
    Kind.SAMPLE_SIZE: ("样本量不足", "sample too small", "error"),
    Kind.BATCH_DECISION: ("批判定错误", "wrong lot decision", "error"),
    Kind.INCONSISTENT: ("前后矛盾", "inconsistent", "error"),
    Kind.OUT_OF_LIMIT: ("超差", "out of limit", "product"),
    Kind.ESCALATION: ("需升级处理", "escalation", "action"),
}
_WORDS: dict[str, tuple[str, str]] = {
    "title": ("质检报告校核", "Inspection report audit"),
    "valid": ("报告有效", "Report valid"),
    "invalid": ("报告无效", "Report invalid"),
    "report": ("报告文件", "Report file"),
    "standard": ("检验依据", "Standard"),
    "model": ("产品型号", "Model"),
    "batch": ("批号", "Batch"),
    "lot": ("批量", "lot"),
    "pieces": ("逐件检验", "Pieces inspected"),
    "samples": ("抽样检验", "Samples"),
    "required": ("应抽", "required"),
    "nonconforming": ("不合格", "nonconforming"),
    "piece_no": ("件号", "Piece"),
    "sample": ("样本", "sample"),
    "decision": ("批判定", "Lot decision"),
    "reported": ("报告", "reported"),
    "computed": ("复核", "recomputed"),
    "findings": ("发现的问题", "Findings"),
    "kind": ("类别", "Kind"),
    "clause": ("条款", "Clause"),
    "item": ("项目", "Item"),
    "measured": ("实测/报告值", "Measured / reported"),
    "limit": ("要求", "Requirement"),
    "message": ("说明", "Explanation"),
    "cases": ("相似案例", "Similar cases"),
    "none": ("未发现问题。", "No findings."),
    "history": ("相似历史问题与根本原因", "Similar past problems and their root causes"),
    "symptom": ("现象", "Symptom"),
    "related": ("关联项目", "Related items"),
    "root_cause": ("根本原因", "Root cause"),
    "action": ("纠正措施", "Corrective action"),
    "verification": ("验证", "Verification"),
    "footer": (
        "所有数值判定均由程序按标准条款逐条计算（十进制精确比较），语言模型未参与任何判定。",
        "Every number was judged in code against the standard's clauses (exact decimal comparison); "
        "no language model decided anything.",
    ),
}
_PUNCTUATION = {
    "zh": {"colon": "：", "comma": "，", "semi": "；", "open": "（", "close": "）"},
    "en": {"colon": ": ", "comma": ", ", "semi": "; ", "open": " (", "close": ")"},
}


@functools.cache
def _templates() -> Environment:
    """The page's template, loaded with the first page (jinja2 stays out of a gateway process that
    renders none)."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    return Environment(
        loader=PackageLoader("dizuo.apps.inspection", "templates"),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _pick(pair: tuple[str, str], lang: str) -> str:
    return pair[1] if lang == "en" else pair[0]


def _decision(value: str | None, lang: str) -> str:
    return (DECISION_EN if lang == "en" else DECISION_ZH).get(value, str(value))


def summary(doc: dict[str, Any], lang: str = "zh") -> str:
    """One line: how many findings of which kind."""
    counts = Counter(f["kind"] for f in doc["findings"])
    if not counts:
        return _pick(_WORDS["none"], lang)
    sep = ", " if lang == "en" else "，"
    return sep.join(f"{_pick(KINDS[k][:2], lang)} {n}" for k, n in counts.items())


def render_html(doc: dict[str, Any], lang: str = "zh") -> str:
    """Return the audit *doc* (``Audit.public()``) as an HTML page in *lang*."""
    return (
        _templates()
        .get_template("audit.html")
        .render(
            doc=doc,
            lang=lang,
            sep=", " if lang == "en" else "、",
            p=_PUNCTUATION["en" if lang == "en" else "zh"],
            summary=summary(doc, lang),
            t=lambda key: _pick(_WORDS[key], lang),
            kind=lambda k: _pick(KINDS[k][:2], lang),
            group=lambda k: KINDS[k][2],
            decision=lambda d: _decision(d, lang),
        )
    )


def render_text(doc: dict[str, Any], lang: str = "zh") -> str:
    """Return the audit as lines for a terminal."""
    status = _pick(_WORDS["valid" if doc["valid"] else "invalid"], lang)
    decision = doc["batch_decision"]
    lines = [
        f"{doc['report_id'] or doc['report']}  {status}  ({summary(doc, lang)})",
        f"{_pick(_WORDS['decision'], lang)}: {_pick(_WORDS['reported'], lang)} "
        f"{_decision(decision['reported'], lang)} / "
        f"{_pick(_WORDS['computed'], lang)} {_decision(decision['computed'], lang)}",
    ]
    for f in doc["findings"]:
        refs = f"  [{', '.join(f['root_cause_refs'])}]" if f["root_cause_refs"] else ""
        lines.append(f"- [{_pick(KINDS[f['kind']][:2], lang)}] {f['clause']} {f['message']}{refs}")
    return "\n".join(lines)
