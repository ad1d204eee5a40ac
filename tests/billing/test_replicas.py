"""Two `dizuo serve` processes sharing PostgreSQL and Redis spend one wallet exactly.

Needs DIZUO_TEST_DATABASE_URL (PostgreSQL: SQLite is one machine's file) and DIZUO_TEST_REDIS_URL;
scripts/services.sh starts both.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import openai
import pytest
import yaml
from sqlalchemy import func, select

from dizuo.accounts import create_key, create_org
from dizuo.billing import parse_cny
from dizuo.billing.service import topup
from dizuo.billing.tables import LedgerEntry, UsageRecord, Wallet
from dizuo.store import Database
from tests.billing.race import race
from tests.billing.records import wait_for_records
from tests.support.servers import free_port, start_server
from tests.support.upstream import FakeUpstream

pytestmark = pytest.mark.skipif(
    not (
        os.environ.get("DIZUO_TEST_DATABASE_URL", "").startswith("postgresql")
        and os.environ.get("DIZUO_TEST_REDIS_URL")
    ),
    reason="needs DIZUO_TEST_DATABASE_URL (PostgreSQL) and DIZUO_TEST_REDIS_URL (scripts/services.sh)",
)


@dataclass
class Org:
    id: str
    key: str


@pytest.fixture
def config(upstream: FakeUpstream, tmp_path: Path) -> Path:
    path = tmp_path / "dizuo.yaml"
    # Output-priced at ¥1000/M with max_tokens=3: every call holds and costs exactly ¥0.003.
    price = {"input": "0", "output": "1000"}
    path.write_text(
        yaml.safe_dump(
            {
                "local": False,
                "deployments": [
                    {
                        "name": "pricey-1",
                        "model": "pricey-model",
                        "provider": "openai-compatible",
                        "base_url": upstream.base_url,
                        "upstream_model": "echo",
                        "price": price,
                    },
                    {
                        "name": "hang-1",
                        "model": "hang-model",
                        "provider": "openai-compatible",
                        "base_url": upstream.base_url,
                        "upstream_model": "hang",
                        "price": price,
                    },
                ],
            }
        ),
        encoding="utf-8",
    )
    return path


def new_org(database_url: str, amount: str) -> Org:
    db = Database(database_url)
    db.upgrade()
    name = f"replicas-{uuid.uuid4().hex[:8]}"
    org = create_org(db, name)
    topup(db, name, parse_cny(amount))
    key = create_key(db, name).key
    db.dispose()
    return Org(org.id, key)


@dataclass
class Replicas:
    ports: list[int]
    servers: list[subprocess.Popen[bytes]]


@pytest.fixture
def replicas(
    config: Path, database_url: str, redis_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Replicas]:
    """Two replicas; the test's parameter, when it gives one, is their DIZUO_USAGE_STAGING."""
    staging = getattr(request, "param", "off")
    ports = [free_port(), free_port()]
    servers: list[subprocess.Popen[bytes]] = []
    try:
        for index, port in enumerate(ports):
            home = tmp_path / f"replica-{index}"
            home.mkdir()
            servers.append(
                start_server(
                    config,
                    home,
                    database_url,
                    port,
                    redis_url=redis_url,
                    hold_seconds="2",
                    usage_staging=staging,
                )
            )
        yield Replicas(ports, servers)
    finally:
        for server in servers:
            if server.poll() is None:
                server.send_signal(signal.SIGTERM)
                server.wait(20)


def client(port: int, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0, timeout=60)


@pytest.mark.parametrize("replicas", ["off", "on"], ids=["commit-first", "staged-in-redis"], indirect=True)
async def test_500_calls_on_two_replicas_spend_a_wallet_for_100_exactly(
    replicas: Replicas, database_url: str
) -> None:
    org = new_org(database_url, "0.3")
    clients = [client(port, org.key) for port in replicas.ports]

    statuses = await race(clients, 500)
    for sdk in clients:
        await sdk.close()
    assert (statuses.count(200), statuses.count(402)) == (100, 400)

    db = Database(database_url)
    # Staged records reach the database a moment after their answers.
    await wait_for_records(db, org.id, 100)
    with db.session() as session:
        rows = list(session.scalars(select(UsageRecord).where(UsageRecord.org_id == org.id)))
        assert len(rows) == 100 == len({r.request_id for r in rows})
        assert session.get(Wallet, org.id).balance == 0  # type: ignore[union-attr]
        charged = session.scalar(
            select(func.sum(LedgerEntry.amount)).where(
                LedgerEntry.org_id == org.id,
                LedgerEntry.kind == "charge",
                LedgerEntry.account.like("revenue:%"),
            )
        )
        assert charged == sum(r.cost for r in rows) == 300_000
    db.dispose()


async def test_a_killed_replicas_holds_lapse_for_the_other(
    replicas: Replicas, upstream: FakeUpstream, database_url: str
) -> None:
    org = new_org(database_url, "0.003")  # exactly one call's worth
    first, second = client(replicas.ports[0], org.key), client(replicas.ports[1], org.key)
    upstream.hang_started.clear()
    # Replica 0 holds the whole wallet for a call that never ends, then dies without a word.
    stuck = asyncio.create_task(
        first.chat.completions.create(
            model="hang-model", messages=[{"role": "user", "content": "x"}], max_tokens=3
        )
    )
    assert await asyncio.to_thread(upstream.hang_started.wait, 10)
    replicas.servers[0].send_signal(signal.SIGKILL)
    replicas.servers[0].wait(10)
    with pytest.raises(openai.APIConnectionError):
        await stuck
    # The other replica sees the money held…
    with pytest.raises(openai.APIStatusError) as caught:
        await second.chat.completions.create(
            model="pricey-model", messages=[{"role": "user", "content": "x"}], max_tokens=3
        )
    assert caught.value.status_code == 402
    # …until the hold lapses (hold_seconds=2), and then it can spend it, once.
    await asyncio.sleep(2.2)
    await second.chat.completions.create(
        model="pricey-model", messages=[{"role": "user", "content": "x"}], max_tokens=3
    )
    with pytest.raises(openai.APIStatusError):
        await second.chat.completions.create(
            model="pricey-model", messages=[{"role": "user", "content": "x"}], max_tokens=3
        )
    await first.close()
    await second.close()
