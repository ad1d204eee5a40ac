"""Routing benchmark: what choosing among 100 deployments of one alias costs.

1. The router alone, per call: the data-class clearance (cached per alias, class and region), the
   first deployment by each strategy, and its circuit breaker's admission (median of 20,000 calls,
   in microseconds; the full order is worked out only on failover).
2. The whole gateway at one connection: one alias with 1 deployment against one with 100, on the
   same nginx upstream, alternated round by round (p50 difference).

Target: routing adds ≤ 50 µs p50 with 100 deployments.

    .venv/bin/python bench/routing.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from dizuo.config import parse_config
from dizuo.providers import Transport
from dizuo.routing import Router, build_deployments
from dizuo.settings import Settings
from gateway import BENCH, Stack, Target, wrk

N = 100
STRATEGIES = ("priority", "weighted", "least-inflight", "latency", "cost", "local-first")


def deployments_yaml(upstream: int, count: int, alias: str) -> list[dict[str, object]]:
    return [
        {
            "name": f"{alias}-{i}",
            "model": alias,
            "provider": "openai-compatible",
            "base_url": f"http://127.0.0.1:{upstream}/json/v1",
            "region": ("cq", "xj", "gz")[(i // 3) % 3],
            "data_class_max": ("general", "important", "core")[i % 3],
            "priority": i % 4,
            "weight": 1 + i % 5,
            "price": {"input": f"{0.5 + i / 10}", "output": f"{2 + i / 5}"},
        }
        for i in range(count)
    ]


def router_alone(iterations: int = 20_000) -> dict[str, float]:
    config = parse_config({"local": False, "deployments": deployments_yaml(9, N, "m")}, "bench")
    deployments = build_deployments(config, Settings(), Transport())
    results = {}
    for strategy in STRATEGIES:
        router = Router(deployments, {"m": strategy})
        for i, dep in enumerate(deployments):
            router.health.succeeded(dep.name, 0.1 + i / 1000)
        samples = []
        for i in range(iterations):
            data_class = ("general", "important", "core")[i % 3]
            started = time.perf_counter_ns()
            first = next(router.order("m", router.eligible("m", data_class, "cq")))
            router.health.admit(first.name)
            samples.append(time.perf_counter_ns() - started)
        results[strategy] = statistics.median(samples) / 1000
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=BENCH / "out" / "routing.json")
    args = parser.parse_args()
    alone = router_alone()
    print("router alone, µs per call (p50), 100 deployments:")
    for strategy, micros in alone.items():
        print(f"  {strategy:<16}{micros:>8.1f}")

    home = Path(tempfile.mkdtemp(prefix="dizuo-bench-routing-"))
    stack = Stack(home)
    try:
        up = stack.nginx()
        one = json.dumps({"local": False, "deployments": deployments_yaml(up, 1, "bench-json")})
        hundred = json.dumps({"local": False, "deployments": deployments_yaml(up, N, "bench-json")})
        p1, pid1, key1 = stack.dizuo(up, "one", {"DIZUO_METERING": "false"}, one)
        p100, pid100, key100 = stack.dizuo(up, "hundred", {"DIZUO_METERING": "false"}, hundred)
        targets = [
            Target("1 deployment", f"http://127.0.0.1:{p1}/v1/chat/completions", key=key1, pid=pid1),
            Target("100 deployments", f"http://127.0.0.1:{p100}/v1/chat/completions", key=key100, pid=pid100),
        ]
        for target in targets:
            wrk(target, 2, 4)
        for _ in range(args.rounds):
            for target in targets:
                result = wrk(target, args.seconds, 1, latency=True)
                target.add("p50_ms", result["p50_ms"])
                target.add("errors", result["non2xx"] + result["socket_errors"])
        added = (targets[1].median("p50_ms") - targets[0].median("p50_ms")) * 1000
        for target in targets:
            print(
                f"{target.name:<18} p50 {target.median('p50_ms'):.3f} ms  errors {sum(target.results['errors']):.0f}"
            )
        print(f"gateway p50 added by 100 deployments: {added:.1f} µs")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"router_alone_us": alone, "gateway_added_us": added}, indent=2))
    finally:
        stack.stop()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
