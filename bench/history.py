"""History benchmark: the console, reports and exports over millions of usage records, and the
gateway beside a console tab.

The history is grown on SQLite (or, with `--database`, PostgreSQL) by a generator that writes what the journal writes: for each call a
usage record and its balanced charge (cash, voucher and revenue legs), wallets and vouchers moved to
match, some failed calls; the hourly rollups are then rebuilt by `dizuo admin rollups rebuild` and
checked by `dizuo admin rollups verify`. Every invariant is checked before anything is timed. At each
size (default 1M and 3M records over 60 days, 200 organizations, 1,000 keys, 21 voucher holders):

* the console's overview (all organizations; 24 h, 7 and 30 days) over HTTP from `dizuo serve`, against
  the same page on the empty platform and against the cheapest read of the records themselves
  (one SQL aggregate over the range), both measured in the same run;
* the voucher report of a month, a month's statement and the usage export of the busiest organization,
  each run as `dizuo admin …` (time, and peak RSS, against the same command on the empty platform);
* the server's RSS before and after the overview pages;
* gateway throughput (wrk, 64 connections) alone, beside a console tab as the console runs one (the
  day's overview reloaded every 5 s), and beside a tab reloading the 30-day overview every second
  (sixty times what the console does), alternated round by round.

    .venv/bin/python bench/history.py [--sizes 1000000 3000000] [--seconds 8] [--rounds 3]
    .venv/bin/python bench/history.py --database postgresql+psycopg://dizuo:dizuo@127.0.0.1/dizuo_bench \
        --sizes 10000000

Needs nginx and wrk (Debian packages), about 1.2 GB of disk per million records.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dizuo.accounts import create_key, create_org
from dizuo.accounts.members import (
    create_member,
    verify_password,
)
from dizuo.accounts.sessions import open_session
from dizuo.billing.reports import statement, voucher_report
from dizuo.billing.service import VoucherTerms, issue_voucher, topup
from dizuo.store import Database
from gateway import Stack, Target, check, rss_mb, wrk

DIZUO = str(Path(sys.executable).parent / "dizuo")
START = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
ISSUERS = ("重庆市大数据局", "两江新区管委会", "市经信委")
MODELS = (
    ("deepseek-chat", "deepseek", "cn-east"),
    ("qwen-plus", "qwen", "cn-north"),
    ("glm-4", "zhipu", "cq"),
)
STAMP = "%Y-%m-%d %H:%M:%S.%f"


class History:
    """The grown database: its organizations, keys and vouchers, and the records written so far."""

    def __init__(
        self, home: Path, orgs: int, keys: int, holders: int, days: int, url: str | None = None
    ) -> None:
        self.path = home / "history.db"
        self.url = url or f"sqlite:///{self.path}"
        self.sqlite = self.url.startswith("sqlite")
        self.mark = "?" if self.sqlite else "%s"
        self.days = days
        if not self.sqlite:  # a PostgreSQL database of its own, emptied
            with self.connect() as connection:
                connection.execute("DROP SCHEMA IF EXISTS public CASCADE")
                connection.execute("CREATE SCHEMA public")
        db = Database(self.url)
        db.upgrade()
        self.orgs: list[tuple[str, str]] = []  # (id, name)
        for index in range(orgs):
            name = f"企业{index:03d}"
            self.orgs.append((create_org(db, name).id, name))
            topup(db, name, 10**15)  # ¥1,000,000,000: no call of the history is refused for money
        self.keys: list[tuple[str, str]] = []  # (key id, org id)
        for index in range(keys):
            org_id, name = self.orgs[index % orgs]
            self.keys.append((create_key(db, name).record.id, org_id))
        self.vouchers: dict[str, str] = {}  # org id -> voucher id
        begin = START - dt.timedelta(days=days + 1)
        for index in range(holders):
            org_id, name = self.orgs[index]
            terms = VoucherTerms(
                ISSUERS[index % 3],
                f"2026 算力券 {index % 2 + 1} 期",
                10**14,
                Decimal("0.3"),
                begin,
                START + dt.timedelta(days=30),
            )
            self.vouchers[org_id] = issue_voucher(db, name, terms).id
        create_member(db, "bench-operator", "bench-password-1", "platform-admin")
        actor = verify_password(db, "bench-operator", "bench-password-1")
        assert actor is not None
        self.cookie, _ = open_session(db, actor)
        db.dispose()
        self.records = 0

    def connect(self) -> Any:
        """A DB-API connection to the history (PostgreSQL's speaking UTC, as SQLite's text does)."""
        if self.sqlite:
            return sqlite3.connect(self.path)
        connection = psycopg.connect(self.url.replace("+psycopg", ""), autocommit=True)
        connection.execute("SET TIME ZONE 'UTC'")
        return connection

    def insert(self, connection: Any, table: str, columns: str, rows: list[tuple[Any, ...]]) -> None:
        """Add *rows* in one statement (SQLite) or one COPY (PostgreSQL); the caller's transaction."""
        if self.sqlite:
            marks = ", ".join(["?"] * len(rows[0])) if rows else ""
            connection.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", rows)
            return
        with connection.cursor().copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def transaction(self, connection: Any) -> Any:
        return connection if self.sqlite else connection.transaction()

    def grow(self, count: int, seed: int) -> None:
        """Add *count* calls spread over the last ``days`` days: the busiest organization makes one in
        thirteen (about 230k of 3M), the others the rest."""
        chance = random.Random(seed)
        span = self.days * 86400
        connection = self.connect()
        own: dict[str, int] = {}
        voucher_paid: dict[str, int] = {}
        busiest = self.keys[0]
        for first in range(0, count, 50_000):
            usage, legs, failed = [], [], []
            for _ in range(min(50_000, count - first)):
                key_id, org_id = busiest if chance.random() < 1 / 13 else chance.choice(self.keys)
                model, provider, region = chance.choice(MODELS)
                moment = (START - dt.timedelta(seconds=chance.random() * span)).strftime(STAMP)
                if chance.random() < 0.01:
                    failed.append(
                        (uuid.uuid4().hex, org_id, key_id, model, "chat", 429, "rate_limited", 3, moment)
                    )
                    continue
                prompt, completion = chance.randint(10, 4000), chance.randint(1, 800)
                cost = (prompt * 2 + completion * 8 + 999_999) // 1_000_000 + chance.randint(0, 300)
                voucher_id = self.vouchers.get(org_id)
                voucher = cost * 3 // 10 if voucher_id else 0
                paid = cost - voucher
                request = f"req_{uuid.uuid4().hex}"
                tx = f"tx_{uuid.uuid4().hex}"
                status = "client_gone" if chance.random() < 0.005 else "ok"
                latency = int(chance.lognormvariate(6, 0.8))
                usage.append(
                    (
                        request,
                        org_id,
                        key_id,
                        model,
                        f"{provider}-1",
                        provider,
                        region,
                        "chat",
                        prompt,
                        completion,
                        cost,
                        voucher,
                        paid,
                        0,
                        latency,
                        "general",
                        chance.random() < 0.5,
                        status,
                        None,
                        moment,
                    )
                )
                legs.append((tx, "charge", f"org:{org_id}:cash", -paid, org_id, None, request, None, moment))
                if voucher:
                    legs.append(
                        (
                            tx,
                            "charge",
                            f"voucher:{voucher_id}",
                            -voucher,
                            org_id,
                            voucher_id,
                            request,
                            None,
                            moment,
                        )
                    )
                    voucher_paid[voucher_id] = voucher_paid.get(voucher_id, 0) + voucher
                legs.append((tx, "charge", f"revenue:{provider}", cost, org_id, None, request, None, moment))
                own[org_id] = own.get(org_id, 0) + paid
            with self.transaction(connection):
                self.insert(connection, "usage_records", USAGE, usage)
                self.insert(connection, "ledger_entries", LEGS, legs)
                self.insert(connection, "failed_calls", FAILED, failed)
            self.records += len(usage)
        mark = self.mark
        with self.transaction(connection):
            connection.cursor().executemany(
                f"UPDATE wallets SET balance = balance - {mark}, version = version + 1 WHERE org_id = {mark}",
                [(amount, org_id) for org_id, amount in own.items()],
            )
            connection.cursor().executemany(
                f"UPDATE vouchers SET remaining = remaining - {mark} WHERE id = {mark}",
                [(amount, voucher_id) for voucher_id, amount in voucher_paid.items()],
            )
        if not self.sqlite:
            connection.execute("ANALYZE")
        connection.close()

    def check(self) -> None:
        """Every invariant of the books, or stop: nothing is timed over a broken history."""
        connection = self.connect()
        unbalanced = connection.execute(
            "SELECT count(*) FROM (SELECT tx_id FROM ledger_entries GROUP BY tx_id HAVING sum(amount) != 0)"
            " AS unbalanced"
        ).fetchone()[0]
        wallets = connection.execute(
            "SELECT count(*) FROM wallets w WHERE w.balance != (SELECT coalesce(sum(amount), 0) FROM"
            " ledger_entries WHERE account = 'org:' || w.org_id || ':cash')"
        ).fetchone()[0]
        vouchers = connection.execute(
            "SELECT count(*) FROM vouchers v WHERE v.remaining != (SELECT coalesce(sum(amount), 0) FROM"
            " ledger_entries WHERE account = 'voucher:' || v.id)"
        ).fetchone()[0]
        revenue, cost = connection.execute(
            "SELECT (SELECT sum(amount) FROM ledger_entries WHERE account LIKE 'revenue:%'),"
            " (SELECT sum(cost) FROM usage_records)"
        ).fetchone()
        # The gateway's own calls under load (the default organization's) are real records, not the history's.
        records = connection.execute(
            "SELECT count(*) FROM usage_records WHERE org_id != (SELECT id FROM organizations WHERE name = 'default')"
        ).fetchone()[0]
        connection.close()
        problems = {
            "unbalanced transactions": unbalanced,
            "wallets unlike their ledger": wallets,
            "vouchers unlike their ledger": vouchers,
            "revenue unlike usage": int(revenue != cost),
            "records missing": int(records != self.records),
        }
        if any(problems.values()):
            sys.exit(f"the history is not consistent: {problems}")


USAGE = (
    "request_id, org_id, key_id, model, deployment, provider, region, endpoint, prompt_tokens, completion_tokens,"
    " cost, voucher_part, own_part, uncollected, latency_ms, data_class, stream, status, attempts, created_at"
)
LEGS = "tx_id, kind, account, amount, org_id, voucher_id, request_id, note, created_at"
FAILED = "request_id, org_id, key_id, model, endpoint, status, code, latency_ms, created_at"


PEAK = str(Path(__file__).resolve().parent / "peak_rss.py")  # a command's own peak RSS


def admin(url: str, *args: str) -> tuple[float, float, bytes]:
    """Run ``dizuo admin ARGS`` on the history; return its seconds, peak RSS in MB and output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIZUO_")}
    env["DIZUO_DATABASE_URL"] = url
    with tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, PEAK, DIZUO, "admin", *args], env=env, stdout=out, stderr=subprocess.PIPE
        )
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            sys.exit(f"dizuo admin {' '.join(args)} failed: {done.stderr.decode()[-500:]}")
        out.seek(0)
        return seconds, int(done.stderr.decode().split()[-1]) / 1024, out.read()


def page(port: int, cookie: str, days: int) -> tuple[float, int]:
    """Load the overview; return its seconds and the calls it shows (it must show them)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/console/?days={days}",
        headers={"Cookie": f"dizuo_session={cookie}; dizuo_lang=zh"},
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=300) as response:
        body = response.read().decode()
        status = response.status
    seconds = time.perf_counter() - started
    found = re.search(r'data-testid="total-calls">([\d,]+)<', body)
    if status != 200 or found is None:
        sys.exit(f"the overview answered {status} without its figures: {body[:300]}")
    return seconds, int(found.group(1).replace(",", ""))


def from_records(history: History, days: int) -> float:
    """The cheapest read of the records the overview once made: one SQL aggregate over the range."""
    since = (START - dt.timedelta(days=days)).strftime(STAMP)
    connection = history.connect()
    started = time.perf_counter()
    connection.execute(
        "SELECT count(*), sum(prompt_tokens + completion_tokens), sum(cost), sum(voucher_part)"
        f" FROM usage_records WHERE created_at >= {history.mark}",
        (since,),
    ).fetchone()
    seconds = time.perf_counter() - started
    connection.close()
    return seconds


def load(target: Target, seconds: int) -> float:
    """Requests a second at 64 connections; every call must have been answered."""
    result = wrk(target, seconds, 64)
    if result["non2xx"] or result["socket_errors"]:
        sys.exit(f"the gateway refused calls under load: {result}")
    return result["rps"]


def in_process(report: Callable[[Database], object], url: str, *, empty: bool = False) -> float:
    """Seconds a report takes in a running process (the admin API's case: no start-up), median of 3."""
    db = Database(url)
    times = []
    for _ in range(3):
        started = time.perf_counter()
        if not report(db) and not empty:
            sys.exit("a report came back empty")
        times.append(time.perf_counter() - started)
    db.dispose()
    return median(times)


def median(values: list[float]) -> float:
    return statistics.median(values)


def measure(
    history: History, stack: Stack, upstream: int, args: argparse.Namespace, label: str
) -> dict[str, float]:
    figures: dict[str, float] = {}
    verified = admin(history.url, "rollups", "verify")
    if b"agree" not in verified[2]:
        sys.exit("the rollups do not agree with the records")
    port, pid, _ = stack.dizuo(
        upstream, name=f"serve-{label}", env_extra={"DIZUO_DATABASE_URL": history.url}, first=False
    )
    # Money for every call the run makes, and a key with limits far above what it asks (as production has them).
    admin(history.url, "topup", "--org", "default", "--amount", "1000000")
    limits = ("--rpm", "100000000", "--tpm", "2000000000", "--concurrency", "10000")
    key = admin(history.url, "create-key", "--org", "default", *limits)[2].decode().strip()
    target = Target("dizuo", f"http://127.0.0.1:{port}/v1/chat/completions", key=key, pid=pid)
    check(target)
    page(port, history.cookie, 1)
    figures["rss_before"] = rss_mb(pid)
    for days in (1, 7, 30):
        times, shown = [], 0
        for _ in range(3):
            seconds, shown = page(port, history.cookie, days)
            times.append(seconds)
        figures[f"overview_{days}"] = median(times)
        figures[f"records_{days}"] = median([from_records(history, days) for _ in range(3)])
        if history.records and shown == 0:
            sys.exit(f"the {days}-day overview shows no calls over {history.records} records")
    for _ in range(5):
        for days in (1, 7, 30):
            page(port, history.cookie, days)
    figures["rss_after"] = rss_mb(pid)
    month = (START - dt.timedelta(days=15)).astimezone(dt.timezone(dt.timedelta(hours=8))).strftime("%Y-%m")
    seconds, rss, out = admin(
        history.url, "voucher-report", "--issuer", ISSUERS[0], "--month", month, "--format", "json"
    )
    if history.records and b"voucher_paid" not in out:
        sys.exit("the voucher report is empty")
    figures["voucher_s"], figures["voucher_mb"] = seconds, rss
    figures["voucher_in_s"] = in_process(
        lambda db: voucher_report(db, ISSUERS[0], month), history.url, empty=not history.records
    )
    busiest = history.orgs[0][1]
    seconds, rss, out = admin(
        history.url, "statement", "--org", busiest, "--month", month, "--format", "json"
    )
    figures["statement_s"], figures["statement_mb"] = seconds, rss
    figures["statement_in_s"] = in_process(lambda db: statement(db, busiest, month), history.url)
    seconds, rss, out = admin(history.url, "usage", "--org", busiest, "--jsonl")
    figures["export_rows"] = out.count(b"\n")
    figures["export_s"], figures["export_mb"] = seconds, rss
    # The gateway alone, beside a console tab as the console runs it (the day's overview, reloaded
    # every 5 s), and beside a tab reloading the 30-day overview every second; alternated by round.
    wrk(target, 2, 8)
    runs: dict[str, list[float]] = {"alone": [], "tab": [], "busy": []}
    for _ in range(args.rounds):
        for name, days, every in (("alone", 0, 0.0), ("tab", 1, 5.0), ("busy", 30, 1.0)):
            stop = threading.Event()

            def tab(stop: threading.Event = stop, days: int = days, every: float = every) -> None:
                while days and not stop.is_set():
                    page(port, history.cookie, days)
                    stop.wait(every)

            thread = threading.Thread(target=tab)
            thread.start()
            runs[name].append(load(target, args.seconds))
            stop.set()
            thread.join()
    for name, values in runs.items():
        figures[f"{name}_rps"] = median(values)
    return figures


def report(label: str, figures: dict[str, float], empty: dict[str, float]) -> None:
    print(f"\n== {label} ==")
    for days in (30, 7, 1):
        value = figures[f"overview_{days}"]
        print(
            f"console overview, {days:>2} days: {value:.3f} s  ({value / empty[f'overview_{days}']:.1f}x the empty"
            f" platform, {value / figures[f'records_{days}']:.2f}x one SQL aggregate over the records)"
        )
    print(
        f"server RSS: {figures['rss_before']:.0f} MB before the overviews, {figures['rss_after']:.0f} MB after"
    )
    base = empty["export_mb"]  # the same command on the empty platform
    for name in ("voucher", "statement", "export"):
        inside = (
            f" ({figures[name + '_in_s']:.3f} s in a running process)" if name + "_in_s" in figures else ""
        )
        print(
            f"{name:<9}: {figures[name + '_s']:.2f} s as a command{inside}, peak RSS {figures[name + '_mb']:.0f} MB"
            f" ({figures[name + '_mb'] - base:+.0f} MB against an export on the empty platform)"
        )
    print(f"exported rows: {figures['export_rows']:.0f}")
    alone = figures["alone_rps"]
    print(
        f"gateway: {alone:.0f} req/s alone; {figures['tab_rps']:.0f} beside a console tab (the day's overview"
        f" every 5 s, {figures['tab_rps'] / alone:.3f}x); {figures['busy_rps']:.0f} beside a tab reloading the"
        f" 30-day overview every second ({figures['busy_rps'] / alone:.3f}x)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 3_000_000])
    parser.add_argument("--orgs", type=int, default=200)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--holders", type=int, default=21)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--home", type=Path, default=None, help="Where the history grows (default: a temporary folder)."
    )
    parser.add_argument(
        "--database",
        default=None,
        help="A PostgreSQL URL (postgresql+psycopg://…) to grow the history in instead of SQLite: its"
        " public schema is emptied first.",
    )
    args = parser.parse_args()
    for tool in ("nginx", "wrk"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing: apt-get install nginx-light wrk")
    home = args.home or Path(tempfile.mkdtemp(prefix="dizuo-history-"))
    home.mkdir(parents=True, exist_ok=True)
    stack = Stack(home)
    try:
        upstream = stack.nginx()
        started = time.perf_counter()
        history = History(home, args.orgs, args.keys, args.holders, args.days, args.database)
        print(
            f"platform made: {args.orgs} organizations, {args.keys} keys in {time.perf_counter() - started:.0f} s"
        )
        empty = measure(history, stack, upstream, args, "empty")
        report("empty", empty, empty)
        for index, size in enumerate(args.sizes):
            started = time.perf_counter()
            history.grow(size - history.records, seed=index)
            history.check()
            grown = time.perf_counter() - started
            seconds = admin(history.url, "rollups", "rebuild")[0]
            print(
                f"\ngrew to {history.records:,} records in {grown:.0f} s; rollups rebuilt in {seconds:.0f} s"
            )
            for process in stack.processes[1:]:  # the previous size's server: its pages are cached nowhere
                process.terminate()
            figures = measure(history, stack, upstream, args, f"{size}")
            report(f"{history.records:,} records", figures, empty)
    finally:
        stack.stop()
        if args.home is None:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
