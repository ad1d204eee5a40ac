"""``dizuo indicators``: the program office's monitoring indicators of a month, read from the
platform's database (as ``dizuo admin``)."""

from __future__ import annotations

from pathlib import Path

import click

from dizuo.cli.common import LANG, Lang, database, platform_zone, reported
from dizuo.cli.remote import print_json

__all__ = ["indicators"]


@click.command("indicators")
@click.option("--month", required=True, help="YYYY-MM (a month of DIZUO_TIMEZONE)")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option("--xlsx", "xlsx", type=click.Path(path_type=Path, dir_okay=False), help="Write a workbook: a summary and a sheet per grouping.")  # fmt: skip
@click.option("--live", is_flag=True, help="Compute a closed month again from the records, not its snapshot.")
@click.option(
    "--keep", is_flag=True, help="Keep the closed month's snapshot now (the server does it itself)."
)
@click.option("--replace", is_flag=True, help="With --keep: over a snapshot kept already.")
@click.option("--since", help="YYYY-MM: the months from it to --month, one line each (from snapshots).")
@LANG
def indicators(
    month: str,
    as_json: bool,
    xlsx: Path | None,
    live: bool,
    keep: bool,
    replace: bool,
    since: str | None,
    lang: Lang,
) -> None:
    """The month's indicators: organizations registered and active, the share using agents against
    the region's target, calls, tokens, spend, voucher money and compute hours by industry, district
    and size (docs/indicators.md). A closed month is read from its snapshot."""
    from dizuo.indicators import monthly, series, snapshot, to_xlsx

    if since is not None:
        with reported(), database() as db:
            points = series(db, since, month, platform_zone())
        if as_json:
            print_json({"object": "list", "data": points})
            return
        for p in points:
            target = f"{p['target']:.0%}" if p["target"] is not None else "-"
            kept = "快照 snapshot" if p["snapshot"] else "实时 live"
            click.echo(f"{p['month']}\t{p['active']}/{p['registered']}\t{p['agent_share']:.1%} / {target}\tcalls {p['calls']}\t¥{p['spend']}\t{kept}")  # fmt: skip
        return
    with reported(), database() as db:
        if keep:
            document = snapshot(db, month, platform_zone(), by="cli", replace=replace)
        else:
            document = monthly(db, month, platform_zone(), live=live)
    if xlsx is not None:
        xlsx.write_bytes(to_xlsx(document, lang))
        click.echo(str(xlsx))
        return
    if as_json:
        print_json(document)
        return
    orgs, agents, usage = document["organizations"], document["agent_adoption"], document["usage"]
    target = f"（目标 {agents['target']:.0%} / target）" if agents["target"] is not None else ""
    click.echo(f"{month}  注册组织 registered {orgs['registered']}  活跃 active {orgs['active']}")
    click.echo(
        f"使用智能体的组织 using agents {agents['using']} / {agents['organizations']} "
        f"({agents['share']:.1%}){target}  活跃智能体 active agents {agents['active_agents']}"
    )
    click.echo(
        f"调用 calls {usage['calls']}  tokens {usage['tokens']}  花费 spend ¥{usage['spend']}  "
        f"算力券 vouchers ¥{usage['voucher_paid']}  算力 compute {usage['compute_hours']} h"
    )
    for key, title in (
        ("by_industry", "行业 industry"),
        ("by_district", "区县 district"),
        ("by_size", "规模 size"),
    ):
        click.echo(f"\n{title}")
        for row in document[key]:
            click.echo(
                f"  {row['name'] or '（未填 / not given）'}\t{row['active']}/{row['registered']}\t"
                f"agents {row['agent_using']}\tcalls {row['calls']}\t¥{row['spend']}"
            )
