"""Re-embedding a knowledge base with another model, on the real database: vectors are staged per
job while the knowledge base keeps answering from its old ones, then swapped in one transaction, and
never while a chunk (of a file added meanwhile) has no new vector. Bad vectors are refused and change
nothing; a job cannot write into another knowledge base's chunks."""

from __future__ import annotations

import base64
import hashlib
import uuid

import numpy as np
import pytest
from sqlalchemy import func, select

from dizuo.accounts import create_org
from dizuo.errors import InvalidRequest
from dizuo.kb.chunking import index_text
from dizuo.kb.reindex import KbReindexIncomplete, Reindex
from dizuo.kb.script import simplified
from dizuo.kb.service import KbConflict, KbNotFound, KnowledgeBases
from dizuo.kb.tables import KbChunk, KbStagedVector, KnowledgeBase
from dizuo.store import Database
from tests.kb.documents import docx_bytes

GUIDE = """# 算力券管理办法（示例）

第一条 算力券由市大数据局按年度计划发放给本市注册企业。

第二条 算力券只能用于平台登记的本地算力和私有云算力，不能用于公有云模型服务。

第三条 企业使用算力券時，算力券支付費用的百分之三十，其余由企业自付。
"""
WIDTHS = {"embed-a": 8, "embed-b": 16}


def vector(model: str, text: str) -> np.ndarray:
    """The vector *model* gives *text*: its width, numbers drawn from the text's digest."""
    digest = hashlib.sha256(f"{model}:{text}".encode()).digest()
    return np.array([digest[i % 32] - 127.5 for i in range(WIDTHS[model])], dtype="<f4")


class DigestModels:
    """Embedding models in this process, each a width of digest numbers; *during* runs inside a call."""

    def __init__(self) -> None:
        self.during: list[object] = []

    async def embed(self, model: str, texts: list[str]) -> np.ndarray:
        while self.during:
            self.during.pop()()  # type: ignore[operator]
        return np.vstack([vector(model, t) for t in texts])

    async def chat(self, model: str, messages: list[dict[str, str]], max_tokens: int = 1024) -> str:
        raise NotImplementedError


def b64(v: np.ndarray) -> str:
    return base64.b64encode(np.asarray(v, "<f4").tobytes()).decode()


@pytest.fixture
def org(db: Database) -> str:
    return create_org(db, f"重嵌入-{uuid.uuid4().hex[:8]}").id


def rows(db: Database, kb_id: str) -> dict[int, bytes]:
    with db.session() as session:
        return dict(
            session.execute(select(KbChunk.id, KbChunk.embedding).where(KbChunk.kb_id == kb_id)).all()
        )


def staged(db: Database, job_id: str) -> int:
    with db.session() as session:
        query = select(func.count()).select_from(KbStagedVector).where(KbStagedVector.job_id == job_id)
        return int(session.scalar(query) or 0)


def base(db: Database, kb_id: str) -> KnowledgeBase:
    with db.session() as session:
        kb = session.get(KnowledgeBase, kb_id)
        assert kb is not None
        session.expunge(kb)
        return kb


async def test_vectors_are_staged_then_swapped_at_once_with_the_model(db: Database, org: str) -> None:
    models = DigestModels()
    kbs = KnowledgeBases(db, embedding_model="embed-a")
    kb_id = kbs.create(org, "规章制度")["id"]
    await kbs.add(org, "规章制度", "算力券办法.md", GUIDE.encode(), models)
    old = rows(db, kb_id)
    before = base(db, kb_id)
    assert before.dimensions == 8 and len(old) == 3
    reindex = Reindex(db)
    job = f"job{uuid.uuid4().hex[:12]}"

    page = reindex.pending(kb_id, job, limit=2)
    assert (page["pending"], page["total"], len(page["data"])) == (3, 3, 2)
    with db.session() as session:
        chunks = {c.id: c for c in session.scalars(select(KbChunk).where(KbChunk.kb_id == kb_id))}
    # The text handed out is the one indexed when the file was added: heading above, simplified script.
    for row in page["data"]:
        chunk = chunks[row["id"]]
        assert row["text"] == simplified(index_text(chunk.heading_path, chunk.text))
    assert any("时" in row["text"] for row in reindex.pending(kb_id, job, limit=10)["data"])
    first = [{"id": r["id"], "embedding": b64(vector("embed-b", r["text"]))} for r in page["data"]]
    assert reindex.stage(kb_id, job, first) == {"staged": 2, "skipped": 0, "dimensions": 16}

    # One chunk has no new vector yet: no switch, and the knowledge base is as it was.
    with pytest.raises(KbReindexIncomplete) as refused:
        reindex.commit(kb_id, job, "embed-b")
    assert refused.value.status == 409 and refused.value.params["missing"] == 1
    assert rows(db, kb_id) == old and base(db, kb_id).version == before.version

    # A file added meanwhile (with the old model) is pending for the job too.
    await kbs.add(org, "规章制度", "检验规范.docx", docx_bytes(), models)
    rest = reindex.pending(kb_id, job, limit=100)
    assert rest["pending"] == len(rest["data"]) == rest["total"] - 2 > 1
    reindex.stage(
        kb_id, job, [{"id": r["id"], "embedding": b64(vector("embed-b", r["text"]))} for r in rest["data"]]
    )
    done = reindex.commit(kb_id, job, "embed-b")
    assert (done["model"], done["dimensions"], done["chunks"]) == ("embed-b", 16, rest["total"])

    after = base(db, kb_id)
    assert (after.embedding_model, after.dimensions) == ("embed-b", 16) and after.version > before.version
    with db.session() as session:
        for chunk in session.scalars(select(KbChunk).where(KbChunk.kb_id == kb_id)):
            text = simplified(index_text(chunk.heading_path, chunk.text))
            assert chunk.embedding == vector("embed-b", text).tobytes()
    assert staged(db, job) == 0
    # Questions are now embedded with the new model, and files added next use it.
    hits = await kbs.query(org, "规章制度", "算力券能不能买公有云？", models, k=2, mode="vector")
    assert len(hits) == 2 and max(h.cosine for h in hits) > 0
    added = await kbs.add(org, "规章制度", "补充.md", "第四条 算力券有效期一年。".encode(), models)
    assert added["status"] == "added" and base(db, kb_id).dimensions == 16


async def test_bad_vectors_are_refused_and_another_knowledge_base_is_out_of_reach(
    db: Database, org: str
) -> None:
    models = DigestModels()
    kbs = KnowledgeBases(db, embedding_model="embed-a")
    mine = kbs.create(org, "mine")["id"]
    theirs = kbs.create(org, "theirs")["id"]
    await kbs.add(org, "mine", "a.md", GUIDE.encode(), models)
    await kbs.add(org, "theirs", "b.md", GUIDE.encode(), models)
    reindex = Reindex(db)
    job = f"job{uuid.uuid4().hex[:12]}"
    (one, two, *_) = [r["id"] for r in reindex.pending(mine, job)["data"]]
    good = b64(np.ones(4, "<f4"))
    for data, param in [
        ([], "data"),
        ([{"id": "x", "embedding": good}], "id"),
        ([{"id": one, "embedding": "不是base64"}], "embedding"),
        ([{"id": one, "embedding": base64.b64encode(b"abc").decode()}], "embedding"),
        ([{"id": one, "embedding": b64(np.array([1.0, np.nan], "<f4"))}], "embedding"),
        ([{"id": one, "embedding": good}, {"id": two, "embedding": b64(np.ones(5, "<f4"))}], "embedding"),
    ]:
        with pytest.raises(InvalidRequest) as bad:
            reindex.stage(mine, job, data)
        assert bad.value.param == param, data
    assert staged(db, job) == 0
    assert reindex.stage(mine, job, [{"id": one, "embedding": good}])["staged"] == 1
    with pytest.raises(InvalidRequest) as wider:  # a job's vectors all have one width
        reindex.stage(mine, job, [{"id": two, "embedding": b64(np.ones(6, "<f4"))}])
    assert "4" in wider.value.params["reason_en"]
    # Chunks of another knowledge base are skipped, never written.
    other = [r["id"] for r in reindex.pending(theirs, job)["data"]]
    answer = reindex.stage(mine, job, [{"id": i, "embedding": good} for i in other])
    assert answer == {"staged": 0, "skipped": len(other), "dimensions": 4}
    assert staged(db, job) == 1
    assert reindex.discard(job) == 1 and staged(db, job) == 0
    with pytest.raises(KbNotFound):
        reindex.commit("kb_missing", job, "embed-b")


async def test_a_file_embedded_with_the_old_model_while_the_switch_commits_is_refused(
    db: Database, org: str
) -> None:
    models = DigestModels()
    kbs = KnowledgeBases(db, embedding_model="embed-a")
    kb_id = kbs.create(org, "规章制度")["id"]
    await kbs.add(org, "规章制度", "算力券办法.md", GUIDE.encode(), models)
    reindex = Reindex(db)
    job = f"job{uuid.uuid4().hex[:12]}"

    def switch() -> None:
        page = reindex.pending(kb_id, job, limit=100)["data"]
        reindex.stage(
            kb_id, job, [{"id": r["id"], "embedding": b64(vector("embed-b", r["text"]))} for r in page]
        )
        reindex.commit(kb_id, job, "embed-b")

    models.during.append(switch)  # while the new file's chunks are being embedded with embed-a
    with pytest.raises(KbConflict) as raced:
        await kbs.add(org, "规章制度", "检验规范.docx", docx_bytes(), models)
    assert raced.value.code == "kb_model_changed" and raced.value.params["model"] == "embed-b"
    assert {len(v) for v in rows(db, kb_id).values()} == {64}  # 16 float32s each: no mixed index
    again = await kbs.add(org, "规章制度", "检验规范.docx", docx_bytes(), models)
    assert again["status"] == "added"
