"""Knowledge bases on the real database (SQLite, or PostgreSQL with DIZUO_TEST_DATABASE_URL):
adding, replacing, removing, isolation between organizations, and replicas seeing each other's
changes. Vectors come from the embedded encoder itself."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from dizuo.accounts import create_org
from dizuo.kb.formats import DocumentError
from dizuo.kb.models import LocalEncoder
from dizuo.kb.service import KbConflict, KbNotFound, KnowledgeBases
from dizuo.kb.tables import KbChunk
from dizuo.store import Database
from tests.kb.documents import STANDARD_CLAUSES, docx_bytes

MODEL = "local/use-multilingual-v3"
GUIDE = """# 算力券管理办法（示例）

第一条 算力券由市大数据局按年度计划发放给本市注册企业。

第二条 算力券只能用于平台登记的本地算力和私有云算力，不能用于公有云模型服务。

第三条 企业使用算力券时，算力券支付费用的百分之三十，其余由企业自付。
"""


class CountingEncoder(LocalEncoder):
    """The embedded encoder, counting the texts it was asked to embed."""

    def __init__(self) -> None:
        super().__init__()
        self.embedded = 0

    async def embed(self, model: str, texts: list[str]) -> np.ndarray:
        self.embedded += len(texts)
        return await super().embed(model, texts)


class FailingEncoder(LocalEncoder):
    async def embed(self, model: str, texts: list[str]) -> np.ndarray:
        raise RuntimeError("embedding service down")


@pytest.fixture(scope="module")
def encoder() -> CountingEncoder:
    return CountingEncoder()


@pytest.fixture
def org(db: Database) -> str:
    return create_org(db, f"知识库测试-{uuid.uuid4().hex[:8]}").id


def chunk_count(db: Database, kb_id: str) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count(KbChunk.id)).where(KbChunk.kb_id == kb_id)) or 0)


async def test_add_query_replace_and_remove(db: Database, org: str, encoder: CountingEncoder) -> None:
    kbs = KnowledgeBases(db, embedding_model=MODEL)
    kb = kbs.create(org, "规章制度")
    added = await kbs.add(org, "规章制度", "算力券办法.md", GUIDE.encode(), encoder)
    assert added["status"] == "added" and added["chunks"] == 3
    spec = await kbs.add(org, "规章制度", "检验规范.docx", docx_bytes(), encoder)
    assert spec["status"] == "added"

    hits = await kbs.query(org, "规章制度", "算力券能不能买公有云的模型服务？", encoder, k=3)
    assert (hits[0].source, hits[0].clause, hits[0].locator) == ("算力券办法.md", "第二条", "第二条")
    hits = await kbs.query(org, "规章制度", "柱塞硬度要求", encoder, k=3)
    assert (hits[0].source, hits[0].clause, hits[0].locator) == ("检验规范.docx", "4.5", "第 4.5 条")

    # The same bytes again: nothing is embedded or written.
    before = encoder.embedded
    assert (await kbs.add(org, "规章制度", "算力券办法.md", GUIDE.encode(), encoder))["status"] == "unchanged"
    assert encoder.embedded == before

    # A changed file replaces every chunk of its old version.
    changed = GUIDE.replace("百分之三十", "百分之五十")
    replaced = await kbs.add(org, "规章制度", "算力券办法.md", changed.encode(), encoder)
    assert replaced["status"] == "replaced" and replaced["chunks"] == 3
    hits = await kbs.query(org, "规章制度", "算力券支付费用的比例", encoder, k=10)
    texts = [h.text for h in hits]
    assert any("百分之五十" in t for t in texts) and not any("百分之三十" in t for t in texts)
    assert chunk_count(db, kb["id"]) == 3 + len(STANDARD_CLAUSES) + 1  # guide, clauses, one table

    kbs.delete_document(org, "规章制度", "算力券办法.md")
    assert all(h.source == "检验规范.docx" for h in await kbs.query(org, "规章制度", "算力券", encoder, k=10))
    assert [d["source"] for d in kbs.documents(org, "规章制度")] == ["检验规范.docx"]
    with pytest.raises(KbNotFound):
        kbs.delete_document(org, "规章制度", "算力券办法.md")

    kbs.delete(org, "规章制度")
    assert chunk_count(db, kb["id"]) == 0
    with pytest.raises(KbNotFound):
        await kbs.query(org, "规章制度", "算力券", encoder)


async def test_a_failed_add_leaves_the_knowledge_base_as_it_was(
    db: Database, org: str, encoder: CountingEncoder
) -> None:
    kbs = KnowledgeBases(db, embedding_model=MODEL, max_bytes=100_000)
    kb = kbs.create(org, "制度")
    await kbs.add(org, "制度", "办法.md", GUIDE.encode(), encoder)
    before = (kbs.documents(org, "制度"), chunk_count(db, kb["id"]))

    with pytest.raises(DocumentError):  # an unreadable new version of the same document
        await kbs.add(org, "制度", "办法.md", b"", encoder)
    with pytest.raises(DocumentError):
        await kbs.add(org, "制度", "巨大.txt", "字".encode() * 40_000, encoder)
    with pytest.raises(RuntimeError):  # the embedding model fails half-way
        await kbs.add(org, "制度", "办法.md", GUIDE.replace("三十", "四十").encode(), FailingEncoder())

    assert (kbs.documents(org, "制度"), chunk_count(db, kb["id"])) == before
    hits = await kbs.query(org, "制度", "算力券支付比例", encoder, k=5)
    assert any("百分之三十" in h.text for h in hits)


async def test_organizations_see_only_their_own_knowledge_bases(
    db: Database, encoder: CountingEncoder
) -> None:
    kbs = KnowledgeBases(db, embedding_model=MODEL)
    mine, theirs = (create_org(db, f"组织-{uuid.uuid4().hex[:8]}").id for _ in range(2))
    kbs.create(mine, "共享名")
    kbs.create(theirs, "共享名")  # the same name in another organization is another knowledge base
    with pytest.raises(KbConflict):
        kbs.create(mine, "共享名")
    await kbs.add(mine, "共享名", "办法.md", GUIDE.encode(), encoder)
    assert [kb["documents"] for kb in kbs.list_bases(theirs)] == [0]
    assert await kbs.query(theirs, "共享名", "算力券", encoder) == []
    kbs.create(mine, "只属于我")
    with pytest.raises(KbNotFound):
        kbs.describe(theirs, "只属于我")


async def test_another_replica_answers_from_the_latest_documents(
    db: Database, org: str, encoder: CountingEncoder
) -> None:
    first, second = (KnowledgeBases(db, embedding_model=MODEL) for _ in range(2))
    first.create(org, "共用")
    await first.add(org, "共用", "办法.md", GUIDE.encode(), encoder)
    assert (await second.query(org, "共用", "谁按年度计划发放算力券", encoder, k=1))[0].clause == "第一条"
    await first.add(org, "共用", "规范.docx", docx_bytes(), encoder)
    hits = await second.query(org, "共用", "柱塞硬度 HRC", encoder, k=1)  # second rebuilt its index
    assert hits[0].source == "规范.docx"


def test_names_are_checked(db: Database, org: str) -> None:
    kbs = KnowledgeBases(db, embedding_model=MODEL)
    for bad in ("", "a/b", "x" * 129, "tab\there"):
        with pytest.raises(Exception) as caught:
            kbs.create(org, bad)
        assert getattr(caught.value, "code", None) == "invalid_param"


async def test_a_large_index_keeps_answering_while_it_is_rebuilt(
    db: Database, org: str, encoder: CountingEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    import dizuo.kb.service as service

    monkeypatch.setattr(service, "STALE_OK_CHUNKS", 3)  # every index here counts as large
    kbs = KnowledgeBases(db, embedding_model=MODEL)
    kbs.create(org, "大库")
    await kbs.add(org, "大库", "办法.md", GUIDE.encode(), encoder)
    assert (await kbs.query(org, "大库", "谁按年度计划发放算力券", encoder, k=1))[0].source == "办法.md"

    await kbs.add(org, "大库", "规范.docx", docx_bytes(), encoder)
    kbs.delete_document(org, "大库", "办法.md")
    # Whatever index answers meanwhile, a deleted document's chunks are never returned ...
    for _ in range(100):
        hits = await kbs.query(org, "大库", "柱塞硬度 HRC 算力券", encoder, k=10)
        assert all(h.source != "办法.md" for h in hits)
        if hits and hits[0].source == "规范.docx":
            break
        await asyncio.sleep(0.05)
    # ... and the rebuilt one, landed in the background, holds the new document.
    assert hits and hits[0].source == "规范.docx"


async def test_a_document_s_file_is_kept_whole_until_no_document_refers_to_it(
    db: Database, org: str, encoder: CountingEncoder, tmp_path: Path
) -> None:
    kept = tmp_path / "files"
    before = KnowledgeBases(db, embedding_model=MODEL)  # a platform that kept no files
    before.create(org, "办法")
    data = GUIDE.encode() + uuid.uuid4().hex.encode()  # contents of this test's own
    await before.add(org, "办法", "算力券管理办法.md", data, encoder)
    kbs = KnowledgeBases(db, embedding_model=MODEL, originals=kept)
    assert kbs.originals_of(org, ["办法"]) == [("办法", "算力券管理办法.md", None)]
    # Adding the same file again keeps it (nothing re-embedded: it is unchanged).
    assert (await kbs.add(org, "办法", "算力券管理办法.md", data, encoder))["status"] == "unchanged"
    assert kbs.originals_of(org, ["办法"]) == [("办法", "算力券管理办法.md", data)]
    # The same contents in a second knowledge base: one copy, kept while either document is there.
    kbs.create(org, "副本")
    await kbs.add(org, "副本", "另存.md", data, encoder)
    assert len(list(kept.rglob("*"))) == 2  # one folder, one file
    kbs.delete_document(org, "办法", "算力券管理办法.md")
    assert kbs.originals_of(org, ["副本"])[0][2] == data
    replaced = data + "第四条 新增。".encode()
    await kbs.add(org, "副本", "另存.md", replaced, encoder)  # replaced: the old contents go
    assert [p.read_bytes() for p in kept.rglob("*") if p.is_file()] == [replaced]
    kbs.delete(org, "副本")
    assert not [p for p in kept.rglob("*") if p.is_file()]
