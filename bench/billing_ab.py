"""A/B of two code trees on the metered path: metered calls, two replicas each on PostgreSQL + Redis.

bench/billing.py compares metering on with metering off, and its figure moves by ±0.05 ms from run to
run on this machine: too much to judge a change of 0.01–0.03 ms. This runs two checkouts side by side
(each its own database, Redis database and pair of replicas, metering on, the same nginx upstream)
and alternates one-connection runs between them, so that both see the same moments of the machine.

    git worktree add /tmp/before HEAD~1
    .venv/bin/python bench/billing_ab.py /tmp/before . [--rounds 10] [--seconds 3] \\
        [--postgres postgresql+psycopg://dizuo:dizuo@127.0.0.1:5432] [--redis redis://127.0.0.1:6379]

Prints each tree's p50 per run, their medians and B − A (ms).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from pathlib import Path

import redis

from billing import admin, database_env
from gateway import Stack, Target, wrk


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("a", type=Path, help="checkout A (its src/ is imported by its replicas)")
    parser.add_argument("b", type=Path, help="checkout B")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--postgres", default="postgresql+psycopg://dizuo:dizuo@127.0.0.1:5432")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379", help="Redis server URL without database")
    parser.add_argument(
        "--redis-b",
        help="B's Redis server URL without database (default: --redis), e.g. unix:///run/redis.sock",
    )
    args = parser.parse_args()
    trees = {"A": args.a.resolve(), "B": args.b.resolve()}
    home = Path(tempfile.mkdtemp(prefix="dizuo-bench-ab-"))
    stack = Stack(home)
    try:
        up = stack.nginx()
        targets: dict[str, Target] = {}
        for index, (name, tree) in enumerate(trees.items()):
            server = args.redis_b if name == "B" and args.redis_b else args.redis
            redis_url = f"{server}?db={3 + index}" if server.startswith("unix:") else f"{server}/{3 + index}"
            redis.Redis.from_url(redis_url).flushdb()
            env = {
                **database_env(args.postgres, f"ab_{name.lower()}"),
                "DIZUO_REDIS_URL": redis_url,
                "PYTHONPATH": str(tree / "src"),
            }
            port, pid, _ = stack.dizuo(up, f"ab-{name}", env)
            stack.dizuo(up, f"ab-{name}-2", env, first=False)
            admin(home / f"ab-{name}", env, "topup", "--org", "default", "--amount", "1000000")
            limits = ["--rpm", "100000000", "--tpm", "100000000", "--concurrency", "100000"]
            key = admin(home / f"ab-{name}", env, "create-key", "--org", "default", *limits)
            targets[name] = Target(name, f"http://127.0.0.1:{port}/v1/chat/completions", key=key, pid=pid)
        for target in targets.values():
            wrk(target, 2, 8)
        p50: dict[str, list[float]] = {name: [] for name in targets}
        for round_ in range(args.rounds):
            order = list(targets.items())
            for name, target in order if round_ % 2 == 0 else reversed(order):
                p50[name].append(wrk(target, args.seconds, 1, latency=True)["p50_ms"])
        for name, values in p50.items():
            runs = " ".join(f"{v:.3f}" for v in values)
            print(f"{name} {trees[name]}: median p50 {statistics.median(values):.3f} ms ({runs})")
        print(f"B - A = {statistics.median(p50['B']) - statistics.median(p50['A']):+.3f} ms")
    finally:
        stack.stop()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
