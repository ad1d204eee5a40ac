"""Billing benchmark: what holds, metering and rate limits add to a call.

Two dizuo processes on the same nginx upstream, alternated round by round: one with metering off
(``DIZUO_METERING=false``, a key without limits), one with everything on (hold before forwarding,
settle and a durable usage record plus ledger entries after, a key with RPM/TPM/concurrency limits).
Target (issue 3): ≤ 0.3 ms added at p50, one connection.

    .venv/bin/python bench/billing.py [--seconds 6] [--rounds 4]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--out", type=Path, default=BENCH / "out" / "billing.json")
    parser.add_argument(
        "--postgres",
        default=None,
        metavar="URL",
        help="a PostgreSQL server URL without database (postgresql+psycopg://user:pw@host:port); "
        "each process gets a fresh database on it",
    )
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="dizuo-bench-billing-"))
    stack = Stack(home)
    try:
        up = stack.nginx()
        off_env, on_env = database_env(args.postgres, "off"), database_env(args.postgres, "on")
        off_port, off_pid, off_key = stack.dizuo(up, "metering-off", {"DIZUO_METERING": "false", **off_env})
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
        for target in targets:
            wrk(target, 2, 8)
        for round_ in range(args.rounds):
            for target in targets:
                one = wrk(target, args.seconds, 1, latency=True)
                target.add("p50_ms", one["p50_ms"])
                target.add("p99_ms", one["p99_ms"])
                target.add("errors", one["non2xx"] + one["socket_errors"])
                many = wrk(target, args.seconds, 64)
                target.add("rps", many["rps"])
                target.add("errors", many["non2xx"] + many["socket_errors"])
            print(
                f"round {round_ + 1}: "
                + ", ".join(
                    f"{t.name} p50 {t.results['p50_ms'][-1]:.3f} ms, {t.results['rps'][-1]:.0f} req/s"
                    for t in targets
                ),
                flush=True,
            )
        off, on = targets
        summary = {
            "added_p50_ms": on.median("p50_ms") - off.median("p50_ms"),
            "added_p99_ms": on.median("p99_ms") - off.median("p99_ms"),
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
