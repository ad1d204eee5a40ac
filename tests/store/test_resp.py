"""The multiplexed Redis connection: overlapping calls get their own replies, errors and lost
connections reach the right callers, scripts unknown to Redis are loaded. Needs a real Redis."""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import quote, urlparse

import pytest
import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from dizuo.store.resp import Multiplexed, Script
from tests.support.redis_server import PrivateRedis


@pytest.fixture
async def conn(redis_url: str | None) -> AsyncIterator[Multiplexed]:
    if not redis_url:
        pytest.skip("needs DIZUO_TEST_REDIS_URL (scripts/services.sh)")
    connection = Multiplexed(redis_url)
    yield connection
    await connection.aclose()


async def test_overlapping_calls_each_get_their_own_reply(conn: Multiplexed) -> None:
    words = [f"第{i}条-{'x' * (i % 7)}" for i in range(300)]
    replies = await asyncio.gather(*(conn.execute("ECHO", word) for word in words))
    assert [reply.decode() for reply in replies] == words


async def test_an_error_reply_fails_only_its_own_call(conn: Multiplexed) -> None:
    await conn.execute("SET", "dizuo:test:text", "不是数字")
    results = await asyncio.gather(
        conn.execute("ECHO", "before"),
        conn.execute("INCR", "dizuo:test:text"),
        conn.execute("ECHO", "after"),
        return_exceptions=True,
    )
    assert results[0] == b"before"
    assert isinstance(results[1], ResponseError) and "not an integer" in str(results[1])
    assert results[2] == b"after"


async def test_a_cancelled_call_does_not_shift_the_replies(conn: Multiplexed) -> None:
    slow = asyncio.ensure_future(conn.execute("ECHO", "abandoned"))
    slow.cancel()
    assert await conn.execute("ECHO", "mine") == b"mine"


async def test_a_script_redis_forgot_is_loaded_again(conn: Multiplexed) -> None:
    script = Script("return {KEYS[1], ARGV[1] * 2}")
    assert await conn.run(script, keys=["k"], args=[21]) == [b"k", 42]
    await conn.execute("SCRIPT", "FLUSH")
    assert await conn.run(script, keys=["k"], args=[4]) == [b"k", 8]


async def test_a_submitted_script_runs_in_its_place_without_being_awaited(conn: Multiplexed) -> None:
    append = Script("return redis.call('RPUSH', KEYS[1], ARGV[1])")
    await conn.execute("DEL", "dizuo:test:order")
    assert await conn.run(append, ["dizuo:test:order"], ["零"]) == 1  # Redis knows the script now
    # Not awaited: the next command on the connection still finds it done.
    conn.submit(append, ["dizuo:test:order"], ["一"])
    assert await conn.execute("LRANGE", "dizuo:test:order", 0, -1) == ["零".encode(), "一".encode()]
    # A script Redis forgot is sent again (later than its place) and its future says how it went.
    await conn.execute("SCRIPT", "FLUSH")
    assert await conn.submit(append, ["dizuo:test:order"], ["二"]) == 3
    failing = Script("return redis.call('INCR', KEYS[1])")
    await conn.execute("SET", "dizuo:test:text", "不是数字")
    with pytest.raises(ResponseError):
        await conn.submit(failing, ["dizuo:test:text"], [])


async def test_a_lost_connection_fails_its_waiting_calls_and_the_next_call_reconnects(
    conn: Multiplexed,
) -> None:
    client_id = await conn.execute("CLIENT", "ID")
    blocked = asyncio.ensure_future(conn.execute("BLPOP", "dizuo:test:never", 5))
    await asyncio.sleep(0.05)
    # Another client cuts this connection while a call waits on it.
    other = redis.Redis.from_url(conn_url(conn))
    try:
        killed = other.client_kill_filter(_id=str(client_id))
    finally:
        other.close()
    assert killed == 1
    with pytest.raises(RedisConnectionError):
        await asyncio.wait_for(blocked, 5)
    assert await conn.execute("ECHO", "again") == b"again"


async def test_the_url_picks_the_database(redis_url: str | None) -> None:
    if not redis_url:
        pytest.skip("needs DIZUO_TEST_REDIS_URL (scripts/services.sh)")
    parsed = urlparse(redis_url)
    url = f"redis://{parsed.hostname}:{parsed.port or 6379}/7"
    connection = Multiplexed(url)
    try:
        await connection.execute("SET", "dizuo:test:db", "七号库")
        other = redis.Redis.from_url(url)
        assert other.get("dizuo:test:db") == "七号库".encode()
        other.delete("dizuo:test:db")
        other.close()
    finally:
        await connection.aclose()


async def test_an_unreachable_redis_is_a_clear_connection_error() -> None:
    connection = Multiplexed("redis://127.0.0.1:1/0")
    with pytest.raises(RedisConnectionError, match=r"cannot reach Redis at 127\.0\.0\.1:1"):
        await connection.execute("PING")


def conn_url(conn: Multiplexed) -> str:
    return f"redis://{conn.host}:{conn.port}/{conn.db}"


async def test_a_redis_that_answers_nothing_fails_the_waiting_calls_after_socket_timeout() -> None:
    # A peer that takes the connection and never answers, as a Redis host behind a network cut does:
    # without a limit, the calls would wait until TCP gives up (about 15 minutes).
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(65536):
            pass
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    connection = Multiplexed(f"redis://127.0.0.1:{port}/0?socket_timeout=0.3")
    try:
        async with asyncio.timeout(10):  # a hang fails the test instead of stopping the run
            started = time.monotonic()
            calls = [asyncio.ensure_future(connection.execute("PING")) for _ in range(3)]
            await asyncio.sleep(0.1)
            # TCP keepalive probes the connection while it is idle, so that no NAT drops it silently.
            sock = connection._protocol.transport.get_extra_info("socket")  # type: ignore[union-attr]
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            for call in calls:
                with pytest.raises(RedisConnectionError, match=r"Redis did not answer for 0\.3 s"):
                    await call
            assert 0.3 <= time.monotonic() - started < 2
            # The next call connects anew (and, the peer still silent, fails the same way).
            with pytest.raises(RedisConnectionError, match="did not answer"):
                await connection.execute("PING")
    finally:
        await connection.aclose()
        server.close()


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
async def test_a_stopped_redis_fails_calls_in_time_and_serves_them_again_once_it_runs(tmp_path: Path) -> None:
    with PrivateRedis(tmp_path) as server:
        assert server.process is not None
        connection = Multiplexed(server.url() + "?socket_timeout=0.5")
        try:
            assert await connection.execute("PING") == b"PONG"
            server.process.send_signal(signal.SIGSTOP)  # the process hangs; its socket stays open
            try:
                with pytest.raises(RedisConnectionError, match=r"did not answer for 0\.5 s"):
                    async with asyncio.timeout(10):  # a hang fails the test instead of stopping the run
                        await connection.execute("PING")
            finally:
                server.process.send_signal(signal.SIGCONT)
            assert await connection.execute("ECHO", "又回来了") == "又回来了".encode()
        finally:
            await connection.aclose()


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("http://cache.example:6380/0", "only redis://host:port/db, rediss://"),
        ("unix://", "only redis://host:port/db, rediss://"),
        ("redis://127.0.0.1:6379/cache", "the database must be a number"),
        ("unix:///run/redis.sock?db=one", "the database must be a number"),
        ("rediss://cache.example/0?ssl_min_version=3", "ssl_min_version not supported"),
        (
            "rediss://cache.example/0?ssl_cert_reqs=sometimes",
            "ssl_cert_reqs must be none, optional or required",
        ),
        ("rediss://cache.example/0?ssl_ca_certs=/nonexistent/ca.pem", "cannot load its TLS files"),
        ("rediss://cache.example/0?ssl_keyfile=/etc/client.key", "ssl_keyfile needs ssl_certfile"),
        ("redis://cache.example/0?socket_timeout=soon", "socket_timeout must be a number of seconds above 0"),
        ("redis://cache.example/0?socket_timeout=0", "socket_timeout must be a number of seconds above 0"),
    ],
)
def test_an_unsupported_url_is_refused_when_configured(url: str, error: str) -> None:
    with pytest.raises(ValueError, match=re.escape(error)):
        Multiplexed(url)


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None or shutil.which("openssl") is None:
        pytest.skip("needs redis-server and openssl")
    with PrivateRedis(tmp_path, tls=True, password="tls-口令") as server:
        yield server


async def test_a_tls_url_reaches_redis_with_its_certificates(tls_redis: PrivateRedis) -> None:
    url = tls_redis.url(db=6)
    connection = Multiplexed(url)
    assert await connection.run(
        Script("return redis.call('SET', KEYS[1], ARGV[1])"), ["dizuo:test:tls"], ["加密"]
    )
    other = redis.Redis.from_url(url)  # redis-py reads the same URL the same way
    assert other.get("dizuo:test:tls") == "加密".encode()
    other.close()
    await connection.aclose()


async def test_a_tls_redis_whose_certificate_is_not_trusted_is_a_clear_error(tls_redis: PrivateRedis) -> None:
    untrusted = tls_redis.url().replace(f"ssl_ca_certs={tls_redis.certificates['ca']}&", "")  # type: ignore[index]
    with pytest.raises(RedisConnectionError, match="certificate verify failed"):
        await Multiplexed(untrusted).execute("PING")
    # Verification turned off, as redis-py allows: encrypted, not authenticated.
    unverified = Multiplexed(untrusted + "&ssl_cert_reqs=none")
    assert await unverified.execute("PING") == b"PONG"
    await unverified.aclose()


async def test_a_tls_redis_refuses_a_client_without_its_certificate(tls_redis: PrivateRedis) -> None:
    files = tls_redis.certificates
    assert files is not None
    anonymous = Multiplexed(f"rediss://:tls-口令@127.0.0.1:{tls_redis.port}/0?ssl_ca_certs={files['ca']}")
    with pytest.raises(RedisConnectionError):
        await anonymous.execute("PING")


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
async def test_a_unix_socket_url_reaches_its_database_with_its_password(tmp_path: Path) -> None:
    server = PrivateRedis(tmp_path, socket=True, password="p@ss 口令")
    server.start()
    try:
        url = server.url(db=5)
        assert url.startswith("unix://") and url.endswith("?db=5")
        assert quote("p@ss 口令", safe="") in url
        connection = Multiplexed(url)
        await connection.execute("SET", "dizuo:test:db", "五号库")
        other = redis.Redis.from_url(url)
        assert other.get("dizuo:test:db") == "五号库".encode()
        assert (
            redis.Redis(unix_socket_path=str(server.socket), password="p@ss 口令").get("dizuo:test:db")
            is None
        )
        other.close()
        await connection.aclose()
        wrong = Multiplexed(f"unix://:nope@{server.socket}?db=5")
        with pytest.raises(ResponseError, match=r"WRONGPASS|invalid password"):
            await wrong.execute("PING")
    finally:
        server.stop()
    gone = Multiplexed(f"unix://{server.socket}")
    with pytest.raises(RedisConnectionError, match=re.escape(f"cannot reach Redis at {server.socket}")):
        await gone.execute("PING")
