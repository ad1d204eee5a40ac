"""Billing benchmark: what holds, metering and rate limits add to a call.

Two dizuo processes on the same nginx upstream, alternated round by round: one with metering off
(``DIZUO_METERING=false``, a key without limits), one with everything on (hold before forwarding,
settle and a durable usage record plus ledger entries after, a key with RPM/TPM/concurrency limits).
Target: ≤ 0.3 ms added at p50, one connection.

Latency is measured in ``--pairs`` pairs of short one-connection runs, one per side, the order swapped
each pair; the figure is the median of the pairs' differences. This machine (2 shared cores) drifts
between fast and slow phases that last tens of seconds, and the metered side (two more round trips,
to Redis) slows more in a slow phase: a pair sees both sides in the same phase, where long rounds
compared median to median let one phase decide. Throughput is measured after, in ``--rounds``
alternated rounds of 64 connections.

With ``--replicas 2 --postgres URL --redis URL`` each side is two processes sharing one PostgreSQL
database (and, metering on, one Redis for holds and limits): latency is measured through the first
replica, throughput by loading both at once (32 connections each).

    .venv/bin/python bench/billing.py [--pairs 20] [--pair-seconds 2] [--seconds 6] [--rounds 4]
    .venv/bin/python bench/billing.py --replicas 2 --postgres postgresql+psycopg://dizuo:dizuo@127.0.0.1:5432 \
        --redis redis://127.0.0.1:6379/1 [--staging auto|on|off]

With Redis keeping an append-only file (scripts/services.sh starts it so), ``auto`` stages each usage
record in Redis and the answer does not wait for PostgreSQL (docs/billing.md); ``off`` measures the
commit before the answer.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from gateway import BENCH, Stack, Target, wrk

DIZUO = str(Path(sys.executable).parent / "dizuo")


def database_env(server: str | None, name: str) -> dict[str, str]:
    """A fresh PostgreSQL database for one process, or nothing (SQLite in its data dir)."""
    if server is None:
        return {}
    from sqlalchemy import create_engine, text

    database = f"dizuo_bench_{name}"
    engine = create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {database}"))
        connection.execute(text(f"CREATE DATABASE {database}"))
    engine.dispose()
    return {"DIZUO_DATABASE_URL": f"{server}/{database}"}


def admin(home: Path, extra: dict[str, str], *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIZUO_")}
    env["DIZUO_DATA_DIR"] = str(home)
    env.update(extra)
    return subprocess.run(
        [DIZUO, "admin", *args], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()


def load_together(targets: list[Target], seconds: int, connections: int) -> list[dict[str, float]]:
    """Run wrk against every target at once (each replica its own share of the connections)."""
    results: list[dict[str, float]] = [{} for _ in targets]

    def run(index: int) -> None:
        results[index] = wrk(targets[index], seconds, connections)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(targets))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=20, help="latency: pairs of one-connection runs")
    parser.add_argument("--pair-seconds", type=int, default=2, help="latency: seconds of each run")
    parser.add_argument("--seconds", type=int, default=6, help="throughput: seconds of each run")
    parser.add_argument("--rounds", type=int, default=4, help="throughput: rounds of each side")
    parser.add_argument("--out", type=Path, default=BENCH / "out" / "billing.json")
    parser.add_argument(
        "--postgres",
        default=None,
        metavar="URL",
        help="a PostgreSQL server URL without database (postgresql+psycopg://user:pw@host:port); "
        "each process gets a fresh database on it",
    )
    parser.add_argument("--redis", default=None, metavar="URL", help="Redis for the metering-on replicas")
    parser.add_argument("--replicas", type=int, default=1, choices=(1, 2))
    parser.add_argument(
        "--staging",
        default="auto",
        choices=("auto", "on", "off"),
        help="DIZUO_USAGE_STAGING of the metering-on replicas (with --redis)",
    )
    args = parser.parse_args()
    if args.replicas > 1 and not (args.postgres and args.redis):
        parser.error("two replicas share PostgreSQL and Redis: give --postgres and --redis")
    home = Path(tempfile.mkdtemp(prefix="dizuo-bench-billing-"))
    stack = Stack(home)
    try:
        up = stack.nginx()
        off_env = {"DIZUO_METERING": "false", **database_env(args.postgres, "off")}
        on_env = database_env(args.postgres, "on")
        if args.redis:
            import redis

            client = redis.Redis.from_url(args.redis)
            client.flushdb()
            appendonly = client.config_get("appendonly").get("appendonly")
            client.close()
            on_env["DIZUO_REDIS_URL"] = args.redis
            on_env["DIZUO_USAGE_STAGING"] = args.staging
            print(f"Redis appendonly={appendonly}, DIZUO_USAGE_STAGING={args.staging}", flush=True)
        off_port, off_pid, off_key = stack.dizuo(up, "metering-off", off_env)
        on_port, on_pid, _ = stack.dizuo(up, "metering-on", on_env)
        admin(home / "metering-on", on_env, "topup", "--org", "default", "--amount", "1000000")
        limits = ["--rpm", "100000000", "--tpm", "100000000", "--concurrency", "100000"]
        on_key = admin(home / "metering-on", on_env, "create-key", "--org", "default", *limits)
        targets = [
            Target(
                "metering off", f"http://127.0.0.1:{off_port}/v1/chat/completions", key=off_key, pid=off_pid
            ),
            Target("metering on", f"http://127.0.0.1:{on_port}/v1/chat/completions", key=on_key, pid=on_pid),
        ]
        # Further replicas of each side, on the same database (and Redis): loaded together with the first.
        others: dict[str, list[Target]] = {target.name: [] for target in targets}
        for index in range(1, args.replicas):
            for target, env in zip(targets, (off_env, on_env), strict=True):
                port, pid, _ = stack.dizuo(up, f"{target.name.replace(' ', '-')}-{index}", env, first=False)
                url = f"http://127.0.0.1:{port}/v1/chat/completions"
                others[target.name].append(Target(target.name, url, key=target.key, pid=pid))
        for target in targets:
            wrk(target, 2, 8)
        differences: dict[str, list[float]] = {"p50_ms": [], "p99_ms": []}
        for pair in range(args.pairs):
            seen: dict[str, dict[str, float]] = {}
            for target in targets if pair % 2 == 0 else targets[::-1]:
                one = wrk(target, args.pair_seconds, 1, latency=True)
                seen[target.name] = one
                target.add("p50_ms", one["p50_ms"])
                target.add("p99_ms", one["p99_ms"])
                target.add("errors", one["non2xx"] + one["socket_errors"])
            off_one, on_one = (seen[target.name] for target in targets)
            for metric, values in differences.items():
                values.append(on_one[metric] - off_one[metric])
            print(
                f"pair {pair + 1}: p50 off {off_one['p50_ms']:.3f} ms, on {on_one['p50_ms']:.3f} ms,"
                f" added {differences['p50_ms'][-1]:+.3f} ms",
                flush=True,
            )
        for round_ in range(args.rounds):
            for target in targets:
                group = [target, *others[target.name]]
                results = load_together(group, args.seconds, 64 // len(group))
                target.add("rps", sum(result["rps"] for result in results))
                target.add("errors", sum(result["non2xx"] + result["socket_errors"] for result in results))
            print(
                f"round {round_ + 1}: "
                + ", ".join(f"{t.name} {t.results['rps'][-1]:.0f} req/s" for t in targets),
                flush=True,
            )
        off, on = targets
        added = differences["p50_ms"]
        quartiles = statistics.quantiles(added, n=4) if len(added) > 1 else [added[0]] * 3
        summary = {
            "added_p50_ms": statistics.median(added),
            "added_p50_q1_ms": quartiles[0],
            "added_p50_q3_ms": quartiles[2],
            "pairs_at_most_0.3_ms": sum(value <= 0.3 for value in added) / len(added),
            "added_p99_ms": statistics.median(differences["p99_ms"]),
            "throughput_on_over_off": on.median("rps") / off.median("rps"),
            "errors": sum(off.results["errors"]) + sum(on.results["errors"]),
        }
        print()
        for target in targets:
            print(
                f"{target.name:<14} p50 {target.median('p50_ms'):.3f} ms  p99 {target.median('p99_ms'):.3f} ms"
                f"  {target.median('rps'):.0f} req/s"
            )
        for name, value in summary.items():
            print(f"{name:<24}{value:>10.3f}")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps({"targets": {t.name: t.results for t in targets}, "summary": summary}, indent=2)
        )
    finally:
        stack.stop()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
