"""Journal microbenchmark: what one durable usage record costs with one call in flight.

The metering benchmark (``bench/billing.py``) measures the whole gateway; this one takes the journal
alone, to show where the added time goes. Each call holds, settles and awaits ``Journal.record``
as the gateway does, on SQLite. Baseline in the same run: the same rows (the usage record, its
ledger legs and the wallet update) written and committed by the sqlite3 driver directly, on the
event loop's own thread. The difference is the journal's hand-off to its writer thread and back
(measured both ways: queued for the writer, and as a lone call committed in place, which is what
the gateway does when no other call is in flight) and its bookkeeping.

    .venv/bin/python bench/journal.py [--calls 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sqlite3
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from dizuo.accounts import create_org
from dizuo.billing import Scope, WalletBook
from dizuo.billing.journal import Charge, Journal
from dizuo.billing.money import parse_cny
from dizuo.billing.service import topup
from dizuo.store import Database


def usage_record(request_id: str, org_id: str, cost: int) -> dict[str, object]:
    return {
        "request_id": request_id,
        "org_id": org_id,
        "key_id": "k" * 32,
        "model": "echo-model",
        "deployment": "echo-1",
        "provider": "openai-compatible",
        "region": "cq",
        "endpoint": "chat",
        "prompt_tokens": 12,
        "completion_tokens": 3,
        "cost": cost,
        "voucher_part": 0,
        "own_part": cost,
        "uncollected": 0,
        "latency_ms": 1,
        "data_class": "general",
        "stream": False,
        "status": "ok",
        "attempts": None,
        "created_at": dt.datetime.now(dt.UTC),
    }


async def through_the_journal(db: Database, org_id: str, calls: int, alone: bool) -> list[float]:
    book = WalletBook()
    journal = Journal(db, book)
    journal.start()
    scope = Scope("openai-compatible", "cq", "echo-model")
    times = []
    try:
        for _ in range(calls):
            started = time.perf_counter()
            hold = await book.reserve(org_id, 10, scope, time.time())
            settlement = await book.settle(hold, 5)
            record = usage_record(uuid.uuid4().hex, org_id, 5)
            await journal.record(Charge(record, settlement, "openai-compatible"), alone=alone)
            times.append(time.perf_counter() - started)
    finally:
        journal.stop()
    return times


def driver_directly(path: Path, org_id: str, calls: int) -> list[float]:
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA synchronous=NORMAL")
    usage_columns = [row[1] for row in connection.execute("PRAGMA table_info(usage_records)")]
    ledger_columns = [row[1] for row in connection.execute("PRAGMA table_info(ledger_entries)")][1:]
    usage_sql = (
        f"INSERT INTO usage_records ({','.join(usage_columns)}) VALUES ({','.join('?' * len(usage_columns))})"
    )
    ledger_sql = f"INSERT INTO ledger_entries ({','.join(ledger_columns)}) VALUES ({','.join('?' * len(ledger_columns))})"
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        record = usage_record(uuid.uuid4().hex, org_id, 5)
        now = record["created_at"] = str(record["created_at"])
        legs = [
            {
                "tx_id": record["request_id"],
                "kind": "charge",
                "account": account,
                "amount": amount,
                "org_id": org_id,
                "created_at": now,
            }
            for account, amount in ((f"org:{org_id}:cash", -5), ("revenue:openai-compatible", 5))
        ]
        connection.execute("BEGIN")
        connection.execute(usage_sql, [record.get(c) for c in usage_columns])
        connection.executemany(ledger_sql, [[leg.get(c) for c in ledger_columns] for leg in legs])
        connection.execute(
            "UPDATE wallets SET balance = balance - 5, version = version + 1 WHERE org_id = ?", (org_id,)
        )
        connection.execute("COMMIT")
        times.append(time.perf_counter() - started)
    connection.close()
    return times


def summary(name: str, times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    p50, p99 = statistics.median(ordered), ordered[int(0.99 * (len(ordered) - 1))]
    print(f"{name:<28} p50 {p50 * 1000:.3f} ms  p99 {p99 * 1000:.3f} ms")
    return {"p50_ms": p50 * 1000, "p99_ms": p99 * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        path = Path(home) / "bench.db"
        db = Database(f"sqlite:///{path}")
        db.upgrade()
        org = create_org(db, "bench")
        topup(db, "bench", parse_cny("100000"))
        rounds = []
        for _ in range(2):  # alternated, so that the machine's drift falls on both
            direct = summary("sqlite3 driver, same rows", driver_directly(path, org.id, args.calls))
            queued = summary(
                "journal, via the writer", asyncio.run(through_the_journal(db, org.id, args.calls, False))
            )
            alone = summary(
                "journal, a lone call", asyncio.run(through_the_journal(db, org.id, args.calls, True))
            )
            rounds.append((direct["p50_ms"], queued["p50_ms"], alone["p50_ms"]))
        db.dispose()
    direct_p50 = statistics.median(r[0] for r in rounds)
    for name, index in (("via the writer thread", 1), ("a lone call, committed in place", 2)):
        p50 = statistics.median(r[index] for r in rounds)
        print(f"journal's own cost, {name}: p50 +{p50 - direct_p50:.3f} ms (ratio {p50 / direct_p50:.1f}x)")


if __name__ == "__main__":
    main()
