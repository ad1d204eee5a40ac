"""Retrieval quality of a knowledge base: recall@k over questions with known answer locations.

A question set is JSON Lines: ``{"question", "source", "clause"}``, the document and clause that
hold the answer. A question counts as found when one of the top *k* passages comes from that
document and clause.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from dizuo.kb.index import Mode
from dizuo.kb.models import Models
from dizuo.kb.service import KnowledgeBases

__all__ = ["Question", "Recall", "load_questions", "recall"]


@dataclass(frozen=True, slots=True)
class Question:
    question: str
    source: str
    clause: str


@dataclass
class Recall:
    mode: str
    k: int
    found: int = 0
    total: int = 0
    missed: list[Question] = field(default_factory=list)

    @property
    def value(self) -> float:
        return self.found / self.total if self.total else 0.0


def load_questions(path: Path) -> list[Question]:
    questions = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            row = json.loads(line)
            try:
                questions.append(Question(row["question"], row["source"], str(row["clause"])))
            except KeyError as exc:
                raise ValueError(f"{path}:{number}: missing {exc}") from None
    return questions


async def recall(
    kbs: KnowledgeBases,
    org_id: str,
    name: str,
    questions: list[Question],
    models: Models,
    k: int = 5,
    mode: Mode = "hybrid",
) -> Recall:
    """Recall@*k* of the knowledge base *name* over *questions* in retrieval *mode*."""
    result = Recall(mode, k)
    for question in questions:
        passages = await kbs.query(org_id, name, question.question, models, k=k, mode=mode)
        result.total += 1
        if any(p.source == question.source and p.clause == question.clause for p in passages):
            result.found += 1
        else:
            result.missed.append(question)
    return result
