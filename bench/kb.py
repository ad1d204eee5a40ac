"""Knowledge-base benchmark: recall, traditional script, ingest throughput, query latency at 100k chunks.

1. **Recall@5** (and @1) of hybrid, BM25-only and vector-only retrieval over the project's
   62-question set (``bench/data/kb``), with the embedded encoder.
2. **Ingest**: the corpus added again and again under new names (parse, chunk, jieba, embed, write)
   on the embedded store (SQLite); KB/s of indexed text. Baseline in the same run: the embedded
   encoder alone on the same chunks, the floor of any ingest that embeds.
2b. **Traditional script**: the four documents and a fifth written in traditional script with
   Taiwan's vocabulary (``bench/data/kb/scripts``), asked the 62 questions and 15 more about the
   fifth in simplified script: recall@5 with the script conversion off (the baseline, the same run)
   and on (``dizuo.kb.script``), and with the fifth document converted by hand before adding.
3. **Found or not**: the best passage's relevance for the 62 questions and for 20 off the corpus's
   subject (`off_topic.jsonl`), against the threshold `ask` uses to say the knowledge base holds
   an answer.
4. **Query at 100k chunks**: a knowledge base grown to ``--chunks`` chunks. Their text is real
   corpus sentences recombined; their vectors are random unit vectors (the cost of an exact search
   does not depend on the values, and embedding 100k chunks takes minutes here). Then the 62
   questions asked round-robin, ``kbs.query`` in hybrid mode end to end: embedding the question,
   jieba, BM25 over all chunks, cosine over all chunks, fusion, reading the five passages.
   Baseline in the same run: one numpy matrix-vector product over the same vectors, the floor of
   any exact vector search. Target: p50 <= 50 ms. Also the time to build the index after a change.

    .venv/bin/python bench/kb.py [--chunks 100000] [--queries 300] [--only recall,scripts,found,ingest,query]
        [--out bench/out/kb.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

import numpy as np

from dizuo.accounts import create_org
from dizuo.kb.answers import MIN_RELEVANCE, relevance
from dizuo.kb.chunking import Chunk
from dizuo.kb.index import terms
from dizuo.kb.models import LocalEncoder
from dizuo.kb.recall import load_questions, recall
from dizuo.kb.service import KnowledgeBases
from dizuo.store import Database

CORPUS = Path(__file__).resolve().parent / "data" / "kb"
DIMS = 512


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def documents() -> list[Path]:
    return sorted(p for p in CORPUS.iterdir() if p.is_file() and p.suffix != ".jsonl")


async def bench_scripts(kbs: KnowledgeBases, org: str, encoder: LocalEncoder) -> dict[str, dict[str, float]]:
    """Recall@5 over the four documents and one in traditional script, conversion off and on."""
    import opencc

    from dizuo.kb import script

    folder = CORPUS / "scripts"
    (traditional,) = sorted(folder.glob("*.md"))
    questions = load_questions(CORPUS / "questions.jsonl") + load_questions(folder / "questions.jsonl")
    asked_fifth = load_questions(folder / "questions.jsonl")
    by_hand = opencc.OpenCC("tw2sp").convert(traditional.read_text("utf-8")).encode()
    out: dict[str, dict[str, float]] = {}
    threshold = script.TRADITIONAL
    for label, convert, fifth in (
        ("off", False, traditional.read_bytes()),
        ("on", True, traditional.read_bytes()),
        ("converted by hand", False, by_hand),
    ):
        script.TRADITIONAL = threshold if convert else 10**9  # off: no text counts as traditional
        name = f"scripts-{uuid.uuid4().hex[:6]}"
        kbs.create(org, name)
        for path in documents():
            await kbs.add(org, name, path.name, path.read_bytes(), encoder)
        await kbs.add(org, name, traditional.name, fifth, encoder)
        asked, own = questions, asked_fifth
        if fifth is by_hand:  # converted, the document numbers its clauses 第三条, not 第三條
            own = [replace(q, clause=q.clause.replace("條", "条")) for q in asked_fifth]
            asked = questions[: -len(own)] + own
        row: dict[str, float] = {}
        for mode in ("hybrid", "bm25", "vector"):
            every = await recall(kbs, org, name, asked, encoder, k=5, mode=mode)  # type: ignore[arg-type]
            row[mode] = every.value
        fifth_only = await recall(kbs, org, name, own, encoder, k=5)
        row["fifth_document_hybrid"] = fifth_only.value
        row["questions"] = len(questions)
        out[label] = row
        print(
            f"scripts {label:<18} recall@5 hybrid {row['hybrid']:.3f}  bm25 {row['bm25']:.3f}  "
            f"vector {row['vector']:.3f}  (the traditional document's {len(asked_fifth)}: "
            f"{fifth_only.value:.3f})"
        )
    script.TRADITIONAL = threshold
    assert out["on"]["hybrid"] >= out["off"]["hybrid"], "conversion lost recall: stop and look"
    return out


async def bench_recall(kbs: KnowledgeBases, org: str, encoder: LocalEncoder) -> dict[str, dict[str, float]]:
    kbs.create(org, "recall")
    for path in documents():
        await kbs.add(org, "recall", path.name, path.read_bytes(), encoder)
    questions = load_questions(CORPUS / "questions.jsonl")
    out: dict[str, dict[str, float]] = {}
    for mode in ("hybrid", "bm25", "vector"):
        at5 = await recall(kbs, org, "recall", questions, encoder, k=5, mode=mode)  # type: ignore[arg-type]
        at1 = await recall(kbs, org, "recall", questions, encoder, k=1, mode=mode)  # type: ignore[arg-type]
        out[mode] = {"recall@5": at5.value, "recall@1": at1.value, "questions": at5.total}
        print(f"recall {mode:<7} @5 {at5.value:.3f} ({at5.found}/{at5.total})  @1 {at1.value:.3f}")
    return out


async def bench_found(kbs: KnowledgeBases, org: str, encoder: LocalEncoder) -> dict[str, float]:
    """Whether retrieval alone tells a question the knowledge base answers from one it does not: the
    best passage's relevance (``dizuo.kb.answers.relevance``) for the 62 questions and for 20 off the
    corpus's subject (``off_topic.jsonl``), against the threshold ``ask`` uses."""
    questions = {
        "on": [q.question for q in load_questions(CORPUS / "questions.jsonl")],
        "off": [
            json.loads(line)["question"]
            for line in (CORPUS / "off_topic.jsonl").read_text("utf-8").splitlines()
        ],
    }
    best: dict[str, list[float]] = {}
    for label, asked in questions.items():
        best[label] = []
        for question in asked:
            passages = await kbs.query(org, "recall", question, encoder, k=5)
            words = set(terms(question))
            best[label].append(max(relevance(words, p) for p in passages))
    found = sum(score >= MIN_RELEVANCE for score in best["on"]) / len(best["on"])
    refused = sum(score < MIN_RELEVANCE for score in best["off"]) / len(best["off"])
    result = {
        "on_topic_min": min(best["on"]),
        "off_topic_max": max(best["off"]),
        "threshold": MIN_RELEVANCE,
        "on_topic_found": found,
        "off_topic_refused": refused,
    }
    print(
        f"found   on-topic best >= {result['on_topic_min']:.3f} (found {found:.0%}), off-topic best <= "
        f"{result['off_topic_max']:.3f} (refused {refused:.0%}); threshold {MIN_RELEVANCE}"
    )
    return result


async def bench_ingest(kbs: KnowledgeBases, org: str, encoder: LocalEncoder, rounds: int) -> dict[str, float]:
    kbs.create(org, "ingest")
    files = [(p.name, p.read_bytes()) for p in documents()]
    chunks = [c for name, data in files for c in kbs.prepare(name, data)]
    characters = sum(len(c.text) for c in chunks)
    kb_of_text = sum(len(c.text.encode()) for c in chunks) / 1024
    ingest, baseline = [], []
    for round_ in range(rounds):  # alternate, so drift of the machine hits both alike
        started = time.perf_counter()
        encoder.encode([c.text for c in chunks])
        baseline.append(time.perf_counter() - started)
        started = time.perf_counter()
        for name, data in files:
            await kbs.add(org, "ingest", f"{round_}-{name}", data, encoder)
        ingest.append(time.perf_counter() - started)
    result = {
        "characters_per_round": characters,
        "kb_text_per_round": kb_of_text,
        "ingest_kb_per_s": kb_of_text / statistics.median(ingest),
        "encoder_only_kb_per_s": kb_of_text / statistics.median(baseline),
    }
    result["ratio_to_encoder_only"] = result["encoder_only_kb_per_s"] / result["ingest_kb_per_s"]
    print(
        f"ingest  {result['ingest_kb_per_s']:.1f} KB/s of text (encoder alone {result['encoder_only_kb_per_s']:.1f} KB/s; "
        f"ingest takes {result['ratio_to_encoder_only']:.2f}x the encoder's time)"
    )
    return result


def grow(kbs: KnowledgeBases, kb_id: str, total: int) -> None:
    """Fill a knowledge base with *total* chunks of recombined corpus sentences and random vectors."""
    sentences = [
        s for p in documents() for c in kbs.prepare(p.name, p.read_bytes()) for s in c.text.split("。") if s
    ]
    rng = random.Random(7)
    vectors = np.random.default_rng(7).standard_normal((total, DIMS)).astype("<f4")
    per_document = 5000
    for start in range(0, total, per_document):
        count = min(per_document, total - start)
        chunks = []
        for _ in range(count):
            text = "。".join(rng.sample(sentences, 3)) + "。"
            chunks.append(
                Chunk(
                    text,
                    ("合成文档", f"{rng.randint(1, 9)} 章"),
                    f"{rng.randint(1, 9)}.{rng.randint(1, 9)}",
                    None,
                    "text",
                )
            )
        term_lists = [" ".join(terms(c.text)) for c in chunks]
        kbs._store(
            kb_id,
            f"合成-{start // per_document:03d}.md",
            uuid.uuid4().hex,
            0,
            chunks,
            term_lists,
            vectors[start : start + count],
        )


async def bench_query(
    kbs: KnowledgeBases, org: str, encoder: LocalEncoder, chunks: int, queries: int
) -> dict[str, float]:
    kb = kbs.create(org, "large")
    started = time.perf_counter()
    grow(kbs, kb["id"], chunks)
    grow_s = time.perf_counter() - started
    started = time.perf_counter()
    _, index = kbs.index(org, "large")
    build_s = time.perf_counter() - started
    questions = [q.question for q in load_questions(CORPUS / "questions.jsonl")]
    vectors = index.vectors
    q = np.random.default_rng(1).standard_normal(DIMS).astype(np.float32)
    latencies, floor = [], []
    for i in range(queries):
        started = time.perf_counter()
        _ = vectors @ q
        floor.append(time.perf_counter() - started)
        started = time.perf_counter()
        hits = await kbs.query(org, "large", questions[i % len(questions)], encoder, k=5)
        latencies.append(time.perf_counter() - started)
        assert len(hits) == 5
    result = {
        "chunks": len(index),
        "fill_seconds": grow_s,
        "index_build_seconds": build_s,
        "query_p50_ms": percentile(latencies, 50) * 1000,
        "query_p99_ms": percentile(latencies, 99) * 1000,
        "matvec_p50_ms": percentile(floor, 50) * 1000,
    }
    result["ratio_p50_to_matvec"] = result["query_p50_ms"] / result["matvec_p50_ms"]
    print(
        f"query   {result['chunks']} chunks: p50 {result['query_p50_ms']:.1f} ms, p99 {result['query_p99_ms']:.1f} ms "
        f"(one matvec {result['matvec_p50_ms']:.2f} ms; {result['ratio_p50_to_matvec']:.1f}x); "
        f"index build {build_s:.1f} s after a change"
    )
    return result


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--ingest-rounds", type=int, default=3)
    parser.add_argument("--only", default="recall,scripts,found,ingest,query")
    parser.add_argument("--out", type=Path, default=Path("bench/out/kb.json"))
    args = parser.parse_args()
    only = set(args.only.split(","))
    with tempfile.TemporaryDirectory() as home:
        db = Database(f"sqlite:///{home}/kb.db")
        db.upgrade()
        org = create_org(db, "bench").id
        kbs = KnowledgeBases(db, embedding_model="local/use-multilingual-v3")
        encoder = LocalEncoder()
        results: dict[str, object] = {}
        if only & {"recall", "found"}:
            results["recall"] = await bench_recall(kbs, org, encoder)  # "found" asks this knowledge base
        if "scripts" in only:
            results["scripts"] = await bench_scripts(kbs, org, encoder)
        if "found" in only:
            results["found"] = await bench_found(kbs, org, encoder)
        if "ingest" in only:
            results["ingest"] = await bench_ingest(kbs, org, encoder, args.ingest_rounds)
        if "query" in only:
            results["query"] = await bench_query(kbs, org, encoder, args.chunks, args.queries)
        db.dispose()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, ensure_ascii=False, indent=2), encoding="utf-8")


if __name__ == "__main__":
    asyncio.run(main())
