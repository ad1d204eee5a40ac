"""Standing holds (compute jobs' money): held durably out of what calls may spend, charged once with
the vouchers that may pay for compute, and vouchers scoped to models or to compute pay only their own."""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal

from sqlalchemy import select

from dizuo.billing import ledger
from dizuo.billing.holds import Scope, VoucherState
from dizuo.billing.service import VoucherTerms, issue_voucher
from dizuo.billing.standing import Held, close, open_hold, shrink
from dizuo.billing.tables import LedgerEntry, UsageRecord, Voucher, Wallet, voucher_hourly
from dizuo.errors import InsufficientQuota
from dizuo.store import utcnow
from tests.support.platform import GatewayApp

COMPUTE = Scope("compute", "cq", "compute:script", "cq-npu", "ascend-910b")


def voucher(db: object, org: str, amount: int, share: str, days: int, **scope: list[str]) -> str:
    now = utcnow()
    terms = VoucherTerms(
        issuer="市大数据局",
        program="算力券 2026",
        amount=amount,
        copay=Decimal(share),
        valid_from=now - dt.timedelta(days=1),
        valid_to=now + dt.timedelta(days=days),
        **scope,
    )
    return issue_voucher(db, org, terms).id  # type: ignore[arg-type]


async def test_a_compute_charge_is_held_durably_and_split_with_the_compute_voucher(
    gateway_app: GatewayApp,
) -> None:
    platform = await gateway_app()
    meter = platform.platform.gateway.meter
    db = platform.db
    org = platform.org(balance="100")
    compute = voucher(db, org.name, 10_000_000, "0.5", 30, pools=["cq-npu"])  # ¥10, pays half, compute
    models = voucher(db, org.name, 50_000_000, "1", 10, models=["qwen-plus"])  # ¥50, model calls only
    meter.journal.refresh(org.id)

    written: list[Held] = []
    held = await open_hold(meter, db, org.id, 20_000_000, COMPUTE, lambda _s, h: written.append(h))
    # ¥20 worst case: the compute voucher covers half (¥10, all it has), the balance the rest.
    assert held == Held(20_000_000, 10_000_000, ((compute, 10_000_000),)) and written == [held]
    with db.session() as session:
        assert session.get(Wallet, org.id).standing == 10_000_000  # type: ignore[union-attr]
        assert session.get(Voucher, compute).standing == 10_000_000  # type: ignore[union-attr]
    # Every worker loads what calls may spend net of it: ¥90 of balance, nothing of that voucher.
    meter.journal.refresh(org.id)
    state = await meter.book.state(org.id)
    assert state.balance == 90_000_000 and state.vouchers[compute].remaining == 0
    assert state.vouchers[models].remaining == 50_000_000

    # ¥80 more cannot be held for compute (the model voucher does not pay for it): 402, nothing written.
    try:
        await open_hold(meter, db, org.id, 180_000_000, COMPUTE, lambda _s, h: written.append(h))
        raise AssertionError("held more than the wallet has")
    except InsufficientQuota as refused:
        assert "90.000000" in refused.message("en")
    assert len(written) == 1

    at = utcnow()
    with db.session() as session:
        usage = {
            "request_id": "job-1",
            "key_id": "k",
            "model": "compute:script",
            "deployment": "cq-npu",
            "region": "cq",
            "endpoint": "compute.jobs",
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "latency_ms": 0,
            "data_class": "general",
            "stream": False,
            "status": "ok",
            "attempts": None,
        }
        outcome = close(
            session, org_id=org.id, held=held, cost=7_200_000, usage=usage, provider="compute", at=at
        )
    # ¥7.20 charged: the voucher pays half (¥3.60), the balance ¥3.60; the rest of the hold goes back.
    assert (outcome.cost, outcome.own, outcome.vouchers, outcome.uncollected) == (
        7_200_000,
        3_600_000,
        ((compute, 3_600_000),),
        0,
    )
    with db.session() as session:
        wallet = session.get(Wallet, org.id)
        assert wallet is not None and (wallet.balance, wallet.standing) == (96_400_000, 0)
        paid = session.get(Voucher, compute)
        assert paid is not None and (paid.remaining, paid.standing) == (6_400_000, 0)
        legs = session.execute(
            select(LedgerEntry.account, LedgerEntry.amount, LedgerEntry.kind).where(
                LedgerEntry.request_id == "job-1"
            )
        ).all()
        record = session.get(UsageRecord, "job-1")
        hourly = session.execute(
            select(voucher_hourly.c.provider, voucher_hourly.c.paid).where(
                voucher_hourly.c.voucher_id == compute
            )
        ).all()
    assert sorted(legs) == sorted(
        [
            (ledger.cash(org.id), -3_600_000, "charge"),
            (ledger.voucher(compute), -3_600_000, "charge"),
            (ledger.revenue("compute"), 7_200_000, "charge"),
        ]
    )
    assert record is not None and (record.cost, record.voucher_part, record.own_part) == (
        7_200_000,
        3_600_000,
        3_600_000,
    )
    assert hourly == [("compute", 3_600_000)]
    meter.journal.refresh(org.id)
    assert (await meter.book.state(org.id)).balance == 96_400_000


def test_vouchers_scoped_to_models_or_to_compute_pay_only_their_own() -> None:
    now = time.time()

    def state(**scope: frozenset[str]) -> VoucherState:
        fields = {"providers": None, "regions": None, "models": None, **scope}
        return VoucherState("v", Decimal(1), 1, now - 1, now + 100, **fields)  # type: ignore[arg-type]

    call = Scope("deepseek", "cq", "deepseek-chat")
    anything = state()
    assert anything.covers(call, now) and anything.covers(COMPUTE, now)
    models = state(models=frozenset({"deepseek-chat"}))
    assert models.covers(call, now) and not models.covers(COMPUTE, now)
    pools = state(pools=frozenset({"cq-npu"}))
    assert pools.covers(COMPUTE, now) and not pools.covers(call, now)
    assert not pools.covers(Scope("compute", "cq", "compute:script", "xj-npu", "ascend-910b"), now)
    cards = state(accelerators=frozenset({"a100"}))
    assert not cards.covers(COMPUTE, now) and not cards.covers(call, now)
    every_job = VoucherState("v", Decimal(1), 1, now - 1, now + 100, frozenset({"compute"}), None, None)
    assert every_job.covers(COMPUTE, now) and not every_job.covers(call, now)


async def test_part_of_a_standing_hold_goes_back_vouchers_first_and_calls_may_spend_it_again(
    gateway_app: GatewayApp,
) -> None:
    """A batch gives back its lines' worst case as it hands them out: the last voucher held first,
    then the balance; nothing is charged, and every worker may spend what came back."""
    platform = await gateway_app()
    meter = platform.platform.gateway.meter
    db = platform.db
    org = platform.org(balance="100")
    compute = voucher(db, org.name, 10_000_000, "0.5", 30, pools=["cq-npu"])
    meter.journal.refresh(org.id)
    held = await open_hold(meter, db, org.id, 20_000_000, COMPUTE, lambda _s, _h: None)
    assert held == Held(20_000_000, 10_000_000, ((compute, 10_000_000),))

    with db.session() as session:
        left = shrink(session, org.id, held, 12_000_000)  # ¥12 back: all the voucher's ¥10, then ¥2
    assert left == Held(8_000_000, 8_000_000, ())
    with db.session() as session:
        assert session.get(Wallet, org.id).standing == 8_000_000  # type: ignore[union-attr]
        assert session.get(Voucher, compute).standing == 0  # type: ignore[union-attr]
        rest = shrink(session, org.id, left, 50_000_000)  # at most what is held
    assert rest == Held(0, 0, ())
    meter.journal.refresh(org.id)
    state = await meter.book.state(org.id)
    assert state.balance == 100_000_000 and state.vouchers[compute].remaining == 10_000_000
    with db.session() as session:
        wallet = session.get(Wallet, org.id)
        assert wallet is not None and (wallet.balance, wallet.standing) == (100_000_000, 0)
        assert not session.scalars(select(UsageRecord).where(UsageRecord.org_id == org.id)).all()
