"""Search terms and hybrid ranking over a small index."""

from __future__ import annotations

import numpy as np

from dizuo.kb.index import Filters, SearchIndex, terms


def test_terms_cut_chinese_and_keep_numbers_and_model_names_whole() -> None:
    found = terms("HJ-P12 柱塞的配合间隙应为0.0015 mm")
    assert {"hj-p12", "hj", "p12", "0.0015", "mm", "柱塞", "配合", "间隙"} <= set(found)
    assert "的" not in found and "应为" in found  # function words dropped, content words kept


def index_of(texts: list[str], vectors: np.ndarray, sources: list[str] | None = None) -> SearchIndex:
    n = len(texts)
    return SearchIndex.build(
        version=1,
        ids=list(range(100, 100 + n)),
        term_lists=[terms(t) for t in texts],
        vectors=vectors,
        sources=sources or ["a.md"] * n,
        clauses=["4.1", "4.2", "4.2.1", "5.1"][:n],
        kinds=["text", "text", "table", "text"][:n],
    )


TEXTS = ["柱塞硬度应为 HRC 60～64", "密封时间应在 10 s～30 s", "配合间隙表", "抽样方案按批量确定"]
# Vectors: the query vector points at chunk 1 (密封), so vector search and BM25 disagree.
VECTORS = np.eye(4, dtype=np.float32) * 3


def test_bm25_and_vector_rankings_and_their_fusion() -> None:
    index = index_of(TEXTS, VECTORS)
    query = VECTORS[1] + 0.5 * VECTORS[0]
    bm25 = index.search(terms("柱塞硬度"), None, k=2, mode="bm25")
    assert [h.row for h in bm25] == [0]  # only chunk 0 holds the words
    vector = index.search([], query, k=2, mode="vector")
    assert [h.row for h in vector] == [1, 0]
    assert abs(vector[0].score - float(np.dot(query, VECTORS[1]) / np.linalg.norm(query) / 3)) < 1e-6
    fused = index.search(terms("柱塞硬度"), query, k=2)
    # Chunk 0 is first in BM25 and second by vector: 1/61 + 1/62 beats chunk 1's 1/61.
    assert [h.row for h in fused] == [0, 1]
    assert abs(fused[0].score - (1 / 61 + 1 / 62)) < 1e-9


def test_filters_mask_before_ranking() -> None:
    index = index_of(TEXTS, VECTORS, sources=["a.md", "b.md", "a.md", "b.md"])
    query = VECTORS[1]
    assert {
        h.row
        for h in index.search([], query, k=4, mode="vector", filters=Filters(sources=frozenset({"a.md"})))
    } == {0, 2}
    assert {
        h.row for h in index.search([], query, k=4, mode="vector", filters=Filters(clause_prefix="4.2"))
    } == {1, 2}
    assert {
        h.row for h in index.search([], query, k=4, mode="vector", filters=Filters(clause_prefix="4"))
    } == {0, 1, 2}
    assert [h.row for h in index.search([], query, k=4, mode="vector", filters=Filters(kind="table"))] == [2]
    assert index.search(terms("柱塞"), query, filters=Filters(sources=frozenset({"none.md"}))) == []


def test_an_empty_index_finds_nothing() -> None:
    index = SearchIndex.build(
        version=0,
        ids=[],
        term_lists=[],
        vectors=np.zeros((0, 0), np.float32),
        sources=[],
        clauses=[],
        kinds=[],
    )
    assert index.search(terms("柱塞"), np.ones(4, np.float32)) == []
