"""Document parsing benchmark: what reading each upload in a child process under CPU and memory
limits costs against reading it in the server's process, and how fast a hostile document is refused.

1. **Overhead**: every document of the knowledge-base corpus (``bench/data/kb``) and a Word and an
   Excel file, each parsed ``--repeat`` times in process (``parse_document``, the baseline) and
   isolated (``IsolatedParser``: a child forked from the forkserver under RLIMIT_CPU and RLIMIT_AS);
   median ms per document and the difference.
2. **Refusals**: documents a few KB long that a naive reader spends seconds and gigabytes on (a sheet
   reaching column XFD, a DOCX cell spanning a million columns, a DOCX whose XML unpacks to 50 MB),
   isolated with the default limits and with a 512 MB limit: how long until the 413, and the
   server's own peak memory (the child's does not count).

Checks each answer (the blocks a document yields, the refusal's code) and stops loudly otherwise.

    .venv/bin/python bench/parsing.py [--repeat 20] [--out bench/out/parsing.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

from dizuo.kb.formats import DocumentTooLarge, parse_document
from dizuo.kb.isolation import IsolatedParser, Limits

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the tests' document builders (the same bombs the tests refuse)

from tests.kb.documents import docx_bytes, xlsx_bytes  # noqa: E402
from tests.security import bombs  # noqa: E402

CORPUS = ROOT / "bench" / "data" / "kb"


def documents() -> list[tuple[str, bytes]]:
    files = [(p.name, p.read_bytes()) for p in sorted(CORPUS.iterdir()) if p.suffix != ".jsonl"]
    return [*files, ("规范.docx", docx_bytes()), ("公差.xlsx", xlsx_bytes())]


def timed(read: object, name: str, data: bytes, repeat: int) -> tuple[float, int]:
    times = []
    blocks = 0
    for _ in range(repeat):
        started = time.perf_counter()
        found = read(name, data)  # type: ignore[operator]
        times.append((time.perf_counter() - started) * 1000)
        blocks = len(found)
    if not blocks:
        raise SystemExit(f"{name}: no blocks read")
    return statistics.median(times), blocks


def overhead(repeat: int) -> dict[str, dict[str, float]]:
    isolated = IsolatedParser()
    isolated("warm.docx", docx_bytes())  # the forkserver starts once per process
    out = {}
    for name, data in documents():
        inside, blocks = timed(lambda n, d: parse_document(n, d), name, data, repeat)
        apart, same = timed(isolated, name, data, repeat)
        if same != blocks:
            raise SystemExit(f"{name}: {blocks} blocks in process, {same} isolated")
        out[name] = {
            "bytes": len(data),
            "in_process_ms": inside,
            "isolated_ms": apart,
            "added_ms": apart - inside,
        }
        print(
            f"{name:<28} {len(data) / 1024:7.1f} KB  in process {inside:7.2f} ms  isolated {apart:7.2f} ms  +{apart - inside:5.2f}"
        )
    added = [row["added_ms"] for row in out.values()]
    print(f"added per document: median {statistics.median(added):.2f} ms, max {max(added):.2f} ms")
    return out


def refusals() -> dict[str, dict[str, float]]:
    cases = [
        ("sheet to column XFD", "检验.xlsx", bombs.xlsx(4000), Limits()),
        ("gridSpan 1,000,000", "报告.docx", bombs.docx_span_bomb(), Limits()),
        ("50 MB of XML, 30 s / 1 GB", "大.docx", bombs.docx_huge_xml(), Limits()),
        ("50 MB of XML, 30 s / 512 MB", "大.docx", bombs.docx_huge_xml(), Limits(memory_mb=512)),
    ]
    out = {}
    for label, name, data, limits in cases:
        parser = IsolatedParser(limits)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        try:
            blocks = parser(name, data)
        except DocumentTooLarge as refused:
            seconds = time.perf_counter() - started
            message = refused.message("en")
        else:
            # A capped read is an answer too: the span bomb is read as 64 columns, not a million.
            seconds = time.perf_counter() - started
            width = max(len(b.header) for b in blocks)
            if width > 64:
                raise SystemExit(f"{label}: read {width} columns") from None
            message = f"read, {width} columns"
        grew = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
        out[label] = {"bytes": len(data), "seconds": seconds, "server_peak_growth_mb": grew}
        print(f"{label:<30} {len(data) / 1024:6.1f} KB  {seconds:6.2f} s  server +{grew:.0f} MB  {message}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result = {"overhead": overhead(args.repeat), "refusals": refusals()}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
