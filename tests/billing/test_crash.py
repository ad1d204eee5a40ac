"""`kill -9` under load loses no completed call's record and charges nothing twice (DESIGN §3.3)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from sqlalchemy import func, select

from dizuo.billing import rollups
from dizuo.billing.tables import LedgerEntry, UsageRecord, Wallet
from dizuo.store import Database
from tests.support.servers import free_port, funded_org, one_deployment_config, start_server
from tests.support.upstream import FakeUpstream


@pytest.fixture
def setup(
    upstream: FakeUpstream, database_url: str, tmp_path: Path
) -> Iterator[tuple[Path, str, str, str, str]]:
    db, org, key = funded_org(database_url, "crash", yuan="100")
    db.dispose()
    config = one_deployment_config(tmp_path / "dizuo.yaml", upstream.base_url)
    yield config, key, org.id, org.name, database_url


# One client: every call is alone and commits in place. Eight: calls meet and are grouped. Each
# either way: spooled beside SQLite first (auto, the default) or committed before the answer (off);
# on PostgreSQL both commit first.
@pytest.mark.parametrize("staging", ["auto", "off"])
@pytest.mark.parametrize("clients", [1, 8])
def test_kill_9_loses_no_completed_call(
    setup: tuple[Path, str, str, str, str], tmp_path: Path, clients: int, staging: str
) -> None:
    config, key, org_id, org_name, database_url = setup
    port = free_port()
    server = start_server(config, tmp_path, database_url, port, usage_staging=staging)
    completed: list[str] = []
    stop = threading.Event()

    def load(stream: bool) -> None:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}/v1", headers={"Authorization": f"Bearer {key}"}, timeout=5
        ) as client:
            body = {
                "model": "echo-model",
                "messages": [{"role": "user", "content": "崩溃测试"}],
                "stream": stream,
            }
            while not stop.is_set():
                try:
                    with client.stream("POST", "/chat/completions", json=body) as response:
                        text = response.read()
                    if response.status_code == 200 and (
                        not stream or text.rstrip().endswith(b"data: [DONE]")
                    ):
                        completed.append(response.headers["x-request-id"])
                except httpx.HTTPError:
                    if server.poll() is not None:
                        return

    threads = [threading.Thread(target=load, args=(i % 2 == 0,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(2.0)
    server.send_signal(signal.SIGKILL)
    server.wait(10)
    stop.set()
    for thread in threads:
        thread.join(10)
    assert len(completed) > 20, "the load did not get going before the kill"

    # Before any restart, an admin command sees every completed call (it commits what was spooled).
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIZUO_")}
    env["DIZUO_DATABASE_URL"] = database_url
    listed = subprocess.run(
        [sys.executable, "-m", "dizuo", "admin", "usage", "--org", org_name, "--json"],
        env=env,
        capture_output=True,
        timeout=60,
        check=True,
    ).stdout
    seen = {row["request_id"] for row in orjson.loads(listed)}
    assert not set(completed) - seen, f"{len(set(completed) - seen)} completed calls not in `admin usage`"

    restarted = start_server(config, tmp_path, database_url, port, usage_staging=staging)
    try:
        db = Database(database_url)
        with db.session() as session:
            records = list(session.scalars(select(UsageRecord).where(UsageRecord.org_id == org_id)))
            ids = {r.request_id for r in records}
            missing = set(completed) - ids
            assert not missing, f"{len(missing)} completed calls have no usage record"
            assert len(ids) == len(records)
            per_tx = session.execute(
                select(
                    LedgerEntry.tx_id,
                    func.sum(LedgerEntry.amount),
                    func.count(func.distinct(LedgerEntry.request_id)),
                )
                .where(LedgerEntry.org_id == org_id, LedgerEntry.kind == "charge")
                .group_by(LedgerEntry.tx_id)
            ).all()
            assert len(per_tx) == len(records)  # one charge per record, none twice
            assert all(total == 0 and requests == 1 for _, total, requests in per_tx)
            wallet = session.get(Wallet, org_id)
            assert wallet is not None
            assert wallet.balance == 100_000_000 - sum(r.own_part for r in records)
        # The hourly rollups were written with the records: they agree, whatever the kill cut short.
        assert rollups.verify(db, org_id=org_id) == []
        # Holds of the cut calls died with the process: the new one holds nothing for this organization.
        deadline = time.monotonic() + 5
        while True:
            with db.session() as session:
                held = session.get(Wallet, org_id).held  # type: ignore[union-attr]
            if held == 0:
                break
            assert time.monotonic() < deadline, f"{held} µ¥ still held after the restart"
            time.sleep(0.1)
        db.dispose()
    finally:
        restarted.terminate()
        restarted.wait(15)
