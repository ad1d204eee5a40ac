"""Guard benchmark: accuracy per entity type, throughput on clean text, time per 4 KB prompt.

Accuracy: the project's generated labeled set (``dizuo.guard.synth``, 2,400 lines, a third hard
negatives); an entity counts when type, start and end all match. Targets: precision and recall
>= 0.99 per type.

Speed, against a baseline in the same run: the same candidate expression run by Python's own
``re`` engine on the same text (what the RE2 scan replaced). Targets: >= 20 MB/s per core on clean
text; a 4 KB mixed Chinese/English prompt scanned in <= 0.2 ms at p50.

With ``--gateway``, also what the guard adds to a request end to end: two ``dizuo serve`` processes
on the same nginx upstream (metering off in both), one with ``guard: {default: {action: off}}`` and
one with ``log`` (the default), then ``redact``, alternated round by round, wrk at one connection
posting the 4 KB prompt. Target: <= 0.2 ms added at p50.

    .venv/bin/python bench/guard.py [--lines 2400] [--gateway] [--out bench/out/guard.json]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from collections import Counter
from pathlib import Path

from dizuo.guard import ENTITY_TYPES, scan
from dizuo.guard.detect import _ALTERNATIVES
from dizuo.guard.synth import labeled_lines

BENCH = Path(__file__).resolve().parent

ZH = (
    "船用柴油机配件质量检验报告显示，本批次柱塞偶件的尺寸、硬度和表面粗糙度均符合技术条件要求。"
    "检验员对抽样件逐项测量并记录结果，发现个别样件存在轻微划痕，已按规定处理。"
)
EN = (
    "The inspection of the plunger and barrel assembly found all dimensions within tolerance. "
    "Please summarize the findings for the quality meeting on Monday. "
)
PROMPT_ENTITIES = (
    "联系人王芳，手机13800138000，邮箱wang.fang@example.com，身份证11010519491231002X，车牌渝CH3BJ1。"
)


def python_re_baseline() -> re.Pattern[str]:
    """The same candidate alternation compiled by Python's backtracking engine."""
    return re.compile(
        "|".join(f"{lead}(?P<{name}>{body}){trail}" for name, lead, body, trail in _ALTERNATIVES)
    )


def accuracy(lines: int) -> dict[str, dict[str, float]]:
    counts: dict[str, Counter[str]] = {kind: Counter() for kind in ENTITY_TYPES[:8]}
    for line in labeled_lines(lines):
        want = {(e["type"], e["start"], e["end"]) for e in line["entities"]}
        got = {(e.type, e.start, e.end) for e in scan(line["text"])}
        for kind, *_ in want & got:
            counts[kind]["tp"] += 1
        for kind, *_ in got - want:
            counts.setdefault(kind, Counter())["fp"] += 1
        for kind, *_ in want - got:
            counts[kind]["fn"] += 1
    return {
        kind: {
            "tp": c["tp"],
            "fp": c["fp"],
            "fn": c["fn"],
            "precision": c["tp"] / max(1, c["tp"] + c["fp"]),
            "recall": c["tp"] / max(1, c["tp"] + c["fn"]),
        }
        for kind, c in counts.items()
    }


def megabytes_per_second(function: object, text: str, repeat: int = 3) -> float:
    size = len(text.encode("utf-8"))
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        function(text)  # type: ignore[operator]
        best = min(best, time.perf_counter() - started)
    return size / best / 1e6


def percentiles(function: object, text: str, count: int) -> tuple[float, float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        function(text)  # type: ignore[operator]
        samples.append(time.perf_counter() - started)
    samples.sort()
    return statistics.median(samples) * 1000, samples[int(len(samples) * 0.99)] * 1000


def gateway_overhead(prompt: str, rounds: int, seconds: int) -> dict[str, float]:
    """p50 at one connection through dizuo with the guard off, logging and redacting."""
    import shutil
    import tempfile

    from gateway import Stack, Target, wrk

    home = Path(tempfile.mkdtemp(prefix="dizuo-bench-guard-"))
    stack = Stack(home)
    try:
        up = stack.nginx()
        targets = []
        for action in ("off", "log", "redact"):
            config = f"""
local: false
guard: {{default: {{action: {action}}}}}
deployments:
  - {{name: bench-json, model: bench-json, provider: openai-compatible,
      base_url: "http://127.0.0.1:{up}/json/v1", price: {{input: 2, output: 8}}}}
"""
            port, pid, key = stack.dizuo(
                up, f"guard-{action}", {"DIZUO_METERING": "false"}, config_text=config
            )
            body = json.dumps(
                {"model": "bench-json", "messages": [{"role": "user", "content": prompt}], "max_tokens": 64},
                ensure_ascii=False,
            )
            targets.append(
                Target(
                    f"guard {action}",
                    f"http://127.0.0.1:{port}/v1/chat/completions",
                    key=key,
                    pid=pid,
                    body=body,
                )
            )
        for target in targets:
            wrk(target, 2, 4)
        for _ in range(rounds):
            for target in targets:
                result = wrk(target, seconds, 1, latency=True)
                target.add("p50_ms", result["p50_ms"])
                target.add("errors", result["non2xx"] + result["socket_errors"])
        off = targets[0].median("p50_ms")
        out: dict[str, float] = {}
        print("\nend to end, 4 KB prompt, one connection (medians of rounds):")
        for target in targets:
            p50 = target.median("p50_ms")
            errors = sum(target.results["errors"])
            print(f"  {target.name:<13} p50 {p50:.3f} ms  added {p50 - off:+.3f} ms  errors {errors:.0f}")
            out[f"{target.name.replace(' ', '_')}_p50_ms"] = p50
        return out
    finally:
        stack.stop()
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=2400)
    parser.add_argument("--out", type=Path, default=BENCH / "out" / "guard.json")
    parser.add_argument("--gateway", action="store_true", help="also measure end to end through dizuo serve")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    args = parser.parse_args()

    table = accuracy(args.lines)
    print(f"accuracy on {args.lines} generated lines (type, start and end must all match)")
    print(f"{'type':<20}{'tp':>6}{'fp':>5}{'fn':>5}{'precision':>11}{'recall':>9}")
    for kind, row in table.items():
        print(
            f"{kind:<20}{row['tp']:>6}{row['fp']:>5}{row['fn']:>5}{row['precision']:>11.4f}{row['recall']:>9.4f}"
        )

    baseline = python_re_baseline()

    def baseline_scan(text: str) -> int:
        return sum(1 for _ in baseline.finditer(text))

    clean = (ZH * 8 + EN * 4) * 400  # about 1 MB of clean mixed text
    ours_mbs = megabytes_per_second(scan, clean)
    base_mbs = megabytes_per_second(baseline_scan, clean, repeat=1)
    print(
        f"\nclean text ({len(clean.encode()) / 1e6:.2f} MB): dizuo {ours_mbs:.1f} MB/s, "
        f"python re {base_mbs:.1f} MB/s, ratio {ours_mbs / base_mbs:.1f}x"
    )

    prompt = ""
    while len(prompt.encode()) < 4096 - len(PROMPT_ENTITIES.encode()):
        prompt += ZH if len(prompt) % 2 else EN
    prompt = prompt[: len(prompt) // 2] + PROMPT_ENTITIES + prompt[len(prompt) // 2 :]
    assert len(scan(prompt)) == 4
    ours_p50, ours_p99 = percentiles(scan, prompt, 3000)
    base_p50, _ = percentiles(baseline_scan, prompt, 300)
    print(
        f"4 KB prompt ({len(prompt.encode())} bytes, 4 entities): dizuo p50 {ours_p50:.3f} ms p99 {ours_p99:.3f} ms; "
        f"python re p50 {base_p50:.3f} ms; ratio {base_p50 / ours_p50:.1f}x"
    )

    summary_gateway = gateway_overhead(prompt, args.rounds, args.seconds) if args.gateway else {}

    summary = {
        "accuracy": table,
        "clean_mb_per_s": ours_mbs,
        "clean_mb_per_s_python_re": base_mbs,
        "prompt_4k_p50_ms": ours_p50,
        "prompt_4k_p99_ms": ours_p99,
        "prompt_4k_p50_ms_python_re": base_p50,
        **summary_gateway,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
