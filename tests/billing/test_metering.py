"""Metering through the gateway: one usage record and one balanced ledger transaction per answered call,
holds that make overspending impossible, and 402 when the wallet cannot pay.

Each test builds the platform it describes (``gateway_app``): its deployments and their prices,
its organizations and their balances. Money is in micro-yuan: ¥1 = 1,000,000; a price is CNY per
million tokens, so ¥1.5/M is 1.5 µ¥ a token. The fake upstream's echo reports 7 prompt and 3
completion tokens.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from decimal import Decimal

import openai
import pytest
from sqlalchemy import func, select

from dizuo.accounts.members import create_member, create_token
from dizuo.billing import parse_cny
from dizuo.billing.service import VoucherTerms, issue_voucher, topup
from dizuo.billing.tables import LedgerEntry, Voucher
from tests.billing.race import race
from tests.support.platform import GatewayApp, upstream_deployment
from tests.support.upstream import FakeUpstream

ASK = [{"role": "user", "content": "x"}]


async def test_each_call_has_one_record_and_a_balanced_charge(gateway_app: GatewayApp) -> None:
    platform = await gateway_app([upstream_deployment("echo-model", name="echo-1", price=("1.5", "2"))])
    org = platform.org(balance="1")
    async with platform.sdk(org.key) as client:
        await client.chat.completions.create(model="echo-model", messages=ASK)
        async for _ in await client.chat.completions.create(model="echo-model", messages=ASK, stream=True):
            pass
    rows = platform.records(org)
    # 7 prompt tokens at ¥1.5/M + 3 completion tokens at ¥2/M = 10.5 + 6 = 16.5 µ¥ -> 17 µ¥ each
    assert [r.cost for r in rows] == [17, 17]
    assert {r.stream for r in rows} == {True, False}
    assert all(r.own_part == 17 and r.voucher_part == 0 and r.deployment == "echo-1" for r in rows)
    with platform.db.session() as session:
        legs = session.scalars(
            select(LedgerEntry).where(LedgerEntry.request_id.in_([r.request_id for r in rows]))
        )
        by_tx: dict[str, int] = {}
        for leg in legs:
            by_tx[leg.tx_id] = by_tx.get(leg.tx_id, 0) + leg.amount
    assert len(by_tx) == 2 and set(by_tx.values()) == {0}
    assert platform.balance(org) == 1_000_000 - 34


async def test_empty_wallet_gets_402_and_nothing_is_recorded(gateway_app: GatewayApp) -> None:
    platform = await gateway_app([upstream_deployment("echo-model")])
    org = platform.org(balance=None)
    async with platform.sdk(org.key) as client:
        with pytest.raises(openai.APIStatusError) as caught:
            await client.chat.completions.create(model="echo-model", messages=ASK)
    assert caught.value.status_code == 402
    error = caught.value.body
    assert error["type"] == "insufficient_quota" and error["code"] == "insufficient_quota"  # type: ignore[index]
    assert "dizuo admin topup" in error["message"]  # type: ignore[index]
    assert platform.records(org) == []


async def test_a_refused_call_never_reaches_the_upstream(
    gateway_app: GatewayApp, upstream: FakeUpstream
) -> None:
    # The upstream request is started while the hold is asked for, its body sent only once the hold is
    # in place: a 402 or a 429 leaves the upstream without the request.
    platform = await gateway_app([upstream_deployment("echo-model")])
    poor = platform.org(balance=None)
    limited = platform.org(balance="1", limits=(1, None, None))  # one request a minute
    marks = {label: f"{label}-{uuid.uuid4().hex}" for label in ("poor", "first", "second")}

    async def ask(key: str, label: str) -> int:
        async with platform.sdk(key) as client:
            try:
                await client.chat.completions.create(
                    model="echo-model", messages=[{"role": "user", "content": marks[label]}]
                )
            except openai.APIStatusError as exc:
                return exc.status_code
            return 200

    assert [
        await ask(poor.key, "poor"),
        await ask(limited.key, "first"),
        await ask(limited.key, "second"),
    ] == [
        402,
        200,
        429,
    ]
    await asyncio.sleep(0.3)
    reached = {label for label, mark in marks.items() if any(mark in str(s.body) for s in upstream.seen)}
    assert reached == {"first"}
    assert platform.records(poor) == []


async def test_a_topup_reaches_the_gateway_at_once_or_within_one_refresh(gateway_app: GatewayApp) -> None:
    platform = await gateway_app([upstream_deployment("echo-model")])
    admin = f"财务-{uuid.uuid4().hex[:6]}"
    create_member(platform.db, admin, "correct horse battery", "platform-admin")
    token = create_token(platform.db, admin)
    # Through the admin API (or the console): the gateway's wallet is refreshed at once.
    org = platform.org(balance=None)
    async with platform.sdk(org.key) as client:
        with pytest.raises(openai.APIStatusError):
            await client.chat.completions.create(model="echo-model", messages=ASK)
        made = await platform.http(token).post(f"/admin/v1/orgs/{org.name}/topups", json={"amount": "0.01"})
        assert made.status_code == 201
        await client.chat.completions.create(model="echo-model", messages=ASK)
    # From outside the process (`dizuo admin topup`, another replica): within one refresh period.
    other = platform.org(balance=None)
    async with platform.sdk(other.key) as client:
        with pytest.raises(openai.APIStatusError):
            await client.chat.completions.create(model="echo-model", messages=ASK)
        topup(platform.db, other.name, parse_cny("0.01"))
        await asyncio.sleep(platform.platform.gateway.meter.journal.refresh_seconds + 0.3)
        await client.chat.completions.create(model="echo-model", messages=ASK)
    assert len(platform.records(org)) == len(platform.records(other)) == 1


async def test_failed_calls_are_not_charged(gateway_app: GatewayApp) -> None:
    platform = await gateway_app(
        [
            upstream_deployment("fail-model", "fail500"),
            upstream_deployment("slow-model", "slow", timeout={"read": 0.5}),
            upstream_deployment("limit-model", "ratelimit"),
        ]
    )
    org = platform.org(balance="1")
    async with platform.sdk(org.key) as client:
        for model in ("fail-model", "slow-model", "limit-model"):
            with pytest.raises(openai.APIStatusError):
                await client.chat.completions.create(model=model, messages=ASK)
    assert platform.records(org) == []
    assert platform.balance(org) == 1_000_000
    assert platform.platform.gateway.meter.book.held_by_org().get(org.id, 0) == 0


async def test_failover_charges_only_the_deployment_that_answered_and_records_every_attempt(
    gateway_app: GatewayApp,
) -> None:
    platform = await gateway_app(
        [
            upstream_deployment(
                "failover-model", "fail500", name="fo-primary", priority=0, price=("100", "100")
            ),
            upstream_deployment(
                "failover-model", name="fo-backup", priority=1, region="xj", price=("1.5", "2")
            ),
        ]
    )
    org = platform.org(balance="1")
    async with platform.sdk(org.key) as client:
        await client.chat.completions.create(model="failover-model", messages=ASK)
    (row,) = platform.records(org)
    assert row.deployment == "fo-backup" and row.region == "xj"
    assert row.cost == 17  # the backup's price: 7 × 1.5 + 3 × 2 = 16.5 µ¥ -> 17
    assert row.attempts == [
        {"deployment": "fo-primary", "error": "upstream_error"},
        {"deployment": "fo-backup", "error": None},
    ]
    assert platform.balance(org) == 1_000_000 - 17


async def test_voucher_pays_its_share(gateway_app: GatewayApp) -> None:
    # Output-priced so that a call's hold equals its true cost: ¥1000/M, ¥0.001 an output token.
    platform = await gateway_app([upstream_deployment("pricey-model", price=("0", "1000"))])
    org = platform.org(balance="1")
    now = dt.datetime.now(dt.UTC)
    voucher = issue_voucher(
        platform.db,
        org.name,
        VoucherTerms(
            "重庆市大数据局",
            "2026 算力券",
            parse_cny("5"),
            Decimal("0.3"),
            now - dt.timedelta(days=1),
            now + dt.timedelta(days=30),
        ),
    )
    # Granted outside the gateway (as the CLI does): every worker picks it up on its next wallet
    # refresh. Calls made before that are paid by the own balance alone.
    await asyncio.sleep(2 * platform.platform.gateway.meter.journal.refresh_seconds + 0.2)
    async with platform.sdk(org.key) as client:
        await client.chat.completions.create(model="pricey-model", messages=ASK, max_tokens=3)
    (row,) = platform.records(org)
    # 3 output tokens at ¥1000/M = 3000 µ¥: the voucher pays 30 % = 900, own 2100.
    assert (row.cost, row.voucher_part, row.own_part) == (3000, 900, 2100)
    with platform.db.session() as session:
        assert session.get(Voucher, voucher.id).remaining == 5_000_000 - 900  # type: ignore[union-attr]
    assert platform.balance(org) == 1_000_000 - 2100


async def test_500_concurrent_calls_against_a_wallet_for_100(gateway_app: GatewayApp) -> None:
    # Each call holds and costs exactly 3 output tokens at ¥1000/M = ¥0.003; the wallet holds ¥0.30.
    # The organization is new to the gateway: the first refused call reads its wallet, and the calls
    # refused meanwhile wait for that read instead of being answered 402.
    platform = await gateway_app([upstream_deployment("pricey-model", price=("0", "1000"))])
    org = platform.org(balance="0.3")
    async with platform.sdk(org.key) as client:
        statuses = await race([client], 500)
    assert statuses.count(200) == 100
    assert statuses.count(402) == 400
    rows = platform.records(org)
    assert len(rows) == 100 and len({r.request_id for r in rows}) == 100
    assert platform.balance(org) == 0
    with platform.db.session() as session:
        charged = session.scalar(
            select(func.sum(LedgerEntry.amount)).where(
                LedgerEntry.org_id == org.id,
                LedgerEntry.kind == "charge",
                LedgerEntry.account.like("revenue:%"),
            )
        )
    assert charged == sum(r.cost for r in rows) == 300_000


@pytest.mark.parametrize(
    "reported",
    [
        {"prompt_tokens": -2_000_000, "completion_tokens": 3, "total_tokens": -1_999_997},
        {"prompt_tokens": 7, "completion_tokens": -5, "total_tokens": 2},
        {"prompt_tokens": 7, "completion_tokens": 3_000_000_000, "total_tokens": 3_000_000_007},
        {"prompt_tokens": "many", "completion_tokens": 3},
        None,
    ],
    ids=["negative-prompt", "negative-completion", "beyond-any-context", "not-a-number", "absent"],
)
async def test_usage_an_upstream_cannot_have_meant_is_estimated(
    gateway_app: GatewayApp, upstream: FakeUpstream, reported: object
) -> None:
    # A private cloud or a partner's server may report anything: negative tokens would credit the
    # wallet, and a count beyond the database's columns would stop every record behind it. Such usage
    # counts as not reported: the call is charged by estimate and its record says so.
    scripted = f"ctl-{uuid.uuid4().hex[:8]}"
    platform = await gateway_app([upstream_deployment("usage-model", scripted, price=("1.5", "2"))])
    org = platform.org(balance="1")
    messages = [{"role": "user", "content": "请核对"}]
    with upstream.scripted(usages={scripted: reported}):
        async with platform.sdk(org.key) as client:
            answer = await client.chat.completions.create(model="usage-model", messages=messages)
            pieces = [
                p
                async for p in await client.chat.completions.create(
                    model="usage-model", messages=messages, stream=True
                )
            ]
    assert answer.choices[0].message.content == "echo: 请核对" and pieces
    rows = sorted(platform.records(org), key=lambda row: row.stream)
    assert [(row.stream, row.status) for row in rows] == [(False, "estimated"), (True, "estimated")]
    # One token per input character (3) and, whole, per answer character ("echo: 请核对", 9); streamed,
    # per event forwarded (the role, "你好", "，世界", the stop: 4). At ¥1.5/M in and ¥2/M out.
    assert [(row.prompt_tokens, row.completion_tokens) for row in rows] == [(3, 9), (3, 4)]
    assert [row.cost for row in rows] == [23, 13]  # 4.5 + 18 = 22.5 -> 23; 4.5 + 8 = 12.5 -> 13
    assert platform.balance(org) == 1_000_000 - 36
    with platform.db.session() as session:
        charged = select(func.sum(LedgerEntry.amount)).where(
            LedgerEntry.request_id.in_([row.request_id for row in rows])
        )
        assert list(session.scalars(charged.group_by(LedgerEntry.tx_id))) == [0, 0]  # each charge balances
        assert session.scalar(charged.where(LedgerEntry.amount < 0)) == -36


@pytest.mark.parametrize("answer", ["error200", "html200"])
async def test_an_error_sent_with_status_200_is_a_failed_attempt_not_an_answer(
    gateway_app: GatewayApp, upstream: FakeUpstream, answer: str
) -> None:
    # Some vendors' gateways answer errors with HTTP 200, and a proxy may put its own page in front
    # of a model server: neither is an answer to bill, nor one to pass on as a success.
    alone, first = f"ctl-{uuid.uuid4().hex[:8]}", f"ctl-{uuid.uuid4().hex[:8]}"
    platform = await gateway_app(
        [
            upstream_deployment("usage-model", alone),
            upstream_deployment("ok200-model", first, name="ok200-a", priority=0),
            upstream_deployment("ok200-model", name="ok200-b", priority=1),
        ]
    )
    org = platform.org(balance="1")
    with upstream.scripted(modes={first: answer, alone: answer}):
        async with platform.sdk(org.key) as client:
            # One deployment alone: the client gets the upstream's failure.
            with pytest.raises(openai.APIStatusError) as failed:
                await client.chat.completions.create(model="usage-model", messages=ASK)
            # Asked for a stream, the same: the upstream's failure, not a hang-up.
            with pytest.raises(openai.APIStatusError) as streamed:
                async for _ in await client.chat.completions.create(
                    model="usage-model", messages=ASK, stream=True
                ):
                    pass
            # With a second deployment, the call fails over to it, which alone is charged.
            moved = await client.chat.completions.create(model="ok200-model", messages=ASK)
    said = "上游账户余额不足" if answer == "error200" else "502 Bad Gateway"
    for caught in (failed, streamed):
        error = caught.value.body  # the SDK's: the envelope's "error"
        assert caught.value.status_code == 502
        assert error["code"] == "upstream_error" and "HTTP 200" in error["message"]  # type: ignore[index]
        # What the upstream said is the platform's business (its account, its proxy): logged, not relayed.
        assert said not in error["message"] and "平台日志" in error["message"]  # type: ignore[index]
    assert moved.choices[0].message.content == "echo: x"
    (row,) = platform.records(org)
    assert row.deployment == "ok200-b" and row.status == "ok"
    assert row.attempts == [
        {"deployment": "ok200-a", "error": "upstream_error"},
        {"deployment": "ok200-b", "error": None},
    ]
    assert platform.balance(org) == 1_000_000 - row.cost
