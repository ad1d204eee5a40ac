"""A replica whose Redis (shared holds and limits) goes away answers 503 with a clear error, charges
nothing and records nothing, and takes calls again as soon as Redis is back.

Runs its own redis-server (tests/support/redis_server.py), so that the test can stop it.
"""

from __future__ import annotations

import shutil
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import redis

from dizuo.billing.tables import UsageRecord, Wallet
from dizuo.store import Database
from tests.support.redis_server import PrivateRedis
from tests.support.servers import free_port, funded_org, one_deployment_config, start_server
from tests.support.upstream import FakeUpstream

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")


@pytest.fixture(params=["no", "yes"], ids=["commit-first", "staged-in-redis"])
def private_redis(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[PrivateRedis]:
    """With an append-only file, usage records are staged in Redis (and kept across its restart)."""
    with PrivateRedis(tmp_path, request.param) as server:
        yield server


@contextmanager
def serving(config: Path, tmp_path: Path, database_url: str, redis_url: str) -> Iterator[int]:
    """`dizuo serve` with *config* on the shared *redis_url*: its port, until the block ends."""
    port = free_port()
    server = start_server(config, tmp_path / "home", database_url, port, redis_url=redis_url)
    try:
        yield port
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(20)


def call(port: int, key: str) -> httpx.Response:
    return httpx.post(
        f"http://127.0.0.1:{port}/v1/chat/completions",
        json={"model": "echo-model", "messages": [{"role": "user", "content": "x"}]},
        headers={"Authorization": f"Bearer {key}", "Accept-Language": "zh-CN"},
        timeout=30,
    )


def recorded(db: Database, org_id: str, expected: tuple[int, int]) -> tuple[int, int]:
    """(usage records, balance) once they are *expected* (staged records land a moment late)."""
    deadline = time.monotonic() + 10
    while True:
        with db.session() as session:
            count = session.query(UsageRecord).filter(UsageRecord.org_id == org_id).count()
            wallet = session.get(Wallet, org_id)
            assert wallet is not None
        if (count, wallet.balance) == expected or time.monotonic() > deadline:
            return count, wallet.balance
        time.sleep(0.05)


def test_a_replica_without_its_redis_answers_503_and_recovers(
    upstream: FakeUpstream, database_url: str, private_redis: PrivateRedis, tmp_path: Path
) -> None:
    config = one_deployment_config(tmp_path / "dizuo.yaml", upstream.base_url)
    db, org, key = funded_org(database_url, "away", (1000, None, 2))  # limits in Redis too
    with serving(config, tmp_path, database_url, private_redis.url()) as port:
        assert call(port, key).status_code == 200
        assert recorded(db, org.id, (1, 1_000_000 - 17)) == (1, 1_000_000 - 17)
        private_redis.kill()
        for _ in range(3):
            away = call(port, key)
            assert away.status_code == 503, away.text
            error = away.json()["error"]
            assert error["type"] == "service_unavailable" and error["code"] == "shared_state_unavailable"
            assert "Redis" in error["message"] and "稍后重试" in error["message"]
            assert away.headers["retry-after"]
        time.sleep(0.3)
        # Nothing charged, nothing recorded.
        assert recorded(db, org.id, (1, 1_000_000 - 17)) == (1, 1_000_000 - 17)
        # It comes back (empty without an append-only file: wallets and scripts load on first use).
        private_redis.start()
        assert call(port, key).status_code == 200
        assert recorded(db, org.id, (2, 1_000_000 - 34)) == (2, 1_000_000 - 34)
    db.dispose()


def test_a_replica_whose_redis_hangs_answers_503_in_time_and_recovers(
    upstream: FakeUpstream, database_url: str, private_redis: PrivateRedis, tmp_path: Path
) -> None:
    # A stopped process (or a network cut) keeps the connection open and answers nothing: without a
    # limit, calls would wait until TCP gives up, about 15 minutes. socket_timeout=1 in the URL.
    assert private_redis.process is not None
    config = one_deployment_config(tmp_path / "dizuo.yaml", upstream.base_url)
    db, org, key = funded_org(database_url, "hang", (1000, None, 2))
    with serving(config, tmp_path, database_url, private_redis.url() + "?socket_timeout=1") as port:
        assert call(port, key).status_code == 200
        private_redis.process.send_signal(signal.SIGSTOP)
        try:
            started = time.monotonic()
            hung = call(port, key)
            assert time.monotonic() - started < 5
        finally:
            private_redis.process.send_signal(signal.SIGCONT)
        assert hung.status_code == 503, hung.text
        assert hung.json()["error"]["code"] == "shared_state_unavailable"
        assert hung.headers["retry-after"]
        deadline = time.monotonic() + 15
        while (answer := call(port, key)).status_code != 200:
            assert answer.status_code == 503 and time.monotonic() < deadline, answer.text
            time.sleep(0.2)
        # The hung call charged nothing.
        assert recorded(db, org.id, (2, 1_000_000 - 34)) == (2, 1_000_000 - 34)
    db.dispose()


def test_what_a_call_cut_short_took_is_given_back_once_redis_returns(
    upstream: FakeUpstream, database_url: str, private_redis: PrivateRedis, tmp_path: Path
) -> None:
    # The call holds its money and its one concurrency slot, then Redis goes away while the upstream
    # works: its settlement fails. Kept in an append-only file, the hold and the slot would stay
    # until they lapse (15 minutes by default), and the key could make no call meanwhile.
    config = one_deployment_config(tmp_path / "dizuo.yaml", upstream.base_url, upstream_model="ctl-away-slow")
    db, org, key = funded_org(database_url, "away", (None, None, 1))  # one call in flight at a time
    db.dispose()
    with (
        upstream.scripted(modes={"ctl-away-slow": "slow:1.0"}),
        serving(config, tmp_path, database_url, private_redis.url()) as port,
    ):
        seen = len(upstream.seen)
        with ThreadPoolExecutor(1) as pool:
            cut = pool.submit(call, port, key)
            while len(upstream.seen) == seen:  # the hold and the slot are taken, the upstream works
                time.sleep(0.02)
            private_redis.kill()
            assert cut.result().status_code == 503
        upstream.modes["ctl-away-slow"] = "ok"
        private_redis.start()
        deadline = time.monotonic() + 10
        # While the slot is still taken (not given back yet), 429.
        while (answer := call(port, key)).status_code == 429:
            assert time.monotonic() < deadline, "the cut call's slot was not given back"
            time.sleep(0.2)
        assert answer.status_code == 200, answer.text
        held = redis.Redis.from_url(private_redis.url()).hget(f"dizuo:wallet:{{{org.id}}}", "held")
        assert int(held or 0) == 0
