"""``dizuo admin`` money commands: top-ups, vouchers (算力券), wallets, usage, statements, issuer reports.

Amounts are decimal strings in CNY (``--amount 100.00``); ``--json`` prints one JSON document.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
import orjson

from dizuo.cli.common import (
    LANG,
    Lang,
    database,
    emit,
    fail,
    parse_date,
    parse_period,
    platform_zone,
    reported,
    split,
)

__all__ = ["register"]


@click.command("topup")
@click.option("--org", required=True)
@click.option("--amount", required=True, help="CNY, e.g. 100.00")
@click.option("--note", default=None)
@click.option(
    "--idempotency-key",
    default=None,
    help="Name this request: run again with the same key, it changes nothing.",
)
def topup_command(org: str, amount: str, note: str | None, idempotency_key: str | None) -> None:
    """Add money to an organization's own balance; prints the ledger transaction id."""
    from dizuo.billing import parse_cny
    from dizuo.billing.service import topup

    with reported():
        micro = parse_cny(amount)
        with database() as db:
            click.echo(topup(db, org, micro, note, idempotency_key))


@click.command("issue-voucher")
@click.option("--org", required=True)
@click.option("--issuer", required=True, help="Who pays for the voucher, e.g. 重庆市大数据应用发展管理局.")
@click.option("--program", required=True, help="The subsidy program's name.")
@click.option("--amount", required=True, help="Face value in CNY.")
@click.option(
    "--voucher-share",
    default=None,
    help="Share of each eligible charge the voucher pays (补贴比例), e.g. 0.3.",
)
@click.option("--copay", default=None, hidden=True, help="Deprecated: the old name of --voucher-share.")
@click.option("--providers", default=None, help="Comma-separated providers it may pay for (default: all).")
@click.option("--regions", default=None, help="Comma-separated regions (default: all).")
@click.option("--models", default=None, help="Comma-separated model aliases (default: all).")
@click.option(
    "--pools", default=None, help="Comma-separated compute pools (then it pays for compute jobs only)."
)
@click.option("--accelerators", default=None, help="Comma-separated accelerator types (compute jobs only).")
@click.option("--valid-from", required=True, help="YYYY-MM-DD (a day in DIZUO_TIMEZONE) or ISO 8601.")
@click.option("--valid-to", required=True, help="YYYY-MM-DD (through the end of that day) or ISO 8601.")
@click.option(
    "--idempotency-key",
    default=None,
    help="Name this request: run again with the same key, it changes nothing.",
)
def issue_voucher_command(
    org: str,
    issuer: str,
    program: str,
    amount: str,
    voucher_share: str | None,
    copay: str | None,
    providers: str | None,
    regions: str | None,
    models: str | None,
    pools: str | None,
    accelerators: str | None,
    valid_from: str,
    valid_to: str,
    idempotency_key: str | None,
) -> None:
    """Grant a compute voucher (算力券) to an organization; prints the voucher id."""
    from dizuo.billing import parse_cny
    from dizuo.billing.service import VoucherTerms, issue_voucher, parse_voucher_share

    if copay is not None:
        click.echo(
            "注意：--copay 已改名为 --voucher-share（算力券承担的比例） / note: --copay is deprecated, use "
            "--voucher-share (the share the voucher pays)",
            err=True,
        )
    share = voucher_share if voucher_share is not None else copay
    if share is None or (voucher_share is not None and copay is not None):
        fail("请给出 --voucher-share（只给一次） / give --voucher-share (once)")

    start = parse_date(valid_from, "--valid-from")
    end = parse_date(valid_to, "--valid-to", end_of_day=True)
    assert start is not None and end is not None
    with reported():
        terms = VoucherTerms(
            issuer=issuer,
            program=program,
            amount=parse_cny(amount),
            copay=parse_voucher_share(share, "--voucher-share"),
            valid_from=start,
            valid_to=end,
            providers=split(providers),
            regions=split(regions),
            models=split(models),
            pools=split(pools),
            accelerators=split(accelerators),
        )
        with database() as db:
            click.echo(issue_voucher(db, org, terms, idempotency_key).id)


@click.command("revoke-voucher")
@click.argument("voucher_id")
def revoke_voucher_command(voucher_id: str) -> None:
    """Take back a voucher's unspent rest; prints the amount returned to the issuer."""
    from dizuo.billing import format_cny
    from dizuo.billing.service import revoke_voucher

    with reported(), database() as db:
        click.echo(format_cny(revoke_voucher(db, voucher_id)))


@click.command("wallet")
@click.option("--org", required=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def wallet_command(org: str, as_json: bool) -> None:
    """Show an organization's balance, money held by calls in flight, and vouchers."""
    from dizuo.billing.service import wallet_view

    with reported(), database() as db:
        view = wallet_view(db, org)
    if as_json:
        click.echo(orjson.dumps(view).decode())
        return
    click.echo(
        f"{view['org']}: 余额 balance ¥{view['balance']}  冻结 held ¥{view['held']}"
        f"  作业预占 held by jobs ¥{view['held_by_jobs']}"
    )
    for v in view["vouchers"]:
        click.echo(
            f"  {v['id']}  {v['program']} ({v['issuer']})  ¥{v['remaining']} / ¥{v['face']}"
            f"  voucher share {v['voucher_share']}  → {v['valid_to'][:10]}  {v['state']}"
        )


@click.command("usage")
@click.option("--org", required=True)
@click.option("--since", default=None, help="YYYY-MM-DD (a day in DIZUO_TIMEZONE) or ISO 8601, inclusive.")
@click.option("--until", default=None, help="YYYY-MM-DD (through that day) or ISO 8601, exclusive.")
@click.option("--json", "fmt", flag_value="json", help="One JSON document.")
@click.option("--jsonl", "fmt", flag_value="jsonl", help="JSON Lines: one JSON object a line.")
@click.option("--csv", "fmt", flag_value="csv", help="CSV, UTF-8 with BOM (opens in Excel).")
@LANG
def usage_command(org: str, since: str | None, until: str | None, fmt: str | None, lang: Lang) -> None:
    """Export an organization's usage records, written as they are read (any number of them)."""
    from dizuo.accounts.service import get_org
    from dizuo.billing.reports import iter_usage_rows, recorded, stream

    if fmt is None:
        fail("请选择 --json、--jsonl 或 --csv / choose --json, --jsonl or --csv")
    start, end = parse_period(since, until)
    zone = platform_zone()
    with reported(), database() as db:
        for piece in stream(fmt, iter_usage_rows(db, org, start, end), lang=lang, zone=zone):
            sys.stdout.buffer.write(piece)
        sys.stdout.buffer.flush()
        recorded(db, "usage", org, "cli", org_id=get_org(db, org).id, format=fmt, since=since, until=until)


@click.command("statement")
@click.option("--org", required=True)
@click.option("--month", required=True, help="YYYY-MM")
@click.option("--format", "fmt", type=click.Choice(["csv", "xlsx", "json"]), default="csv", show_default=True)
@click.option(
    "--out", type=click.Path(path_type=Path, dir_okay=False), default=None, help="File (default stdout)."
)
@LANG
def statement_command(org: str, month: str, fmt: str, out: Path | None, lang: Lang) -> None:
    """An organization's monthly statement: balances, top-ups, charges, voucher payments, daily lines.
    The month and its days are those of DIZUO_TIMEZONE."""
    from dizuo.accounts.service import get_org
    from dizuo.billing.reports import recorded, render, statement

    zone = platform_zone()
    with reported(), database() as db:
        summary, lines = statement(db, org, month, zone)
        recorded(db, "statement", org, "cli", org_id=get_org(db, org).id, month=month, format=fmt)
    emit(render(fmt, lines, summary, title=month, lang=lang, zone=zone), out)


@click.command("voucher-report")
@click.option("--issuer", required=True)
@click.option("--month", required=True, help="YYYY-MM")
@click.option("--format", "fmt", type=click.Choice(["csv", "xlsx", "json"]), default="csv", show_default=True)
@click.option(
    "--out", type=click.Path(path_type=Path, dir_okay=False), default=None, help="File (default stdout)."
)
@LANG
def voucher_report_command(issuer: str, month: str, fmt: str, out: Path | None, lang: Lang) -> None:
    """What an issuer's vouchers paid in a month, per organization, program, provider and region."""
    from dizuo.billing.reports import recorded, render
    from dizuo.billing.service import issuers
    from dizuo.compute.reports import issuer_report

    zone = platform_zone()
    with reported(), database() as db:
        known = issuers(db)
        if issuer not in known:
            fail(
                f"没有发放方 {issuer!r}（发过券的发放方：{'、'.join(known) or '无'}） / no issuer {issuer!r} "
                f"(issuers that granted vouchers: {', '.join(known) or 'none'})"
            )
        rows = issuer_report(db, issuer, month, zone)
        recorded(db, "voucher-report", issuer, "cli", month=month, format=fmt)
    emit(render(fmt, rows, title=month, lang=lang, zone=zone), out)


@click.group("rollups")
def rollups_group() -> None:
    """The hourly rollups the console, statements and reports read: rebuild them from the usage
    records, or verify that they agree."""


@rollups_group.command("rebuild")
@click.option("--since", default=None, help="YYYY-MM-DD (a day in DIZUO_TIMEZONE) or ISO 8601; default: all.")
def rollups_rebuild_command(since: str | None) -> None:
    """Recompute the rollups from the usage records and failed calls, a day at a time (calls made
    meanwhile wait a moment, and are counted once)."""
    from dizuo.billing.rollups import rebuild

    start = parse_date(since, "--since")
    with reported(), database() as db:
        rows = rebuild(db, start)
    click.echo(f"已重建 {rows} 行小时汇总 / rebuilt {rows} hourly usage rows")


@rollups_group.command("verify")
@click.option("--since", default=None, help="YYYY-MM-DD (a day in DIZUO_TIMEZONE) or ISO 8601; default: all.")
@click.option("--org", default=None, help="Only this organization's rows.")
def rollups_verify_command(since: str | None, org: str | None) -> None:
    """Compare the rollups with the usage records; name every difference and exit 1 if there is one."""
    from dizuo.accounts.service import org_by_name
    from dizuo.billing.rollups import verify

    start = parse_date(since, "--since")
    with reported(), database() as db:
        org_id = None
        if org is not None:
            with db.session() as session:
                org_id = org_by_name(session, org).id
        differences = verify(db, start, org_id)
    for difference in differences[:100]:
        click.echo(str(difference))
    if differences:
        shown = " (the first 100 shown)" if len(differences) > 100 else ""
        click.echo(
            f"汇总与用量记录有 {len(differences)} 处不符 / {len(differences)} differences{shown}", err=True
        )
        sys.exit(1)
    click.echo("汇总与用量记录一致 / the rollups agree with the usage records")


def register(group: click.Group) -> None:
    """Add the money commands to *group* (``dizuo admin``)."""
    for command in (
        topup_command,
        issue_voucher_command,
        revoke_voucher_command,
        wallet_command,
        usage_command,
        statement_command,
        voucher_report_command,
        rollups_group,
    ):
        group.add_command(command)
