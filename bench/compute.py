"""Placement of a compute job among 100 pools: the full, explained decision (every pool's feasibility
and reason, cost estimates, waits) against the bare minimum in the same run, the cheapest pool by
its hourly price alone (one ``min`` over the pools).

    .venv/bin/python bench/compute.py [--pools 100] [--calls 2000]

Pools spread over ten regions, three accelerator types and three data classes, with clusters of
several sizes (some down, some busy), so that each placement meets every kind of refusal. The run
stops unless the placement chose the pool the arithmetic says it should.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from decimal import Decimal

from dizuo.compute.placement import Inventory, JobRequest, Node, estimate, place
from dizuo.config import PoolConfig

TYPES = ("ascend-910b", "a100", "mlu370")
CLASSES = ("general", "important", "core")


def pools_and_inventories(count: int, seed: int = 7) -> tuple[list[PoolConfig], dict[str, Inventory]]:
    rng = random.Random(seed)
    pools, inventories = [], {}
    for index in range(count):
        name = f"pool-{index:03d}"
        pools.append(
            PoolConfig.model_validate(
                {
                    "name": name,
                    "region": f"r{index % 10}",
                    "accelerator": TYPES[index % 3],
                    "price": {
                        "accelerator_hour": f"{rng.uniform(3, 15):.2f}",
                        "cpu_hour": f"{rng.uniform(0.05, 0.2):.3f}",
                        "memory_gb_hour": "0.02",
                    },
                    "data_class_max": CLASSES[index % 3],
                    "max_job_hours": rng.choice((24, 72, 168)),
                }
            )
        )
        nodes = tuple(Node(64, 512, rng.choice((1, 4, 8))) for _ in range(rng.randint(1, 8)))
        free = tuple(Node(n.cpus / 2, n.memory_gb / 2, rng.randint(0, int(n.accelerators))) for n in nodes)
        inventories[name] = Inventory(nodes, free, up=index % 17 != 0, queued=rng.randint(0, 5))
    return pools, inventories


def timed(function: object, calls: int) -> list[float]:
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        function()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pools", type=int, default=100)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    pools, inventories = pools_and_inventories(args.pools)
    job = JobRequest(
        accelerators=2, accelerator_type="a100", cpus=8, memory_gb=32, max_hours=24, expected_hours=4
    )

    placed = place(job, pools, inventories, org_region="r1")
    # What it must have chosen: the cheapest of the pools that pass every rule, by the same arithmetic.
    fits = [
        p
        for p in pools
        if p.accelerator == "a100"
        and inventories[p.name].up
        and p.max_job_hours >= 24
        and any(n.accelerators >= 2 for n in inventories[p.name].total)
    ]
    expected = min(fits, key=lambda p: (estimate(p, job), p.name), default=None)
    if expected is None or placed.chosen != expected.name or len(placed.considered) != len(pools):
        sys.exit(
            f"placement chose {placed.chosen}, the arithmetic says {expected and expected.name}: nothing timed"
        )

    hourly = {p.name: p.price.accelerator_hour * 2 + p.price.cpu_hour * 8 for p in pools}

    def bare() -> str:
        return min(hourly, key=hourly.__getitem__)

    for _ in range(200):  # warm up
        place(job, pools, inventories, org_region="r1")
        bare()
    full, baseline = [], []
    for _ in range(5):  # alternated: the machine's speed drifts
        full += timed(lambda: place(job, pools, inventories, org_region="r1"), args.calls // 5)
        baseline += timed(bare, args.calls // 5)
    p50, p99 = statistics.median(full) * 1e3, statistics.quantiles(full, n=100)[98] * 1e3
    base = statistics.median(baseline) * 1e3
    feasible = sum(c.feasible for c in placed.considered)
    print(f"{args.pools} pools ({feasible} feasible for the job), {args.calls} placements each:")
    print(f"  placement, explained   p50 {p50:.3f} ms  p99 {p99:.3f} ms  (goal p50 <= 1 ms)")
    print(f"  cheapest by price only p50 {base:.3f} ms")
    print(f"  ratio                  {p50 / base:.1f}x the bare minimum")
    print(f"  chosen {placed.chosen}, estimate ¥{Decimal(placed.considered[0].estimate or 0) / 1_000_000}")


if __name__ == "__main__":
    main()
