"""Refusals are answered from memory: a key with no money, a junk key, an unknown model or a key
over its rate limit cannot make the platform read its database call after call."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from dizuo.accounts.keys import MISS_LOOKUPS_PER_SECOND, hash_key
from tests.support.platform import GatewayApp, PlatformUnderTest, upstream_deployment

ASK = {"model": "echo-model", "messages": [{"role": "user", "content": "x"}]}
JUNK = "dz-" + "x" * 43  # shaped like a key, known to nobody


@contextmanager
def statements() -> Iterator[list[tuple[str, Any]]]:
    """Every SQL statement any engine of this process runs within the block, with its parameters."""
    ran: list[tuple[str, Any]] = []

    def seen(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        ran.append((statement, parameters))

    event.listen(Engine, "before_cursor_execute", seen)
    try:
        yield ran
    finally:
        event.remove(Engine, "before_cursor_execute", seen)


def reads(ran: list[tuple[str, Any]], *words: str) -> list[str]:
    """The queries (SELECT) whose text or parameters name any of *words*. Refused calls are still
    counted for the console's error figures: written in batches, not read."""
    return [
        sql
        for sql, params in ran
        if sql.lstrip().upper().startswith("SELECT") and any(w in sql or w in str(params) for w in words)
    ]


async def refused(platform: PlatformUnderTest, key: str, times: int, **body: Any) -> set[int]:
    client = platform.http(key)
    return {
        (await client.post("/v1/chat/completions", json={**ASK, **body})).status_code for _ in range(times)
    }


async def test_repeated_refusals_read_the_database_at_most_once(gateway_app: GatewayApp) -> None:
    platform = await gateway_app(
        [upstream_deployment("echo-model", price=("1.5", "2"))],
        key_refresh_seconds=60,  # the background key refresh stays out of the count
    )
    poor = platform.org(balance=None)
    limited = platform.org(balance="1", limits=(1, None, None))  # one request a minute
    assert await refused(platform, limited.key, 1) == {200}
    await asyncio.sleep(2 * platform.platform.gateway.meter.journal.refresh_seconds)  # refreshes settle
    with statements() as ran:
        assert await refused(platform, poor.key, 30) == {402}
        assert await refused(platform, limited.key, 30) == {429}
        assert await refused(platform, limited.key, 30, model="no-such-model") == {404}
        assert await refused(platform, JUNK, 30) == {401}
    # The first 402 may read the wallet once (a top-up from outside a moment ago); the other 29 not.
    assert len(reads(ran, poor.id)) <= 2, reads(ran, poor.id)  # the wallet and its vouchers, once
    assert reads(ran, limited.id) == []
    assert len(reads(ran, hash_key(JUNK))) <= 1  # the junk key is looked up once, then remembered


async def test_a_flood_of_made_up_keys_reads_the_database_a_bounded_number_of_times(
    gateway_app: GatewayApp,
) -> None:
    platform = await gateway_app([upstream_deployment("echo-model")], key_refresh_seconds=60)
    junk = [f"dz-{index:043d}" for index in range(300)]  # each shaped like a key, each different

    async def call(key: str) -> int:
        return (await platform.http(key).post("/v1/chat/completions", json=ASK)).status_code

    started = time.monotonic()
    with statements() as ran:
        assert set(await asyncio.gather(*(call(key) for key in junk))) == {401}
    seconds = math.ceil(time.monotonic() - started) + 1  # the wall-clock seconds the flood touched
    looked_up = [
        sql for sql, params in ran if "api_keys" in sql and any(hash_key(k) in str(params) for k in junk)
    ]
    # At most MISS_LOOKUPS_PER_SECOND a second however many keys are made up (calls past a second's
    # lookups wait for the next second's); not one a key.
    assert 0 < len(looked_up) <= seconds * MISS_LOOKUPS_PER_SECOND, (len(looked_up), seconds)
    assert len(looked_up) < len(junk) // 2
    # A real key made meanwhile by another process is still found, by the next reload at the latest.
    known = platform.org(balance="1")
    platform.platform.gateway.keys.reload()
    assert await refused(platform, known.key, 1) == {200}


async def test_new_keys_beyond_a_second_s_lookups_wait_for_the_next_second_and_work(
    gateway_app: GatewayApp,
) -> None:
    """Many organizations onboarding at once: more new keys in a second than it may look up. Their
    first calls wait for the next second's lookups instead of being refused."""
    platform = await gateway_app([upstream_deployment("echo-model")], key_refresh_seconds=60)
    fresh = [platform.org(balance="1") for _ in range(MISS_LOOKUPS_PER_SECOND + 10)]
    await asyncio.sleep(2 * platform.platform.gateway.meter.journal.refresh_seconds)  # wallets loaded
    answers = await asyncio.gather(*(refused(platform, org.key, 1) for org in fresh))
    assert set().union(*answers) == {200}


async def test_a_key_made_a_moment_ago_serves_many_calls_at_once_from_one_lookup(
    gateway_app: GatewayApp,
) -> None:
    platform = await gateway_app([upstream_deployment("echo-model")], key_refresh_seconds=60)
    fresh = platform.org(balance="100")  # made after the gateway loaded its keys: not in its cache yet
    await asyncio.sleep(2 * platform.platform.gateway.meter.journal.refresh_seconds)  # its wallet loaded
    client = platform.http(fresh.key)
    with statements() as ran:
        answers = await asyncio.gather(
            *(client.post("/v1/chat/completions", json=ASK) for _ in range(3 * MISS_LOOKUPS_PER_SECOND))
        )
    assert {answer.status_code for answer in answers} == {200}
    assert len([sql for sql, params in ran if "api_keys" in sql and hash_key(fresh.key) in str(params)]) == 1


async def test_calls_of_one_new_key_that_waited_for_the_next_second_share_its_lookup(
    gateway_app: GatewayApp,
) -> None:
    platform = await gateway_app([upstream_deployment("echo-model")], key_refresh_seconds=60)
    fresh = platform.org(balance="1")  # not in the gateway's cache yet
    await asyncio.sleep(2 * platform.platform.gateway.meter.journal.refresh_seconds)  # its wallet loaded
    junk = [f"dz-{index:043d}" for index in range(MISS_LOOKUPS_PER_SECOND + 5)]  # this second's lookups

    async def call(key: str) -> int:
        return (await platform.http(key).post("/v1/chat/completions", json=ASK)).status_code

    answers = await asyncio.gather(*(call(key) for key in junk), *(call(fresh.key) for _ in range(5)))
    assert answers[len(junk) :] == [200] * 5
