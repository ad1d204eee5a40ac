"""Compliance commands: ``dizuo admin prune`` (the retention job, now) and ``dizuo audit …`` (the
tamper-evident audit trail: verify, export, checkpoint)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import orjson

from dizuo.cli.common import LANG, Lang, database, emit, parse_period, platform_zone, reported
from dizuo.settings import Settings

__all__ = ["aigc", "audit", "compliance", "register"]


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
            report = run(db, policy, dry_run=dry_run, actor="cli")
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


@click.group("audit")
def audit() -> None:
    """The audit trail of administrative acts: check that nothing in it was changed, removed or
    reordered; export it for an auditor; sign a checkpoint."""


@audit.command("verify")
def audit_verify_command() -> None:
    """Walk the hash chain and its signed checkpoints; name the first record that does not hold
    and exit 1, or say how many records hold."""
    from dizuo.compliance.audit import signing_key, verify

    with reported():
        key = signing_key(Settings())
        with database() as db:
            held, problem = verify(db, key)
    if problem is not None:
        click.echo(f"审计记录被篡改 / the audit trail was tampered with: {problem}", err=True)
        click.echo(f"前 {held} 条记录完整 / the first {held} records hold", err=True)
        sys.exit(1)
    click.echo(f"审计记录完整：{held:,} 条记录 / the audit trail holds: {held:,} records")


@audit.command("checkpoint")
def audit_checkpoint_command() -> None:
    """Sign the chain's hash at its last record with the platform's key (the server does it daily)."""
    from dizuo.compliance.audit import checkpoint, signing_key

    with reported():
        key = signing_key(Settings())
        with database() as db:
            made = checkpoint(db, key)
    if made is None:
        click.echo("无需新的检查点 / nothing new to sign")
    else:
        click.echo(f"{made.seq} {made.hash}")


@audit.command("export")
@click.option("--since", default=None, help="YYYY-MM-DD (a day in DIZUO_TIMEZONE) or ISO 8601, inclusive.")
@click.option("--until", default=None, help="YYYY-MM-DD (through that day) or ISO 8601, exclusive.")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "xlsx"]), default="jsonl", show_default=True)
@click.option(
    "--out", type=click.Path(path_type=Path, dir_okay=False), default=None, help="File (default stdout)."
)
@LANG
def audit_export_command(
    since: str | None, until: str | None, fmt: str, out: Path | None, lang: Lang
) -> None:
    """The audit records of a period, in order, with each one's hash and the one before it; the
    export is itself recorded in the trail."""
    from dizuo.billing.sheets import write_xlsx
    from dizuo.compliance.audit import records, sheet_rows
    from dizuo.store.audit import append

    start, end = parse_period(since, until)
    written = 0

    def counted(rows: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        nonlocal written
        for row in rows:
            written += 1
            yield row

    with reported(), database() as db:
        target = out.open("wb") if out is not None else sys.stdout.buffer
        try:
            if fmt == "jsonl":
                for row in counted(records(db, start, end)):
                    target.write(orjson.dumps(row) + b"\n")
            else:
                write_xlsx(
                    target,
                    counted(sheet_rows(db, start, end)),
                    title="audit",
                    lang=lang,
                    zone=platform_zone(),
                )
        finally:
            if out is not None:
                target.close()
            else:
                target.flush()
        with db.session() as session:
            period = {"since": since, "until": until, "format": fmt, "records": written}
            append(session, "audit.export", "audit_trail", actor="cli", detail=period)
    if out is not None:
        click.echo(str(out), err=True)


@click.group("compliance")
def compliance() -> None:
    """What the platform hands a regulator."""


@compliance.command("report")
@click.option("--month", required=True, help="YYYY-MM (a month of DIZUO_TIMEZONE)")
@click.option("--format", "fmt", type=click.Choice(["xlsx", "json"]), default="xlsx", show_default=True)
@click.option(
    "--out", type=click.Path(path_type=Path, dir_okay=False), default=None, help="File (default stdout)."
)
@LANG
def compliance_report_command(month: str, fmt: str, out: Path | None, lang: Lang) -> None:
    """The month's pack for the regulator: models in use with their filings, calls and organizations,
    data-risk events and blocked calls, evaluation grades, the audit trail's checkpoints and whether
    it holds. The report is itself recorded in the audit trail."""
    from dizuo.compliance.audit import signing_key
    from dizuo.compliance.report import monthly, to_xlsx
    from dizuo.config import load_config
    from dizuo.evalbench.service import EvalService
    from dizuo.routing.catalog import Catalog
    from dizuo.store.audit import append

    with reported():
        settings = Settings()
        key = signing_key(settings)
        with database() as db:
            deployments = list(Catalog(db, load_config(settings.config)).effective().deployments)
            grades = EvalService(db, settings.data_dir).catalog()
            pack = monthly(db, month, platform_zone(), deployments=deployments, grades=grades, key=key)
            with db.session() as session:
                detail = {"month": month, "format": fmt}
                append(session, "export.compliance-report", month, actor="cli", detail=detail)
    emit(orjson.dumps(pack, option=orjson.OPT_INDENT_2) if fmt == "json" else to_xlsx(pack, lang), out)


@click.group("aigc")
def aigc() -> None:
    """AIGC labels (GB 45438-2025) on generated content: check one."""


@aigc.command("verify")
@click.argument("source", type=click.File("rb"))
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as one JSON document.")
def aigc_verify_command(source: Any, as_json: bool) -> None:
    """Check the label of SOURCE (a file, or - for standard input): a chat completion's JSON, a stream
    as its client read it, a DOCX/XLSX/PDF/HTML file the platform exported, or a content id. Say
    whether this platform produced it, when, for which organization, and whether it changed since;
    exit 1 unless the label is genuine and the content unchanged (or the id is one of ours)."""
    from dizuo.app import labeling
    from dizuo.compliance.files import read_file
    from dizuo.compliance.verify import Result, check, read_found, record_check

    data = source.read()
    with reported():
        labeler = labeling(Settings()).labeler
        with database() as db:
            verdict = check(db, labeler, read_found(data, read_file))
            record_check(db, verdict, "cli")
    document = verdict.public(show_org=True)
    if as_json:
        click.echo(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(f"{document['message']['zh']} / {document['message']['en']}")
        organization = document.get("organization")
        for name, value in (
            ("结果 / result", document["result"]),
            ("内容编号 / content id", document["content_id"]),
            ("标识时间 / labeled at", document["labeled_at"]),
            ("调用时间 / call at", document.get("created_at")),
            ("组织 / organization", organization and f"{organization['name']} ({organization['id']})"),
            ("模型 / model", document.get("model")),
            ("本平台角色 / platform's part", document["role"]),
        ):
            if value:
                click.echo(f"{name}: {value}")
    if verdict.result not in (Result.GENUINE, Result.RECORDED):
        sys.exit(1)


def register(group: click.Group) -> None:
    """Add the compliance commands to *group* (``dizuo admin``)."""
    group.add_command(prune_command)
