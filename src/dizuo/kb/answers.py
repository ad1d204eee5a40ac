"""Cited answers: a chat model answers from numbered passages and marks each claim ``[n]``.

- Whether the knowledge base holds the answer (``found``) is decided by retrieval, never by the
  model's text: a passage answers when the question is close enough to it (:func:`relevance`, at
  least :data:`MIN_RELEVANCE`). With none, no model is called and the answer says so.
- The model sees only those passages, each with its source and locator, and is told to cite them.
  Citations are the passages the answer actually marks, in order of first mention; a marker that
  names no passage is dropped, never invented.
- A model that cannot write the question's language (the embedded SmolLM2 and Chinese), or an
  answer that cites no passage or says it found nothing, gives way to an extractive answer: the
  passages themselves, cited. A user always gets either the knowledge base's own words or a cited
  answer, never a confident answer without sources.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dizuo.kb.index import Filters, terms
from dizuo.kb.models import Models
from dizuo.kb.service import KnowledgeBases, Passage

__all__ = [
    "MIN_RELEVANCE",
    "NOT_FOUND",
    "Answer",
    "ask",
    "build_messages",
    "cite",
    "extract",
    "language_of",
    "relevance",
]

# Measured on the project's 62 questions over its four policy documents against 20 off-topic ones
# (canteen hours, parking, leave …), with the embedded encoder: the best passage of every on-topic
# question scored at least 0.344, of every off-topic one at most 0.295 (docs/knowledge-bases.md).
MIN_RELEVANCE = 0.32
EXTRACTED = 3  # passages quoted by an extractive answer

NOT_FOUND = {
    "zh": "知识库中没有找到这个问题的答案。",
    "en": "The knowledge base does not contain the answer to this question.",
}
_MARK = re.compile(r"\[(\d{1,3})\]|［(\d{1,3})］|【(\d{1,3})】")
_CJK = re.compile(r"[\u3400-\u9fff]")

_SYSTEM = {
    "zh": (
        "你是知识库问答助手。只根据用户给出的编号资料回答，不使用资料以外的知识。"
        "每句结论后用方括号标注依据的资料编号，例如 [1] 或 [2][3]。"
        "资料中的数字、型号和条款号原样引用，不要换算或推测。"
        "如果资料不足以回答，只回答：{not_found}"
    ),
    "en": (
        "You answer questions from a knowledge base. Use only the numbered passages the user gives, "
        "no outside knowledge. After each claim, cite the passages it rests on in brackets, e.g. [1] "
        "or [2][3]. Quote numbers, model names and clause numbers exactly as written. If the passages "
        "do not answer the question, reply only: {not_found}"
    ),
}


_EXTRACTIVE = {
    "zh": {
        "language": "所选模型不能用中文作答，以下是知识库中与问题最相关的原文：",
        "uncited": "模型没有给出有出处的回答，以下是知识库中与问题最相关的原文：",
    },
    "en": {
        "language": "The chosen model cannot answer in English; these are the passages that answer the question:",
        "uncited": "The model gave no answer with sources; these are the passages that answer the question:",
    },
}


def relevance(question_terms: set[str], passage: Passage) -> float:
    """How well *passage* answers a question with *question_terms*: its cosine similarity, plus 0.2
    for each share of the question's words it contains. The words lift a short question that names
    the passage's subject ("硬度") but sits far from it in meaning; meaning keeps a question that
    shares no words with its answer."""
    if not question_terms:
        return passage.cosine
    shared = len(question_terms & set(terms(passage.text))) / len(question_terms)
    return passage.cosine + 0.2 * shared


def language_of(text: str) -> str:
    """ "zh" when the question has Chinese characters, else "en"."""
    return "zh" if _CJK.search(text) else "en"


def build_messages(question: str, passages: list[Passage]) -> list[dict[str, str]]:
    lang = language_of(question)
    lines = []
    for number, passage in enumerate(passages, start=1):
        where = (
            f"{passage.source}，{passage.locator}" if lang == "zh" else f"{passage.source}, {passage.locator}"
        )
        lines.append(
            f"[{number}]（{where}）\n{passage.text}"
            if lang == "zh"
            else f"[{number}] ({where})\n{passage.text}"
        )
    label = ("资料", "问题") if lang == "zh" else ("Passages", "Question")
    user = f"{label[0]}：\n" + "\n\n".join(lines) + f"\n\n{label[1]}：{question}"
    if lang == "en":
        user = user.replace("：", ":")
    return [
        {"role": "system", "content": _SYSTEM[lang].format(not_found=NOT_FOUND[lang])},
        {"role": "user", "content": user},
    ]


@dataclass(frozen=True, slots=True)
class Answer:
    answer: str
    citations: list[Passage]
    found: bool

    def public(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "found": self.found,
            "citations": [
                {
                    "n": number,
                    "source": p.source,
                    "locator": p.locator,
                    "text": p.text,
                    "clause": p.clause,
                    "page": p.page,
                }
                for number, p in self.citations_numbered()
            ],
        }

    def citations_numbered(self) -> list[tuple[int, Passage]]:
        return list(enumerate(self.citations, start=1))


def cite(question: str, text: str, passages: list[Passage]) -> Answer:
    """Turn the model's *text* into an answer whose markers are renumbered 1… over the passages it
    cites, in order of first mention; markers naming no passage are removed."""
    lang = language_of(question)
    text = text.strip()
    if not passages or not text or _says_not_found(text, lang):
        return Answer(NOT_FOUND[lang], [], False)
    order: list[int] = []
    for match in _MARK.finditer(text):
        number = int(next(g for g in match.groups() if g))
        if 1 <= number <= len(passages) and number not in order:
            order.append(number)
    renumber = {old: new for new, old in enumerate(order, start=1)}

    def replace(match: re.Match[str]) -> str:
        number = int(next(g for g in match.groups() if g))
        return f"[{renumber[number]}]" if number in renumber else ""

    return Answer(_MARK.sub(replace, text), [passages[n - 1] for n in order], True)


def _says_not_found(text: str, lang: str) -> bool:
    core = NOT_FOUND[lang].rstrip("。.")
    return text.rstrip("。. \n") == core or (len(text) <= len(core) + 10 and core in text)


def extract(question: str, passages: list[Passage], why: str) -> Answer:
    """An answer made of the passages themselves, each cited (*why*: "language" or "uncited")."""
    lang = language_of(question)
    quoted = passages[:EXTRACTED]
    body = "\n\n".join(f"[{n}] {p.text}" for n, p in enumerate(quoted, start=1))
    return Answer(f"{_EXTRACTIVE[lang][why]}\n\n{body}", quoted, True)


async def ask(
    kbs: KnowledgeBases,
    org_id: str,
    name: str,
    question: str,
    models: Models,
    model: str,
    k: int = 5,
    filters: Filters | None = None,
    writes: Callable[[str, str], bool] | None = None,
    min_relevance: float = MIN_RELEVANCE,
) -> Answer:
    """Answer *question* from the knowledge base *name* with the chat model *model*, citing passages.

    *writes(model, lang)* says whether the model writes the question's language; when it does not,
    the answer is extractive and no model is called."""
    lang = language_of(question)
    passages = await kbs.query(org_id, name, question, models, k=k, filters=filters)
    asked = set(terms(question))
    answering = [p for p in passages if relevance(asked, p) >= min_relevance]
    if not answering:
        return Answer(NOT_FOUND[lang], [], False)
    if writes is not None and not writes(model, lang):
        return extract(question, answering, "language")
    text = await models.chat(model, build_messages(question, answering))
    answer = cite(question, text, answering)
    return answer if answer.found and answer.citations else extract(question, answering, "uncited")
