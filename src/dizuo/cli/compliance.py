"""``dizuo admin prune``: run the retention job now (the server runs it daily)."""

from __future__ import annotations

import click
import orjson

from dizuo.cli.common import database, reported
from dizuo.settings import Settings

__all__ = ["register"]


@click.command("prune")
@click.option("--dry-run", is_flag=True, help="Count what has expired; remove nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def prune_command(dry_run: bool, as_json: bool) -> None:
    """Remove the failed calls and guard events older than their retention (DIZUO_RETAIN_*_DAYS) and
    make the coming months' partitions (PostgreSQL). Usage records and the ledger are never removed."""
    from dizuo.compliance.retention import kept, run
    from dizuo.store import iso

    with reported():
        policy = kept(Settings())
        with database() as db:
            report = run(db, policy, dry_run=dry_run)
    if as_json:
        document = {
            "dry_run": dry_run,
            "partitions_made": report.made,
            "pruned": [
                {
                    "table": rule.table,
                    "days": rule.days,
                    "before": iso(done.before),
                    "rows": done.rows,
                    "partitions_dropped": done.partitions,
                }
                for rule, done in report.pruned
            ],
        }
        click.echo(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode())
        return
    verb_zh, verb_en = ("将删除", "would remove") if dry_run else ("已删除", "removed")
    for rule, done in report.pruned:
        months = f"（其中整月分区 {', '.join(done.partitions)}）" if done.partitions else ""
        months_en = f" (whole months: {', '.join(done.partitions)})" if done.partitions else ""
        click.echo(
            f"{rule.zh}：保留 {rule.days} 天，{verb_zh} {iso(done.before)} 之前的 {done.rows:,} 条{months} / "
            f"{rule.en}: kept {rule.days} days, {verb_en} {done.rows:,} created before {iso(done.before)}"
            f"{months_en}"
        )
    if report.made:
        click.echo(f"新建分区 / partitions made: {', '.join(report.made)}")


def register(group: click.Group) -> None:
    """Add the compliance commands to *group* (``dizuo admin``)."""
    group.add_command(prune_command)
