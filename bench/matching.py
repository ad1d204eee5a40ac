"""Supply-and-demand matching: how often the right supplier comes first and among the first three on
the forty scenarios and forty suppliers of tests/data/matching.yaml, for the hybrid ranking the
platform uses against BM25 alone and the encoder's cosine alone, in the same run; and the time a
scenario's matching takes.

    .venv/bin/python bench/matching.py

The suppliers are put in a catalog on SQLite (a temporary directory) and the scenarios published;
hard constraints (industry, district) apply to every ranking alike. Each ranking's answer is checked
to hold only eligible suppliers, or the run stops.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from dizuo.accounts import create_org
from dizuo.kb.index import terms
from dizuo.scenarios.service import Scenarios
from dizuo.scenarios.suppliers import Suppliers, embed
from dizuo.store import Database

DATA = yaml.safe_load(
    (Path(__file__).parents[1] / "tests" / "data" / "matching.yaml").read_text(encoding="utf-8")
)


def eligible(need: dict[str, Any], entry: dict[str, Any]) -> bool:
    regions = entry.get("regions") or []
    return need["industry"] in entry["industries"] and (
        not regions or "全市" in regions or need["district"] in regions
    )


def alone(
    need: dict[str, Any], method: str, vectors: dict[str, np.ndarray], constrained: bool = True
) -> list[str]:
    """The eligible suppliers (every supplier, unconstrained) ranked by one method alone."""
    import bm25s

    pool = [e for e in DATA["suppliers"] if eligible(need, e) or not constrained]
    texts = [f"{e['name']}。{e['summary']}。{'；'.join(c['title'] for c in e['cases'])}" for e in pool]
    query = f"{need['title']}。{need['description']}"
    if method == "bm25":
        retriever = bm25s.BM25()
        retriever.index([terms(t) for t in texts], show_progress=False)
        scores = np.asarray(retriever.get_scores(terms(query)))
    else:
        q = embed([query])[0]
        scores = np.asarray([float(vectors[e["id"]] @ q) for e in pool])
    return [pool[i]["id"] for i in np.argsort(-scores, kind="stable")]


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        db = Database(f"sqlite:///{Path(folder) / 'dizuo.db'}")
        db.upgrade()
        suppliers, scenarios = Suppliers(db), Scenarios(db)
        ids: dict[str, str] = {}
        for entry in DATA["suppliers"]:
            org = create_org(db, entry["name"])
            ids[org.name] = entry["id"]
            suppliers.put(org.id, {k: v for k, v in entry.items() if k != "id"}, "bench")
        demand = create_org(db, "需求方")
        vectors = {e["id"]: embed([f"{e['name']}。{e['summary']}。{'；'.join(c['title'] for c in e['cases'])}"])[0] for e in DATA["suppliers"]}  # fmt: skip
        results: dict[str, list[int | None]] = {"hybrid": [], "bm25": [], "vector": [], "bm25, no constraints": [], "vector, no constraints": []}  # fmt: skip
        times: dict[str, list[float]] = {"hybrid": [], "bm25": []}
        for need in DATA["scenarios"]:
            made = scenarios.create(demand.id, {k: need[k] for k in ("title", "industry", "district", "description")}, "bench")  # fmt: skip
            start = time.perf_counter()
            found = suppliers.for_scenario(made["id"], k=40)
            times["hybrid"].append((time.perf_counter() - start) * 1000)
            ranked = [ids[f["organization"]] for f in found]
            allowed = {e["id"] for e in DATA["suppliers"] if eligible(need, e)}
            if set(ranked) - allowed:
                sys.exit(f"{need['id']}: ineligible suppliers ranked: {set(ranked) - allowed}")
            start = time.perf_counter()
            plain = alone(need, "bm25", vectors)
            times["bm25"].append((time.perf_counter() - start) * 1000)
            for method, order in (
                ("hybrid", ranked),
                ("bm25", plain),
                ("vector", alone(need, "vector", vectors)),
                ("bm25, no constraints", alone(need, "bm25", vectors, constrained=False)),
                ("vector, no constraints", alone(need, "vector", vectors, constrained=False)),
            ):
                results[method].append(order.index(need["match"]) + 1 if need["match"] in order else None)
        n = len(DATA["scenarios"])
        print(f"{n} scenarios, {len(DATA['suppliers'])} suppliers")
        for method, ranks in results.items():
            top1 = sum(1 for r in ranks if r == 1) / n
            top3 = sum(1 for r in ranks if r is not None and r <= 3) / n
            print(f"{method:<24} top-1 {top1:.3f}   top-3 {top3:.3f}")
        hybrid, bm25 = statistics.median(times["hybrid"]), statistics.median(times["bm25"])
        print(f"matching one scenario: {hybrid:.1f} ms p50 (BM25 alone {bm25:.1f} ms, {hybrid / bm25:.1f}×)")
        db.dispose()


if __name__ == "__main__":
    main()
