"""Past quality problems (8D summaries), and which of them a finding resembles.

A case is a heading with a case number (``案例 QD-2022-031 密封时间偏短``) followed by ``现象：``,
``关联项目：``, ``根本原因：`` … lines, or a row of a table with such columns. A finding is linked to
the cases whose 关联项目 name its item. They are ranked first by direction (a case that says the
same quantity was too low, for a value that is too low), then by BM25 over the case's symptom and
root cause (the knowledge bases' own index and jieba terms): a short sealing time finds 「密封时间偏短」
before 「柱塞卡滞」 (sealing too long), and a clearance over its upper limit finds the case whose cause
was exactly that.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dizuo.apps.inspection.standard import FEATURES, feature_of
from dizuo.kb.index import SearchIndex, terms
from dizuo.kb.parsing import Block
from dizuo.lazy import module

if TYPE_CHECKING:
    import numpy as np
else:
    np = module("numpy")  # loaded on first use (dizuo.lazy)

__all__ = ["Case", "History", "parse_history"]

_CASE_ID = re.compile(r"[A-Z]{1,6}-\d{2,4}-\d{2,4}")
_FIELD = re.compile(r"^[-*•·\s]*([^：:]{1,8})\s*[：:]\s*(.+?)\s*$")
_LABELS = {
    "现象": "symptom",
    "问题描述": "symptom",
    "关联项目": "related",
    "相关项目": "related",
    "根本原因": "root_cause",
    "原因": "root_cause",
    "纠正措施": "action",
    "措施": "action",
    "验证": "verification",
}
SHOWN = 3  # cases linked to one finding at most
_SIDES = (
    ("low", ("低于", "小于", "偏小", "偏低", "偏短", "下限", "下偏差", "不足")),
    ("high", ("高于", "大于", "超出", "偏大", "偏高", "偏长", "上限", "上偏差", "超过")),
)
_FEATURE_WORDS = re.compile("|".join(re.escape(w) for _, words in FEATURES for w in words))
_SIDE_WORDS = re.compile("|".join(re.escape(w) for _, words in _SIDES for w in words))


@dataclass(frozen=True, slots=True)
class Case:
    id: str
    title: str
    symptom: str = ""
    related: tuple[str, ...] = ()
    root_cause: str = ""
    action: str = ""
    verification: str = ""
    source: str = ""

    def public(self) -> dict[str, object]:
        return {
            "id": self.id,
            "title": self.title,
            "symptom": self.symptom,
            "related": list(self.related),
            "root_cause": self.root_cause,
            "action": self.action,
            "verification": self.verification,
            "source": self.source,
        }


def _case(case_id: str, title: str, values: dict[str, str], source: str) -> Case:
    related = tuple(r.strip() for r in re.split(r"[、，,；;/]", values.get("related", "")) if r.strip())
    return Case(
        case_id,
        title.strip(" ：:"),
        values.get("symptom", ""),
        tuple(r.rstrip("。") for r in related),
        values.get("root_cause", ""),
        values.get("action", ""),
        values.get("verification", ""),
        source,
    )


def parse_history(blocks: list[Block], source: str) -> list[Case]:
    """The cases in one defect-history document."""
    cases: list[Case] = []
    current: tuple[str, str] | None = None
    values: dict[str, str] = {}

    def close() -> None:
        if current is not None:
            cases.append(_case(*current, dict(values), source))
        values.clear()

    for block in blocks:
        if block.kind == "heading":
            found = _CASE_ID.search(block.text)
            close()
            current = (found.group(0), block.text[found.end() :]) if found else None
        elif block.kind == "paragraph" and current is not None:
            for line in block.text.split("\n"):
                if (found := _FIELD.match(line)) and found.group(1).strip() in _LABELS:
                    values[_LABELS[found.group(1).strip()]] = found.group(2)
        elif block.kind == "table":
            labels = [_LABELS.get(h.strip()) for h in block.header]
            id_column = next((i for i, h in enumerate(block.header) if "编号" in h or "案例" in h), None)
            title_column = next(
                (i for i, h in enumerate(block.header) if h.strip() in ("标题", "问题")), None
            )
            if id_column is None or "related" not in labels:
                continue
            for row in block.rows:
                found = _CASE_ID.search(row[id_column])
                if not found:
                    continue
                fields = {label: row[i] for i, label in enumerate(labels) if label and i < len(row)}
                title = row[title_column] if title_column is not None else fields.get("symptom", "")[:20]
                cases.append(_case(found.group(0), title, fields, source))
    close()
    return cases


def _facts(text: str) -> set[tuple[str, str]]:
    """What a case says went which way: ``{("密封", "low"), ("间隙", "high")}``. Within a sentence,
    each quantity takes the first direction word after it, before the next quantity."""
    facts: set[tuple[str, str]] = set()
    for sentence in re.split(r"[。；;\n]", text):
        mentions = list(_FEATURE_WORDS.finditer(sentence))
        for i, mention in enumerate(mentions):
            end = mentions[i + 1].start() if i + 1 < len(mentions) else len(sentence)
            side = _SIDE_WORDS.search(sentence, mention.end(), end)
            feature = feature_of(mention.group(0))
            if side and feature:
                word = side.group(0)
                facts.add((feature, next(name for name, words in _SIDES if word in words)))
    return facts


def _matches(related: Iterable[str], topics: Iterable[str]) -> bool:
    topics = [t for t in topics if len(t) >= 2]
    return any(t in r or r in t for r in related for t in topics)


class History:
    """The cases of every defect-history file given, searchable by a finding's item and words."""

    def __init__(self, cases: list[Case]) -> None:
        self.cases = cases
        self.by_id = {case.id: case for case in cases}
        self.facts = [_facts(f"{c.title}。{c.symptom}。{c.root_cause}") for c in cases]
        self.index = SearchIndex.build(
            version=0,
            ids=range(len(cases)),
            term_lists=(terms(f"{c.title} {c.symptom} {' '.join(c.related)} {c.root_cause}") for c in cases),
            vectors=np.zeros((len(cases), 1), dtype=np.float32),
            sources=[c.source for c in cases],
            clauses=[None] * len(cases),
            kinds=["text"] * len(cases),
        )

    def similar(
        self, topics: Iterable[str], words: str, feature: str | None = None, side: str | None = None
    ) -> list[str]:
        """Ids of the cases related to one of *topics* (at most 3): those that saw *feature* go the
        same *side* first, those that saw it go the other way last, then the most like *words*."""
        topics = list(topics)
        related = [i for i, case in enumerate(self.cases) if _matches(case.related, topics)]
        if not related:
            return []
        scores = self.index.bm25_scores(terms(words))
        other = {"low": "high", "high": "low"}.get(side or "")

        def direction(i: int) -> int:
            facts = self.facts[i]
            return 1 if (feature, side) in facts else -1 if (feature, other) in facts else 0

        related.sort(key=lambda i: (-direction(i), -float(scores[i]), i))
        return [self.cases[i].id for i in related[:SHOWN]]
