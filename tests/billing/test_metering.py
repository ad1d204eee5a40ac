"""Metering through the gateway: one usage record and one balanced ledger transaction per answered call,
holds that make overspending impossible, and 402 when the wallet cannot pay."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from decimal import Decimal

import openai
import pytest
from sqlalchemy import func, select

from dizuo.accounts import create_key, create_org
from dizuo.billing import parse_cny
from dizuo.billing.service import VoucherTerms, issue_voucher, topup
from dizuo.billing.tables import LedgerEntry, UsageRecord, Voucher, Wallet
from dizuo.store import Database
from tests.billing.race import race
from tests.conftest import RunningGateway
from tests.support.upstream import FakeUpstream


@pytest.fixture
def db(gateway: RunningGateway) -> Database:
    database = Database(gateway.settings.resolved_database_url)
    yield database
    database.dispose()


def new_org(db: Database, amount: str | None) -> tuple[str, str]:
    name = f"org-{uuid.uuid4().hex[:8]}"
    org = create_org(db, name)
    if amount:
        topup(db, name, parse_cny(amount))
    return org.id, create_key(db, name).key


def sdk(gateway: RunningGateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.v1, api_key=key, max_retries=0, timeout=30)


def records(db: Database, org_id: str) -> list[UsageRecord]:
    with db.session() as session:
        return list(session.scalars(select(UsageRecord).where(UsageRecord.org_id == org_id)))


def balance(db: Database, org_id: str) -> int:
    with db.session() as session:
        return session.get(Wallet, org_id).balance  # type: ignore[union-attr]


def test_each_call_has_one_record_and_a_balanced_charge(gateway: RunningGateway, db: Database) -> None:
    org_id, key = new_org(db, "1")
    with sdk(gateway, key) as client:
        client.chat.completions.create(model="echo-model", messages=[{"role": "user", "content": "x"}])
        list(
            client.chat.completions.create(
                model="echo-model", messages=[{"role": "user", "content": "y"}], stream=True
            )
        )
    rows = records(db, org_id)
    assert len(rows) == 2
    # 7 prompt tokens at ¥1.5/M + 3 completion tokens at ¥2/M = 10.5 + 6 = 16.5 µ¥ -> 17 µ¥ each
    assert [r.cost for r in rows] == [17, 17]
    assert {r.stream for r in rows} == {True, False}
    assert all(r.own_part == 17 and r.voucher_part == 0 and r.deployment == "echo-1" for r in rows)
    with db.session() as session:
        legs = session.scalars(
            select(LedgerEntry).where(LedgerEntry.request_id.in_([r.request_id for r in rows]))
        )
        by_tx: dict[str, int] = {}
        for leg in legs:
            by_tx[leg.tx_id] = by_tx.get(leg.tx_id, 0) + leg.amount
    assert len(by_tx) == 2 and set(by_tx.values()) == {0}
    assert balance(db, org_id) == 1_000_000 - 34


def test_empty_wallet_gets_402_and_nothing_is_recorded(gateway: RunningGateway, db: Database) -> None:
    org_id, key = new_org(db, None)
    with sdk(gateway, key) as client, pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="echo-model", messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 402
    error = caught.value.body
    assert error["type"] == "insufficient_quota" and error["code"] == "insufficient_quota"  # type: ignore[index]
    assert "dizuo admin topup" in error["message"]  # type: ignore[index]
    assert records(db, org_id) == []


def test_a_refused_call_never_reaches_the_upstream(
    gateway: RunningGateway, db: Database, upstream: FakeUpstream
) -> None:
    # The upstream request is started while the hold is asked for, its body sent only once the hold is
    # in place: a 402 or a 429 leaves the upstream without the request.
    poor_id, poor = new_org(db, None)
    name = f"org-{uuid.uuid4().hex[:8]}"
    create_org(db, name)
    topup(db, name, parse_cny("1"))
    limited = create_key(db, name, limits=(1, None, None)).key  # one request a minute
    marks = {label: f"{label}-{uuid.uuid4().hex}" for label in ("poor", "first", "second")}

    def ask(key: str, label: str) -> int:
        with sdk(gateway, key) as client:
            try:
                client.chat.completions.create(
                    model="echo-model", messages=[{"role": "user", "content": marks[label]}]
                )
            except openai.APIStatusError as exc:
                return exc.status_code
            return 200

    assert [ask(poor, "poor"), ask(limited, "first"), ask(limited, "second")] == [402, 200, 429]
    time.sleep(0.3)
    reached = {label for label, mark in marks.items() if any(mark in str(s.body) for s in upstream.seen)}
    assert reached == {"first"}
    assert records(db, poor_id) == []


def test_topup_takes_effect_at_once(gateway: RunningGateway, db: Database) -> None:
    org_id, key = new_org(db, None)
    with sdk(gateway, key) as client:
        with pytest.raises(openai.APIStatusError):
            client.chat.completions.create(model="echo-model", messages=[{"role": "user", "content": "x"}])
        topup(db, _name(db, org_id), parse_cny("0.01"))
        client.chat.completions.create(model="echo-model", messages=[{"role": "user", "content": "x"}])
    assert len(records(db, org_id)) == 1


def _name(db: Database, org_id: str) -> str:
    from dizuo.accounts.tables import Organization

    with db.session() as session:
        return session.get(Organization, org_id).name  # type: ignore[union-attr]


def test_failed_calls_are_not_charged(gateway: RunningGateway, db: Database) -> None:
    org_id, key = new_org(db, "1")
    with sdk(gateway, key) as client:
        for model in ("fail-model", "slow-model", "limit-model"):
            with pytest.raises(openai.APIStatusError):
                client.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}])
    assert records(db, org_id) == []
    assert balance(db, org_id) == 1_000_000
    assert gateway.app.meter.book.held_by_org().get(org_id, 0) == 0


def test_failover_charges_only_the_deployment_that_answered(gateway: RunningGateway, db: Database) -> None:
    org_id, key = new_org(db, "1")
    with sdk(gateway, key) as client:
        client.chat.completions.create(model="failover-model", messages=[{"role": "user", "content": "x"}])
    (row,) = records(db, org_id)
    assert row.deployment == "fo-backup" and row.region == "xj"


def test_voucher_pays_its_copay_share(gateway: RunningGateway, db: Database) -> None:
    org_id, key = new_org(db, "1")
    now = dt.datetime.now(dt.UTC)
    voucher = issue_voucher(
        db,
        _name(db, org_id),
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
    # refresh (every 0.5 s). Calls made before that are paid by the own balance alone.
    time.sleep(2 * gateway.app.meter.journal.refresh_seconds + 0.2)
    with sdk(gateway, key) as client:
        client.chat.completions.create(
            model="pricey-model", messages=[{"role": "user", "content": "x"}], max_tokens=3
        )
    (row,) = records(db, org_id)
    # 3 output tokens at ¥1000/M = 3000 µ¥: the voucher pays 30 % = 900, own 2100.
    assert (row.cost, row.voucher_part, row.own_part) == (3000, 900, 2100)
    with db.session() as session:
        assert session.get(Voucher, voucher.id).remaining == 5_000_000 - 900  # type: ignore[union-attr]
    assert balance(db, org_id) == 1_000_000 - 2100


async def test_500_concurrent_calls_against_a_wallet_for_100(gateway: RunningGateway, db: Database) -> None:
    # Each call holds and costs exactly 3 output tokens at ¥1000/M = ¥0.003; the wallet holds ¥0.30.
    org_id, key = new_org(db, "0.3")
    client = openai.AsyncOpenAI(base_url=gateway.v1, api_key=key, max_retries=0, timeout=60)

    statuses = await race([client], 500)
    await client.close()
    assert statuses.count(200) == 100
    assert statuses.count(402) == 400
    rows = records(db, org_id)
    assert len(rows) == 100 and len({r.request_id for r in rows}) == 100
    assert balance(db, org_id) == 0
    with db.session() as session:
        charged = session.scalar(
            select(func.sum(LedgerEntry.amount)).where(
                LedgerEntry.org_id == org_id,
                LedgerEntry.kind == "charge",
                LedgerEntry.account.like("revenue:%"),
            )
        )
    assert charged == sum(r.cost for r in rows) == 300_000


def test_every_attempt_is_in_the_usage_record(gateway: RunningGateway, db: Database) -> None:
    org_id, key = new_org(db, "1")
    with sdk(gateway, key) as client:
        client.chat.completions.create(model="failover-model", messages=[{"role": "user", "content": "x"}])
    (row,) = records(db, org_id)
    assert row.attempts == [
        {"deployment": "fo-primary", "error": "upstream_error"},
        {"deployment": "fo-backup", "error": None},
    ]
    assert row.created_at is not None


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
def test_usage_an_upstream_cannot_have_meant_is_estimated(
    gateway: RunningGateway, db: Database, upstream: FakeUpstream, reported: object
) -> None:
    # A private cloud or a partner's server may report anything: negative tokens would credit the
    # wallet, and a count beyond the database's columns would stop every record behind it. Such usage
    # counts as not reported: the call is charged by estimate and its record says so.
    org_id, key = new_org(db, "1")
    with upstream.scripted(usages={"ctl-usage": reported}), sdk(gateway, key) as client:
        answer = client.chat.completions.create(
            model="usage-model", messages=[{"role": "user", "content": "请核对"}]
        )
        pieces = list(
            client.chat.completions.create(
                model="usage-model", messages=[{"role": "user", "content": "请核对"}], stream=True
            )
        )
    assert answer.choices[0].message.content == "echo: 请核对" and pieces
    rows = sorted(records(db, org_id), key=lambda row: row.stream)
    assert [(row.stream, row.status) for row in rows] == [(False, "estimated"), (True, "estimated")]
    # One token per input character (3) and, whole, per answer character ("echo: 请核对", 9); streamed,
    # per event forwarded (the role, "你好", "，世界", the stop: 4). At ¥1.5/M in and ¥2/M out.
    assert [(row.prompt_tokens, row.completion_tokens) for row in rows] == [(3, 9), (3, 4)]
    assert [row.cost for row in rows] == [23, 13]  # 4.5 + 18 = 22.5 -> 23; 4.5 + 8 = 12.5 -> 13
    assert balance(db, org_id) == 1_000_000 - 36
    with db.session() as session:
        charged = select(func.sum(LedgerEntry.amount)).where(
            LedgerEntry.request_id.in_([row.request_id for row in rows])
        )
        assert list(session.scalars(charged.group_by(LedgerEntry.tx_id))) == [0, 0]  # each charge balances
        assert session.scalar(charged.where(LedgerEntry.amount < 0)) == -36


@pytest.mark.parametrize("answer", ["error200", "html200"])
def test_an_error_sent_with_status_200_is_a_failed_attempt_not_an_answer(
    gateway: RunningGateway, db: Database, upstream: FakeUpstream, answer: str
) -> None:
    # Some vendors' gateways answer errors with HTTP 200, and a proxy may put its own page in front
    # of a model server: neither is an answer to bill, nor one to pass on as a success.
    org_id, key = new_org(db, "1")
    with upstream.scripted(modes={"ctl-ok200-a": answer, "ctl-usage": answer}), sdk(gateway, key) as client:
        # The usage-1 deployment alone: the client gets the upstream's failure.
        with pytest.raises(openai.APIStatusError) as failed:
            client.chat.completions.create(model="usage-model", messages=[{"role": "user", "content": "x"}])
        # Asked for a stream, the same: the upstream's failure, not a hang-up.
        with pytest.raises(openai.APIStatusError) as streamed:
            list(
                client.chat.completions.create(
                    model="usage-model", messages=[{"role": "user", "content": "x"}], stream=True
                )
            )
        # With a second deployment, the call fails over to it, which alone is charged.
        moved = client.chat.completions.create(
            model="ok200-model", messages=[{"role": "user", "content": "x"}]
        )
    said = "上游账户余额不足" if answer == "error200" else "502 Bad Gateway"
    for caught in (failed, streamed):
        error = caught.value.body  # the SDK's: the envelope's "error"
        assert caught.value.status_code == 502
        assert error["code"] == "upstream_error" and "HTTP 200" in error["message"]  # type: ignore[index]
        # What the upstream said is the platform's business (its account, its proxy): logged, not relayed.
        assert said not in error["message"] and "平台日志" in error["message"]  # type: ignore[index]
    assert moved.choices[0].message.content == "echo: x"
    (row,) = records(db, org_id)
    assert row.deployment == "ok200-b" and row.status == "ok"
    assert row.attempts == [
        {"deployment": "ok200-a", "error": "upstream_error"},
        {"deployment": "ok200-b", "error": None},
    ]
    assert balance(db, org_id) == 1_000_000 - row.cost
