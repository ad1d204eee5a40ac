"""A date a person types is a whole day in the platform's time zone, whichever door it comes through:
the same voucher granted from the CLI, the admin API and the console is stored and shown alike."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from urllib.parse import quote
from zoneinfo import ZoneInfo

import httpx
import pytest

from dizuo.accounts import create_org
from dizuo.accounts.members import create_member, create_token
from dizuo.billing.service import wallet_view
from dizuo.days import day_moment, parse_moment
from dizuo.store import Database
from tests.billing.test_cli_money import run
from tests.console.test_forms import csrf_of, signed_in
from tests.support.platform import RunningGateway, Serve

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture(scope="module")
def gateway(serve: Serve) -> Iterator[RunningGateway]:
    """A platform served for this module: the voucher goes through its admin API and its console."""
    with serve([]) as running:
        yield running


def test_a_date_is_a_whole_day_in_the_platform_s_zone() -> None:
    assert parse_moment("2026-12-31", SHANGHAI) == dt.datetime(2026, 12, 30, 16, tzinfo=dt.UTC)
    assert parse_moment("2026-12-31", SHANGHAI, end_of_day=True) == dt.datetime(
        2026, 12, 31, 16, tzinfo=dt.UTC
    )
    assert parse_moment("2026-12-31T09:30:00+08:00", SHANGHAI) == dt.datetime(
        2026, 12, 31, 1, 30, tzinfo=dt.UTC
    )
    assert parse_moment("2026-12-31T09:30:00", SHANGHAI) == dt.datetime(2026, 12, 31, 9, 30, tzinfo=dt.UTC)
    assert day_moment(dt.date(2027, 1, 1), ZoneInfo("UTC")) == dt.datetime(2027, 1, 1, tzinfo=dt.UTC)


def test_the_same_voucher_through_the_cli_the_admin_api_and_the_console(gateway: RunningGateway) -> None:
    tag = uuid.uuid4().hex[:6]
    org, operator = f"三门-{tag}", f"operator-{tag}"
    db = Database(gateway.settings.resolved_database_url)
    create_org(db, org)
    create_member(db, operator, "correct horse battery", "platform-admin")
    token = create_token(db, operator)
    days = {"valid_from": "2026-01-01", "valid_to": "2027-03-31"}
    terms = {"issuer": "市大数据局", "amount": "10", "voucher_share": "0.3"}
    run(
        gateway,
        "issue-voucher",
        "--org",
        org,
        "--program",
        "命令行",
        *(x for k, v in (terms | days).items() for x in (f"--{k.replace('_', '-')}", v)),
    )
    answer = httpx.post(
        f"{gateway.url}/admin/v1/orgs/{quote(org)}/vouchers",
        json=terms | days | {"program": "接口"},
        headers={"authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 201
    console = signed_in(gateway, operator)
    wallet = f"/orgs/{quote(org)}/wallet"
    # The console's form names the field copay (its label reads 补贴比例).
    form = {k: v for k, v in terms.items() if k != "voucher_share"} | {"copay": terms["voucher_share"]} | days
    form |= {"program": "控制台", "org": org, "back": "wallet", "csrf": csrf_of(console.get(wallet).text)}
    assert console.post("/vouchers", data=form).status_code == 303
    granted = {v["program"]: (v["valid_from"], v["valid_to"]) for v in wallet_view(db, org)["vouchers"]}
    db.dispose()
    # 2026-01-01 00:00 and the end of 2027-03-31 in Shanghai, stored in UTC, the same from each door.
    expected = ("2025-12-31T16:00:00+00:00", "2027-03-31T16:00:00+00:00")
    assert granted == {"命令行": expected, "接口": expected, "控制台": expected}
    page = console.get(wallet).text
    console.close()
    assert page.count("2027-03-31") == 3 and "2027-04-01" not in page and "08:00" not in page
