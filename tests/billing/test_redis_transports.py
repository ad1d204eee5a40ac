"""Replicas reach Redis over TLS (DIZUO_REDIS_URL=rediss://…, as managed Redis services ask) or, on
the same host, by its Unix socket (unix://…): holds, rate limits and staged usage records work as they
do over plain TCP.

Runs its own redis-server (tests/support/redis_server.py); two replicas when the database is
PostgreSQL (SQLite is one process's file), one otherwise.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import redis

from dizuo.billing.tables import UsageRecord, Wallet
from tests.support.redis_server import PrivateRedis
from tests.support.servers import free_port, funded_org, one_deployment_config, start_server
from tests.support.upstream import FakeUpstream

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")


@pytest.fixture(params=["unix-socket", "tls"])
def private_redis(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[PrivateRedis]:
    if request.param == "tls" and shutil.which("openssl") is None:
        pytest.skip("needs openssl")
    # With an append-only file, so that usage records are staged in Redis (the path most work crosses).
    transport = {"socket": True} if request.param == "unix-socket" else {"tls": True}
    with PrivateRedis(tmp_path, "yes", password="口令-secret", **transport) as server:
        yield server


def test_replicas_share_wallet_and_limits(
    upstream: FakeUpstream, database_url: str, private_redis: PrivateRedis, tmp_path: Path
) -> None:
    config = one_deployment_config(tmp_path / "dizuo.yaml", upstream.base_url)
    db, org, key = funded_org(database_url, "sock", (6, None, 4))  # 6 a minute, kept in the same Redis
    url = private_redis.url(db=3)
    replicas = 2 if database_url.startswith("postgresql") else 1
    servers: list[subprocess.Popen[bytes]] = []
    try:
        ports = []
        for index in range(replicas):
            ports.append(free_port())
            servers.append(
                start_server(config, tmp_path / f"home-{index}", database_url, ports[-1], redis_url=url)
            )
        clients = [
            openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0)
            for port in ports
        ]
        for i in range(6):
            raw = clients[i % replicas].chat.completions.with_raw_response.create(
                model="echo-model", messages=[{"role": "user", "content": f"第{i}问"}]
            )
            assert raw.parse().choices[0].message.content
            assert raw.headers["x-ratelimit-limit-requests"] == "6"
        # The six went to both replicas: the minute's requests are used up on each (one bucket).
        for client in clients:
            with pytest.raises(openai.RateLimitError):
                client.chat.completions.create(
                    model="echo-model", messages=[{"role": "user", "content": "再问"}]
                )
        deadline = time.monotonic() + 15  # staged records reach the database a moment late
        while True:
            with db.session() as session:
                costs = [r.cost for r in session.query(UsageRecord).filter(UsageRecord.org_id == org.id)]
                wallet = session.get(Wallet, org.id)
                assert wallet is not None
            if len(costs) == 6 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert costs == [17] * 6
        assert wallet.balance == 1_000_000 - 6 * 17
        # Everything lives in the URL's database 3: nothing is held any more.
        shared = redis.Redis.from_url(url)
        assert int(shared.hget(f"dizuo:wallet:{{{org.id}}}", "held") or 0) == 0
        assert shared.exists(f"dizuo:wallet:{{{org.id}}}")
        assert not redis.Redis.from_url(private_redis.url(db=0)).exists(f"dizuo:wallet:{{{org.id}}}")
    finally:
        for server in servers:
            server.send_signal(signal.SIGTERM)
            server.wait(20)
        db.dispose()
