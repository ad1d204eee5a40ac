"""Hybrid retrieval over one knowledge base: BM25 on jieba terms, cosine on vectors, fused by rank.

- **One script.** Text in traditional script is indexed and searched as simplified (``kb.script``).
- **Terms.** Chinese runs are cut by jieba's search mode (words and their shorter parts, so
  "配合间隙" also matches "间隙"); Latin and number runs stay whole and lower-cased ("0.0015",
  "hj-p12") and also give the parts between dashes and slashes ("hj", "p12"). A few function words are dropped.
- **BM25** (bm25s, Lucene's variant) scores every chunk; **vectors** are unit-normalised float32
  rows, so cosine is one matrix-vector product; at 100k chunks both take milliseconds.
- **Reciprocal rank fusion** (RRF, k = 60) merges the two rankings: it needs no score calibration
  between BM25 and cosine, which have nothing in common.
- **Filters** (document names, clause prefix, chunk kind) mask chunks before ranking.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from dizuo.kb.script import simplified
from dizuo.lazy import module

if TYPE_CHECKING:
    import numpy as np
else:
    np = module("numpy")  # loaded on first use (dizuo.lazy)

__all__ = ["Filters", "Hit", "SearchIndex", "terms"]

Mode = Literal["hybrid", "bm25", "vector"]
RRF_K = 60
CANDIDATES = 50  # from each ranking, before fusion

_RUNS = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._\-/+]*[A-Za-z0-9])?|[\u3400-\u9fff\uf900-\ufaff]+")
_SEPARATORS = re.compile(r"[-_/+]")
STOPWORDS = frozenset(
    [
        "的",
        "了",
        "和",
        "与",
        "及",
        "或",
        "等",
        "是",
        "在",
        "对",
        "为",
        "以",
        "把",
        "被",
        "将",
        "之",
        "其",
        "该",
        "这",
        "那",
        "有",
        "也",
        "都",
        "而",
        "并",
        "中",
        "上",
        "下",
        "个",
        "吗",
        "呢",
        "吧",
        "啊",
        "什么",
        "怎么",
        "如何",
        "哪些",
        "哪个",
        "多少",
        "是否",
        "可以",
        "应该",
        "应",
        "需要",
        "请问",
        "一下",
    ]
)

_jieba_lock = threading.Lock()
_jieba_ready = False


def warm() -> None:
    """Load jieba's dictionary once per process (about 2 s from its cache; 8 s the first time)."""
    global _jieba_ready
    if _jieba_ready:
        return
    with _jieba_lock:
        if not _jieba_ready:
            import logging

            import jieba

            jieba.setLogLevel(logging.WARNING)
            jieba.initialize()
            _jieba_ready = True


def terms(text: str) -> list[str]:
    """The search terms of *text*, in order; text in traditional script gives simplified terms."""
    warm()
    import jieba

    out: list[str] = []
    for run in _RUNS.findall(simplified(text)):
        if run[0].isascii():
            word = run.lower()
            out.append(word)
            parts = [part for part in _SEPARATORS.split(word) if part]
            if len(parts) > 1:
                out.extend(parts)
        else:
            out.extend(t for t in jieba.lcut_for_search(run) if t not in STOPWORDS)
    return out


@dataclass(frozen=True, slots=True)
class Filters:
    """Which chunks a query may return; empty means no restriction."""

    sources: frozenset[str] = frozenset()
    clause_prefix: str | None = None  # "4." matches 4.1, 4.2.1 …
    kind: str | None = None  # "text" or "table"

    @property
    def empty(self) -> bool:
        return not self.sources and self.clause_prefix is None and self.kind is None


@dataclass(frozen=True, slots=True)
class Hit:
    row: int  # position in the index
    score: float
    bm25: float
    cosine: float


@dataclass
class SearchIndex:
    """An immutable index over chunk rows; rebuilt (not patched) when its knowledge base changes."""

    version: int
    ids: np.ndarray  # chunk ids, int64
    sources: list[str]  # per chunk
    clauses: list[str | None]
    kinds: list[str]
    vectors: np.ndarray  # (n, d) float32, unit rows
    bm25: object | None = None

    @classmethod
    def build(
        cls,
        *,
        version: int,
        ids: Sequence[int],
        term_lists: Iterable[Sequence[str]],
        vectors: np.ndarray,
        sources: list[str],
        clauses: list[str | None],
        kinds: list[str],
    ) -> SearchIndex:
        import bm25s

        corpus = [list(t) for t in term_lists]
        retriever = None
        if corpus:
            retriever = bm25s.BM25()
            retriever.index(corpus, show_progress=False)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True) if len(vectors) else None
        unit = (vectors / np.maximum(norms, 1e-12)).astype(np.float32) if norms is not None else vectors
        return cls(version, np.asarray(ids, dtype=np.int64), sources, clauses, kinds, unit, retriever)

    def __len__(self) -> int:
        return len(self.ids)

    def _mask(self, filters: Filters) -> np.ndarray | None:
        if filters.empty:
            return None
        mask = np.ones(len(self), dtype=bool)
        if filters.sources:
            mask &= np.fromiter((s in filters.sources for s in self.sources), bool, len(self))
        if filters.clause_prefix is not None:
            prefix = filters.clause_prefix
            exact = prefix.rstrip(".")
            mask &= np.fromiter(
                (c is not None and (c == exact or c.startswith(exact + ".")) for c in self.clauses),
                bool,
                len(self),
            )
        if filters.kind is not None:
            mask &= np.fromiter((k == filters.kind for k in self.kinds), bool, len(self))
        return mask

    def bm25_scores(self, query_terms: list[str]) -> np.ndarray:
        if self.bm25 is None or not query_terms:
            return np.zeros(len(self), dtype=np.float32)
        scores: np.ndarray = self.bm25.get_scores(query_terms)  # type: ignore[attr-defined]
        return scores

    def cosine_scores(self, query_vector: np.ndarray | None) -> np.ndarray:
        if query_vector is None or not len(self):
            return np.zeros(len(self), dtype=np.float32)
        q = query_vector.astype(np.float32)
        q /= max(float(np.linalg.norm(q)), 1e-12)
        scores: np.ndarray = self.vectors @ q
        return scores

    def search(
        self,
        query_terms: list[str],
        query_vector: np.ndarray | None,
        k: int = 5,
        mode: Mode = "hybrid",
        filters: Filters | None = None,
    ) -> list[Hit]:
        """The best *k* chunks, best first. A chunk that no query term matches and whose vector is
        not among the candidates is never returned, so an empty index or filter returns []."""
        if not len(self) or k <= 0:
            return []
        mask = self._mask(filters or Filters())
        bm25 = self.bm25_scores(query_terms) if mode != "vector" else np.zeros(len(self), np.float32)
        cosine = self.cosine_scores(query_vector) if mode != "bm25" else np.zeros(len(self), np.float32)
        allowed = mask if mask is not None else np.ones(len(self), dtype=bool)
        depth = max(k, CANDIDATES)
        fused: dict[int, float] = {}
        if mode != "vector":
            for rank, row in enumerate(_top(np.where(allowed & (bm25 > 0), bm25, -np.inf), depth)):
                fused[row] = fused.get(row, 0.0) + 1.0 / (RRF_K + rank + 1)
        if mode != "bm25" and query_vector is not None:
            for rank, row in enumerate(_top(np.where(allowed, cosine, -np.inf), depth)):
                fused[row] = fused.get(row, 0.0) + 1.0 / (RRF_K + rank + 1)
        if mode == "bm25":
            order = sorted(fused, key=lambda r: (-float(bm25[r]), r))
            score = {r: float(bm25[r]) for r in order}
        elif mode == "vector":
            order = sorted(fused, key=lambda r: (-float(cosine[r]), r))
            score = {r: float(cosine[r]) for r in order}
        else:
            order = sorted(fused, key=lambda r: (-fused[r], -float(cosine[r]), r))
            score = fused
        return [Hit(row, score[row], float(bm25[row]), float(cosine[row])) for row in order[:k]]


def _top(scores: np.ndarray, depth: int) -> list[int]:
    """Rows of the *depth* highest finite scores, best first."""
    finite = np.isfinite(scores)
    count = int(finite.sum())
    if count == 0:
        return []
    depth = min(depth, count)
    rows = np.argpartition(-scores, depth - 1)[:depth] if depth < len(scores) else np.arange(len(scores))
    rows = rows[np.isfinite(scores[rows])]
    return [int(r) for r in rows[np.argsort(-scores[rows], kind="stable")]]
