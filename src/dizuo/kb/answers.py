"""Cited answers: a chat model answers from numbered passages and marks each claim ``[n]``.

- The model sees only the retrieved passages, each with its source and locator, and is told to
  cite them and to say so when they do not hold the answer.
- Citations are the passages the answer actually marks, in order of first mention; a marker that
  names no passage is dropped, never invented.
- When retrieval finds nothing at all, no model is called: the answer says the knowledge base does
  not contain it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from dizuo.kb.index import Filters
from dizuo.kb.models import Models
from dizuo.kb.service import KnowledgeBases, Passage

__all__ = ["NOT_FOUND", "Answer", "ask", "build_messages", "cite", "language_of"]

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


async def ask(
    kbs: KnowledgeBases,
    org_id: str,
    name: str,
    question: str,
    models: Models,
    model: str,
    k: int = 5,
    filters: Filters | None = None,
) -> Answer:
    """Answer *question* from the knowledge base *name* with the chat model *model*, citing passages."""
    passages = await kbs.query(org_id, name, question, models, k=k, filters=filters)
    if not passages:
        return Answer(NOT_FOUND[language_of(question)], [], False)
    text = await models.chat(model, build_messages(question, passages))
    return cite(question, text, passages)
