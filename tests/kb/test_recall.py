"""Retrieval finds the clause that answers a Chinese question: the project's 62-question set over
four documents (Markdown, HTML, plain text; articles 第N条, numbered clauses, tables)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from dizuo.accounts import create_org
from dizuo.kb.models import LocalEncoder
from dizuo.kb.recall import load_questions, recall
from dizuo.kb.service import KnowledgeBases
from dizuo.store import Database

CORPUS = Path(__file__).resolve().parents[2] / "bench" / "data" / "kb"


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> tuple[KnowledgeBases, str, LocalEncoder]:
    import asyncio

    db = Database(f"sqlite:///{tmp_path_factory.mktemp('recall') / 'kb.db'}")
    db.upgrade()
    org = create_org(db, f"检索-{uuid.uuid4().hex[:6]}").id
    kbs = KnowledgeBases(db, embedding_model="local/use-multilingual-v3")
    encoder = LocalEncoder()
    kbs.create(org, "语料")

    async def add_all() -> None:
        for path in sorted(CORPUS.iterdir()):
            if path.is_file() and path.suffix != ".jsonl":
                await kbs.add(org, "语料", path.name, path.read_bytes(), encoder)

    asyncio.run(add_all())
    return kbs, org, encoder


def test_the_question_set_is_large_and_points_at_real_clauses(
    loaded: tuple[KnowledgeBases, str, LocalEncoder],
) -> None:
    kbs, org, _ = loaded
    questions = load_questions(CORPUS / "questions.jsonl")
    assert len(questions) >= 60 and len({q.question for q in questions}) == len(questions)
    sources = {d["source"] for d in kbs.documents(org, "语料")}
    assert {q.source for q in questions} == sources


async def test_hybrid_recall_at_5_is_at_least_0_9(loaded: tuple[KnowledgeBases, str, LocalEncoder]) -> None:
    kbs, org, encoder = loaded
    questions = load_questions(CORPUS / "questions.jsonl")
    result = await recall(kbs, org, "语料", questions, encoder, k=5, mode="hybrid")
    assert result.value >= 0.9, [q.question for q in result.missed]
    # Each half alone also finds most answers, and fusing them loses none that both found.
    bm25 = await recall(kbs, org, "语料", questions, encoder, k=5, mode="bm25")
    vector = await recall(kbs, org, "语料", questions, encoder, k=5, mode="vector")
    both_found = {q for q in questions if q not in bm25.missed and q not in vector.missed}
    assert not both_found & set(result.missed)
