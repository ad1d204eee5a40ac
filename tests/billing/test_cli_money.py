"""The money commands end to end: a city bureau grants a voucher, an enterprise calls, everyone reads
their numbers; and bad input that writes nothing."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import subprocess
import uuid
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from dizuo.accounts import create_org, get_org
from dizuo.billing.tables import LedgerEntry
from dizuo.errors import DizuoError
from dizuo.store import Database
from tests.support.cli import dizuo
from tests.support.platform import GatewayApp, PlatformUnderTest, RunningGateway, upstream_deployment

ISSUER = "重庆市大数据应用发展管理局"
USCC = "91500000MA5U7T1E3C"  # valid check character (GB 32100)


def run(
    on: RunningGateway | PlatformUnderTest | str, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """``dizuo admin ARGS`` against the platform's database (or the database at the URL *on*)."""
    url = on if isinstance(on, str) else on.settings.resolved_database_url
    result = dizuo("admin", *args, env={"DIZUO_DATABASE_URL": url})
    if check:
        assert result.returncode == 0, result.stderr
    return result


def ledger_size(url: str) -> int:
    db = Database(url)
    with db.session() as session:
        count = int(session.scalar(select(func.count()).select_from(LedgerEntry)) or 0)
    db.dispose()
    return count


@pytest.fixture
def with_default(database_url: str) -> str:
    """The session's database, migrated, with the ``default`` organization (as `dizuo serve` makes it)."""
    db = Database(database_url)
    try:
        db.upgrade()
        try:
            get_org(db, "default")
        except DizuoError:
            create_org(db, "default")
    finally:
        db.dispose()
    return database_url


async def test_voucher_lifecycle_through_the_cli(gateway_app: GatewayApp, tmp_path: Path) -> None:
    # Output-priced, so that a call's hold equals its true cost: ¥0.001 per output token.
    gateway = await gateway_app([upstream_deployment("pricey-model", price=("0", "1000"))])
    name = f"重庆船舶柴油机-{uuid.uuid4().hex[:6]}"
    uscc = USCC if not _taken(gateway) else None
    args = ["create-org", name, "--industry", "船舶制造", "--district", "江津区", "--size", "medium"]
    run(gateway, *args, *(["--uscc", uscc] if uscc else []))
    run(gateway, "topup", "--org", name, "--amount", "10.00", "--note", "首次充值")
    today = dt.date.today()
    voucher_id = run(
        gateway,
        "issue-voucher",
        "--org",
        name,
        "--issuer",
        ISSUER,
        "--program",
        "2026 中小企业算力券",
        "--amount",
        "5.00",
        "--voucher-share",
        "0.3",
        "--valid-from",
        str(today - dt.timedelta(days=1)),
        "--valid-to",
        str(today + dt.timedelta(days=60)),
    ).stdout.strip()
    key = run(gateway, "create-key", "--org", name).stdout.strip()
    # Granted outside the gateway: the gateway picks the voucher up on its next wallet refresh.
    await asyncio.sleep(2 * gateway.platform.gateway.meter.journal.refresh_seconds + 0.2)
    async with gateway.sdk(key) as client:
        for _ in range(2):
            await client.chat.completions.create(
                model="pricey-model", messages=[{"role": "user", "content": "检验报告"}], max_tokens=3
            )

    wallet = orjson.loads(run(gateway, "wallet", "--org", name, "--json").stdout)
    # Two calls of 3000 µ¥: the voucher pays 900 each, own 2100 each.
    assert wallet["balance"] == "9.995800"
    assert wallet["held"] == "0.000000"
    (voucher,) = wallet["vouchers"]
    assert (voucher["id"], voucher["remaining"], voucher["voucher_share"], voucher["state"]) == (
        voucher_id,
        "4.998200",
        "0.3000",
        "active",
    )

    usage = orjson.loads(run(gateway, "usage", "--org", name, "--json").stdout)
    assert [(u["cost"], u["voucher_part"], u["own_part"]) for u in usage] == [
        ("0.003000", "0.000900", "0.002100")
    ] * 2
    raw_csv = run(gateway, "usage", "--org", name, "--csv").stdout.encode()
    rows = list(csv.DictReader(io.StringIO(raw_csv.decode("utf-8-sig"))))
    assert len(rows) == 2 and rows[0]["模型"] == "pricey-model"
    english = run(gateway, "usage", "--org", name, "--csv", "--lang", "en").stdout.encode()
    assert next(iter(csv.DictReader(io.StringIO(english.decode("utf-8-sig")))))["Model"] == "pricey-model"

    month = dt.datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m")  # the platform's month
    out = tmp_path / "statement.xlsx"
    run(gateway, "statement", "--org", name, "--month", month, "--format", "xlsx", "--out", str(out))
    sheet = load_workbook(out).active
    cells = {row[0].value: row[1].value for row in sheet.iter_rows(max_row=9) if row[0].value}
    assert cells["组织"] == name  # Chinese text intact
    # Numbers an accountant can add up, exact to the fen's ten-thousandth.
    assert (cells["充值（元）"], cells["企业自付费用（元）"], cells["算力券支付（元）"]) == (
        10,
        0.0042,
        0.0018,
    )
    assert cells["期末余额（元）"] == 9.9958
    statement_csv = tmp_path / "statement.csv"
    run(gateway, "statement", "--org", name, "--month", month, "--format", "csv", "--out", str(statement_csv))
    assert statement_csv.read_bytes().startswith(b"\xef\xbb\xbf")  # BOM: Excel reads UTF-8
    assert name in statement_csv.read_text(encoding="utf-8-sig")

    report = orjson.loads(
        run(gateway, "voucher-report", "--issuer", ISSUER, "--month", month, "--format", "json").stdout
    )
    mine = [r for r in report if r["organization"] == name]
    assert mine == [
        {
            "issuer": ISSUER,
            "month": month,
            "organization": name,
            "uscc": uscc or "",
            "program": "2026 中小企业算力券",
            "provider": "openai-compatible",
            "region": "default",
            "calls": 2,
            "voucher_paid": "0.001800",
            "kind": "model",  # model calls; compute jobs' lines name their pool and accelerator-hours
            "pool": None,
            "accelerator": None,
            "accelerator_hours": None,
        }
    ]

    assert run(gateway, "revoke-voucher", voucher_id).stdout.strip() == "4.998200"
    wallet = orjson.loads(run(gateway, "wallet", "--org", name, "--json").stdout)
    assert wallet["vouchers"][0]["state"] == "revoked" and wallet["vouchers"][0]["remaining"] == "0.000000"


def _taken(gateway: PlatformUnderTest) -> bool:
    from dizuo.accounts.tables import Organization

    db = Database(gateway.settings.resolved_database_url)
    with db.session() as session:
        taken = session.scalars(select(Organization).where(Organization.uscc == USCC)).first() is not None
    db.dispose()
    return taken


def voucher_args(**changes: str) -> list[str]:
    """``issue-voucher`` for the default organization, with valid terms except *changes*."""
    terms = {"issuer": "x", "program": "p", "amount": "1", "voucher_share": "0.3"}
    terms |= {"valid_from": "2026-01-01", "valid_to": "2099-01-01"} | changes
    return [
        "issue-voucher",
        "--org",
        "default",
        *(x for k, v in terms.items() for x in (f"--{k.replace('_', '-')}", v)),
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["topup", "--org", "default", "--amount", "-5"], "must be positive"),
        (["topup", "--org", "default", "--amount", "ten"], "not a decimal amount"),
        (["topup", "--org", "default", "--amount", "0.0000001"], "at most 6 decimal places"),
        (["topup", "--org", "no-such-org", "--amount", "1"], "no organization no-such-org"),
        (voucher_args(voucher_share="1.5"), "--voucher-share"),
        (voucher_args(valid_from="2020-01-01", valid_to="2020-12-31"), "already ended"),
        (voucher_args(valid_from="2030-01-01", valid_to="2029-01-01"), "after valid_from"),
        (
            ["create-org", "bad-code-org", "--uscc", "91500000MA5U7T1E3X"],
            "not a valid unified social credit code",
        ),
        (["statement", "--org", "default", "--month", "2026-13"], "YYYY-MM"),
        (["usage", "--org", "default"], "--json, --jsonl or --csv"),
        # Typed by a person, read as a person meant it: never a silent thousand or an empty answer.
        (["topup", "--org", "default", "--amount", "1e3"], "written as 1000.00"),
        (
            ["usage", "--org", "default", "--json", "--since", "2026-12-05", "--until", "2026-12-01"],
            "not before",
        ),
        (["guard-events", "--since", "2026-12-05", "--until", "2026-12-01"], "not before"),
        (["voucher-report", "--issuer", "不存在的局", "--month", "2026-11"], "no issuer '不存在的局'"),
    ],
)
def test_bad_input_fails_clearly_and_writes_nothing(with_default: str, args: list[str], message: str) -> None:
    before = ledger_size(with_default)
    result = run(with_default, *args, check=False)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""
    assert ledger_size(with_default) == before


def test_the_old_copay_option_still_works_and_says_its_new_name(with_default: str) -> None:
    args = voucher_args()
    args[args.index("--voucher-share")] = "--copay"
    result = run(with_default, *args)
    assert "--voucher-share" in result.stderr and len(result.stdout.strip()) == 32  # the voucher's id
    both = run(with_default, *voucher_args(), "--copay", "0.3", check=False)
    assert both.returncode == 2 and "once" in both.stderr
